// The processes the benchmark starts: plain fastify, cluster launchers (whose
// replicas are their children) and wrk. Every one is registered here as it is
// spawned, and `stopAll` stops whatever is still running: at the end, on an error
// and on Ctrl-C (installStopOnSignals).
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { childPids, environmentValue, isAlive } from "./procStats.js";

const startWaitMsMax = 60_000;
/** After SIGTERM, how long a process may take to exit before it gets SIGKILL. */
const stopWaitMsMax = 15_000;
const outputCharsMax = 16_384;

const running = new Set<ChildProcess>();
/** Replica pids seen under each launcher, so that none outlives a launcher that was killed. */
const replicaPidsSeen = new Set<number>();

export const scriptsDirectory = fileURLToPath(new URL("..", import.meta.url));

/** Spawns `command` and keeps it in the registry until it exits. */
export function spawnTracked(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env });
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

/** Resolves with the first match of `pattern` in the child's stdout; rejects if it exits first or takes too long. */
function waitForLine(child: ChildProcess, pattern: RegExp, what: string): Promise<{ match: RegExpExecArray; output: () => string }> {
  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString("utf8")).slice(-outputCharsMax);
  };
  child.stderr!.on("data", keep);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} was not ready within ${startWaitMsMax} ms:\n${output}`)), startWaitMsMax);
    child.stdout!.on("data", (chunk: Buffer) => {
      keep(chunk);
      const match = pattern.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ match, output: () => output });
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${signal ?? code}) before it was ready:\n${output}`));
    });
  });
}

export interface BaselineServer {
  readonly child: ChildProcess;
  readonly url: string;
  readonly pid: number;
}

/** Plain fastify with one POST route (scripts/baselineServer.ts) on a free port. */
export async function startBaseline(): Promise<BaselineServer> {
  const child = spawnTracked(process.execPath, [`${scriptsDirectory}baselineServer.js`]);
  const { match } = await waitForLine(child, /baseline serving http:\/\/localhost:(\d+)/, "plain fastify");
  return { child, url: `http://127.0.0.1:${match[1]}`, pid: child.pid! };
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

const clusterReadyPattern = /cluster of (\d+) replicas serving http:\/\/localhost:(\d+) \((.*)\)/;

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
  const launcher = spawnTracked(process.execPath, [
    `${scriptsDirectory}startCluster.js`,
    ...["--replicas", String(replicaCount), "--port", "0", "--base-port", "0", "--peer-base-port", "0"],
    ...["--data-root", dataRoot, "--host", "127.0.0.1"],
  ]);
  const { match, output } = await waitForLine(launcher, clusterReadyPattern, `the ${replicaCount}-replica cluster`);
  const urls = [...match[3]!.matchAll(/(r\d+) http:\/\/localhost:(\d+)/g)];
  const pids = replicaPidsById(launcher.pid!);
  const replicas = urls.map(([, id, port]): Replica => {
    const pid = pids.get(id!);
    if (pid === undefined) throw new Error(`no process of replica ${id} under the launcher ${launcher.pid}`);
    return { id: id!, url: `http://127.0.0.1:${port}`, pid };
  });
  if (replicas.length !== replicaCount) throw new Error(`expected ${replicaCount} replicas, the launcher printed: ${match[0]}`);
  return { launcher, launcherPid: launcher.pid!, url: `http://127.0.0.1:${match[2]}`, replicas, output };
}

/** The launcher and every replica: the processes whose CPU is the cluster's. */
export function clusterPids(cluster: ClusterUnderTest): number[] {
  return [cluster.launcherPid, ...cluster.replicas.map((replica) => replica.pid)];
}
