// A local cluster of real replica processes whose peer links all pass through a
// FaultProxy (faultProxy.ts): each replica's peer list names the proxy port of
// every directed pair, so a cut between two replicas is a cut of real TCP links.
// Replicas can be killed (SIGKILL) and started again, on their folder or on a
// fresh empty one (a new incarnation), or frozen (SIGSTOP) and thawed (SIGCONT).
// A new replica can join the running cluster through one member's peer port
// (--join): its links do not pass through the proxy, whose routes are fixed at
// start, so it is meant to leave before the next fault (remove()).
// `close()` thaws and stops every process it started, closes the proxy and
// removes every folder it made.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { FaultProxy } from "../net/faultProxy.js";
import { send } from "../net/httpClient.js";
import { freePort } from "../net/freePort.js";
import { readyMessage, stdioWithReadySignal } from "../readySignal.js";

const startWaitMsMax = 20_000;
/** In the run's folder, next to the cluster secret: every replica gets it (a leave is an admin route). */
const adminTokenFileName = "admin-token";
const stopWaitMsMax = 10_000;
const requestWaitMsMax = 5_000;
/** Output kept per process for error messages: the last this many characters. */
const outputCharsMax = 256 * 1024;

/** dist/node/main.js, from this file once compiled (dist/test/harness/chaos/chaosCluster.js). */
export const defaultMainScriptPath = fileURLToPath(new URL("../../../node/main.js", import.meta.url));

export interface ChaosClusterOptions {
  readonly replicaIds: readonly string[];
  /** The compiled replica entry point (dist/node/main.js). */
  readonly mainScriptPath: string;
  /** More flags for every replica (e.g. --ack-wait-ms). */
  readonly extraArgs?: readonly string[];
}

export interface PeerLinkView {
  replicaId: string;
  actor: string;
  up: boolean;
  lagging: boolean;
  lag: number;
}

export interface MemberEntry {
  replicaId: string;
  state: string;
  actor: string;
}

export interface ClusterView {
  replicaId: string;
  actor: string;
  peers: PeerLinkView[];
  members: MemberEntry[];
}

/** One replica id: its fixed peer port, its current folder and process. */
export class ChaosReplica {
  child: ChildProcess | null = null;
  exited: Promise<void> = Promise.resolve();
  port = 0;
  incarnation = "";
  output = "";
  /** Incarnations this replica has had, oldest first. */
  readonly incarnations: string[] = [];
  /** Set when we kill or stop it: any other exit is a crash. */
  exitExpected = false;
  /** Frozen by SIGSTOP, not yet sent SIGCONT. */
  paused = false;
  /** How it finds the others: --peers (its proxy ports) for a founder, --join for a replica that joined. */
  links: readonly string[] = [];

  constructor(
    readonly replicaId: string,
    readonly peerPort: number,
    public dataDir: string,
  ) {}

  /** The HTTP address of the current (or last) process. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }
}

/** Children still running and folders not yet removed; if this process exits, they go with it. */
const childrenAlive = new Set<ChildProcess>();
const rootsAlive = new Set<string>();
process.once("exit", () => {
  for (const child of childrenAlive) child.kill("SIGKILL");
  for (const root of rootsAlive) rmSync(root, { recursive: true, force: true });
});

const troubleLinesMax = 1000;
/** Lines of a replica's output that only a bug prints: error-level logs, 5xx, broken invariants. */
const troublePattern = /\] error: |"level":(?:50|60)|invariant broken|fatal|Unhandled|TypeError|RangeError/;

export class ChaosCluster {
  /** Replicas that exited without being killed or stopped, with how. */
  readonly crashes: string[] = [];
  /** Lines the replicas printed that only a bug prints, in order (the first troubleLinesMax). */
  readonly troubleLines: string[] = [];
  /** Replicas that joined and were removed again: stopped, their ids never used again. */
  private readonly removed: ChaosReplica[] = [];

  private constructor(
    /** The members now, founders first, then those that joined. */
    readonly replicas: ChaosReplica[],
    readonly proxy: FaultProxy,
    private readonly options: ChaosClusterOptions,
    private readonly secretFile: string,
    readonly adminToken: string,
    private readonly root: string,
  ) {}

  static async start(options: ChaosClusterOptions): Promise<ChaosCluster> {
    if (!existsSync(options.mainScriptPath)) throw new Error(`${options.mainScriptPath} is missing: run \`npx tsc -p .\` first`);
    const root = await mkdtemp(join(tmpdir(), "escrow-shop-chaos-"));
    rootsAlive.add(root);
    const secretFile = join(root, "secret");
    await writeFile(secretFile, randomBytes(24).toString("hex"));
    const adminToken = randomBytes(24).toString("hex");
    await writeFile(join(root, adminTokenFileName), adminToken);
    const replicas: ChaosReplica[] = [];
    for (const replicaId of options.replicaIds) replicas.push(new ChaosReplica(replicaId, await freePort(), join(root, `${replicaId}-1`)));
    let proxy: FaultProxy;
    try {
      proxy = await FaultProxy.start(FaultProxy.meshRoutes(options.replicaIds, (id) => replicas.find((r) => r.replicaId === id)!.peerPort));
    } catch (error) {
      await rm(root, { recursive: true, force: true });
      rootsAlive.delete(root);
      throw error;
    }
    for (const replica of replicas) replica.links = ["--peers", proxy.peersOf(replica.replicaId)];
    const cluster = new ChaosCluster(replicas, proxy, options, secretFile, adminToken, root);
    try {
      await Promise.all(replicas.map((replica) => cluster.launch(replica)));
      await cluster.waitForMesh(startWaitMsMax);
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  replica(replicaId: string): ChaosReplica {
    const replica = this.replicas.find((candidate) => candidate.replicaId === replicaId);
    if (replica === undefined) throw new RangeError(`no replica ${replicaId}`);
    return replica;
  }

  get urls(): string[] {
    return this.replicas.map((replica) => replica.url);
  }

  /** SIGKILL now, without waiting: for a kill in the same tick as an event. */
  killNow(replicaId: string): void {
    const replica = this.replica(replicaId);
    replica.exitExpected = true;
    if (replica.running) replica.child!.kill("SIGKILL");
  }

  /**
   * Freezes the replica's process (SIGSTOP): it keeps its sockets, the kernel still
   * accepts connections and buffers bytes for it, but it answers nothing.
   */
  pause(replicaId: string): void {
    const replica = this.replica(replicaId);
    if (!replica.running) throw new Error(`replica ${replicaId} is not running`);
    replica.child!.kill("SIGSTOP");
    replica.paused = true;
  }

  /**
   * The replica's process state as Linux shows it (/proc/<pid>/stat: "T" stopped,
   * "S" sleeping, "R" running), or null where there is no /proc or no process.
   */
  processState(replicaId: string): string | null {
    const pid = this.replica(replicaId).child?.pid;
    if (pid === undefined) return null;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] ?? null;
    } catch {
      return null;
    }
  }

  /** Thaws a paused replica (SIGCONT). */
  resume(replicaId: string): void {
    const replica = this.replica(replicaId);
    if (replica.running) replica.child!.kill("SIGCONT");
    replica.paused = false;
  }

  async kill(replicaId: string): Promise<void> {
    this.killNow(replicaId);
    await this.replica(replicaId).exited;
  }

  /** Starts the replica again on its folder, or on a fresh empty one (a new incarnation). */
  async restart(replicaId: string, folder: "same" | "empty"): Promise<ChaosReplica> {
    const replica = this.replica(replicaId);
    if (replica.running) throw new Error(`replica ${replicaId} is still running`);
    if (folder === "empty") replica.dataDir = join(this.root, `${replicaId}-${replica.incarnations.length + 1}`);
    await this.launch(replica);
    return replica;
  }

  /**
   * Starts a new replica, the next free id on a fresh folder and free ports, with
   * --join at `seedId`'s real peer port; resolves once it serves (it caught up and
   * turned active). It is a member from now on: the checks and the load include it.
   */
  async join(seedId: string): Promise<ChaosReplica> {
    const seed = this.replica(seedId);
    const replicaId = `r${this.replicas.length + this.removed.length + 1}`;
    const replica = new ChaosReplica(replicaId, await freePort(), join(this.root, `${replicaId}-1`));
    replica.links = ["--join", `127.0.0.1:${seed.peerPort}`];
    this.replicas.push(replica);
    await this.launch(replica);
    return replica;
  }

  /** Stops a replica (SIGTERM) and takes it out of the members: for one that left the cluster. */
  async remove(replicaId: string): Promise<void> {
    const replica = this.replica(replicaId);
    await stopProcess(replica);
    this.replicas.splice(this.replicas.indexOf(replica), 1);
    this.removed.push(replica);
  }

  /** Until every running replica sees every other running replica up, not lagging. */
  async waitForMesh(waitMsMax: number): Promise<void> {
    const deadline = Date.now() + waitMsMax;
    let views: (ClusterView | null)[] = [];
    for (;;) {
      const running = this.replicas.filter((replica) => replica.running);
      views = await Promise.all(running.map((replica) => clusterView(replica.url)));
      const complete = views.every(
        (view) =>
          view !== null &&
          running.every(
            (other) =>
              other.replicaId === view.replicaId ||
              view.peers.some((peer) => peer.replicaId === other.replicaId && peer.up && !peer.lagging && peer.actor.endsWith(other.incarnation)),
          ),
      );
      if (complete) return;
      if (Date.now() > deadline) throw new Error(`mesh not complete within ${waitMsMax} ms: ${JSON.stringify(views)}`);
      await sleep(50);
    }
  }

  /** The last `chars` characters every replica printed, for a failure report. */
  output(chars = 4000): string {
    return [...this.replicas, ...this.removed].map((replica) => `--- ${replica.replicaId}\n${replica.output.slice(-chars)}`).join("\n");
  }

  /** Stops every process (SIGCONT if paused, SIGTERM, then SIGKILL), closes the proxy, removes the folders. */
  async close(): Promise<void> {
    for (const replica of this.replicas) if (replica.paused) this.resume(replica.replicaId);
    await Promise.all([...this.replicas, ...this.removed].map((replica) => stopProcess(replica)));
    await this.proxy.close();
    await rm(this.root, { recursive: true, force: true });
    rootsAlive.delete(this.root);
  }

  private async launch(replica: ChaosReplica): Promise<void> {
    const args = [
      this.options.mainScriptPath,
      ...["--replica-id", replica.replicaId, "--host", "127.0.0.1", "--port", "0"],
      ...["--peer-port", String(replica.peerPort), ...replica.links],
      ...["--secret-file", this.secretFile, "--admin-token-file", join(this.root, adminTokenFileName), "--data-dir", replica.dataDir],
      ...(this.options.extraArgs ?? []),
    ];
    replica.output += `\n[chaos: starting ${replica.replicaId} on ${replica.dataDir}]\n`;
    replica.exitExpected = false;
    const child = spawn(process.execPath, args, { stdio: [...stdioWithReadySignal] });
    replica.child = child;
    childrenAlive.add(child);
    /** One per stream, so a line split over chunks is seen whole. */
    const keeper = () => {
      let partialLine = "";
      return (chunk: Buffer): void => {
        const text = chunk.toString("utf8");
        replica.output = (replica.output + text).slice(-outputCharsMax);
        const lines = (partialLine + text).split("\n");
        partialLine = (lines.pop() ?? "").slice(-outputCharsMax);
        for (const line of lines) {
          if (troublePattern.test(line) && this.troubleLines.length < troubleLinesMax) this.troubleLines.push(`${replica.replicaId}: ${line.slice(0, 400)}`);
        }
      };
    };
    child.stderr!.on("data", keeper());
    child.stdout!.on("data", keeper());
    replica.exited = new Promise<void>((resolve) => {
      child.on("exit", (code, signal) => {
        if (!replica.exitExpected) this.crashes.push(`${replica.replicaId} exited by itself (${signal ?? `code ${code}`}):\n${replica.output.slice(-3000)}`);
        resolve();
      });
      child.on("error", () => resolve());
    }).finally(() => childrenAlive.delete(child));
    const serving = await readyMessage(child, "serving", `replica ${replica.replicaId}`, startWaitMsMax, () => replica.output);
    replica.incarnation = serving.incarnation;
    replica.port = serving.port;
    replica.incarnations.push(replica.incarnation);
  }
}

/** GET /cluster of one replica, or null if it does not answer. */
export async function clusterView(url: string): Promise<ClusterView | null> {
  const outcome = await send(url, "GET", "/cluster", requestWaitMsMax);
  if (outcome.kind !== "answer" || outcome.status !== 200) return null;
  try {
    return JSON.parse(outcome.text) as ClusterView;
  } catch {
    return null;
  }
}

async function stopProcess(replica: ChaosReplica): Promise<void> {
  replica.exitExpected = true;
  if (!replica.running) return replica.exited;
  replica.child!.kill("SIGTERM");
  const timer = setTimeout(() => replica.child!.kill("SIGKILL"), stopWaitMsMax);
  await replica.exited;
  clearTimeout(timer);
}
