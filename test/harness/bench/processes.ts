// The processes the benchmark starts: plain fastify, cluster launchers (whose
// replicas are their children) and wrk. Every one is registered here as it is
// spawned, and `stopAll` stops whatever is still running: at the end, on an error
// and on Ctrl-C (installStopOnSignals).
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { readyMessage, stdioWithReadySignal } from "../readySignal.js";
import { childPids, environmentValue, isAlive } from "./procStats.js";

const startWaitMsMax = 60_000;
/** After SIGTERM, how long a process may take to exit before it gets SIGKILL. */
const stopWaitMsMax = 15_000;
const outputCharsMax = 16_384;

const running = new Set<ChildProcess>();
/** Replica pids seen under each launcher, so that none outlives a launcher that was killed. */
const replicaPidsSeen = new Set<number>();

/** dist/scripts/, where the cluster launcher is once compiled. */
const scriptsDirectory = fileURLToPath(new URL("../../../scripts/", import.meta.url));
const baselineServerPath = fileURLToPath(new URL("baselineServer.js", import.meta.url));

/** Spawns `command` and keeps it in the registry until it exits; a node process that says it serves gets an IPC channel. */
export function spawnTracked(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env, saysReady = false): ChildProcess {
  const child = spawn(command, args, { stdio: saysReady ? [...stdioWithReadySignal] : ["ignore", "pipe", "pipe"], env });
  running.add(child);
  child.once("exit", () => running.delete(child));
  child.once("error", () => running.delete(child));
  return child;
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** SIGTERM, then SIGKILL after stopWaitMsMax; resolves once it has exited. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (hasExited(child) || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), stopWaitMsMax);
  await exited;
  clearTimeout(timer);
}

/** Stops every registered process that still runs, then SIGKILLs any replica left behind. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map(stopProcess));
  for (const pid of replicaPidsSeen) {
    if (isAlive(pid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // It exited meanwhile.
      }
    }
  }
}

let stoppingOnSignal = false;

/** True once Ctrl-C or SIGTERM came: errors of steps cut short are then expected. */
export function isStoppingOnSignal(): boolean {
  return stoppingOnSignal;
}

/** Ctrl-C or SIGTERM: stop every process started, run `cleanUp`, then exit 130 / 143. */
export function installStopOnSignals(cleanUp: () => Promise<void>): void {
  const onSignal = (signal: NodeJS.Signals, code: number): void => {
    if (stoppingOnSignal) return;
    stoppingOnSignal = true;
    console.error(`\nbench: ${signal}, stopping the processes it started`);
    void stopAll()
      .then(cleanUp)
      .finally(() => process.exit(code));
  };
  process.on("SIGINT", () => onSignal("SIGINT", 130));
  process.on("SIGTERM", () => onSignal("SIGTERM", 143));
}

/** The latest output of the child, stdout and stderr. */
function keepOutput(child: ChildProcess): () => string {
  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString("utf8")).slice(-outputCharsMax);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  return () => output;
}

export interface BaselineServer {
  readonly child: ChildProcess;
  readonly url: string;
  readonly pid: number;
}

/** Plain fastify with one POST route (baselineServer.ts) on a free port. */
export async function startBaseline(): Promise<BaselineServer> {
  const child = spawnTracked(process.execPath, [baselineServerPath], process.env, true);
  const serving = await readyMessage(child, "baseline-serving", "plain fastify", startWaitMsMax, keepOutput(child));
  return { child, url: `http://127.0.0.1:${serving.port}`, pid: child.pid! };
}

export interface Replica {
  readonly id: string;
  readonly url: string;
  pid: number;
}

export interface ClusterUnderTest {
  readonly launcher: ChildProcess;
  readonly launcherPid: number;
  /** The shared address. */
  readonly url: string;
  readonly replicas: Replica[];
  readonly output: () => string;
}

/** The replica processes under the launcher, by replica id (REPLICA_ID in their environment). */
export function replicaPidsById(launcherPid: number): Map<string, number> {
  const byId = new Map<string, number>();
  for (const pid of childPids(launcherPid)) {
    const id = environmentValue(pid, "REPLICA_ID");
    if (id !== null) {
      byId.set(id, pid);
      replicaPidsSeen.add(pid);
    }
  }
  return byId;
}

/** scripts/startCluster.ts with `replicas` replicas on free ports, data under `dataRoot`. */
export async function startCluster(replicaCount: number, dataRoot: string): Promise<ClusterUnderTest> {
  const launcher = spawnTracked(
    process.execPath,
    [
      `${scriptsDirectory}startCluster.js`,
      ...["--replicas", String(replicaCount), "--port", "0", "--base-port", "0", "--peer-base-port", "0"],
      ...["--data-root", dataRoot, "--host", "127.0.0.1"],
    ],
    process.env,
    true,
  );
  const output = keepOutput(launcher);
  const serving = await readyMessage(launcher, "cluster-serving", `the ${replicaCount}-replica cluster`, startWaitMsMax, output);
  const pids = replicaPidsById(launcher.pid!);
  const replicas = serving.replicas.map(({ replicaId, port }): Replica => {
    const pid = pids.get(replicaId);
    if (pid === undefined) throw new Error(`no process of replica ${replicaId} under the launcher ${launcher.pid}`);
    return { id: replicaId, url: `http://127.0.0.1:${port}`, pid };
  });
  if (replicas.length !== replicaCount) throw new Error(`expected ${replicaCount} replicas, the launcher said: ${JSON.stringify(serving)}`);
  return { launcher, launcherPid: launcher.pid!, url: `http://127.0.0.1:${serving.port}`, replicas, output };
}

/** The launcher and every replica: the processes whose CPU is the cluster's. */
export function clusterPids(cluster: ClusterUnderTest): number[] {
  return [cluster.launcherPid, ...cluster.replicas.map((replica) => replica.pid)];
}
