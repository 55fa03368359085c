// A cluster of real replica processes for tests: free peer ports, a secret file,
// an admin token file, every replica started with the full peer list; waits until
// the mesh is up.
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import type { OutgoingHttpHeaders } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { bearer, writeAdminToken } from "./adminToken.js";
import { type ReplicaFleet, type ReplicaProcess, jsonOf } from "./replicaProcess.js";
import { freePort } from "../harness/net/freePort.js";

const meshWaitMsMax = 20_000;

export interface ClusterMember {
  readonly replicaId: string;
  readonly peerPort: number;
  readonly dataDir: string;
  process: ReplicaProcess;
}

export interface LocalClusterOptions {
  /**
   * Ids listed in every replica's peer list after the started ones (r{size+1}, ...),
   * each with a reserved port but no process: a slot a test may fill by hand.
   */
  readonly idleSlots?: number;
}

/** A configured peer that no replica process serves. */
export interface IdleSlot {
  readonly replicaId: string;
  readonly peerPort: number;
}

export class LocalCluster {
  private constructor(
    private readonly fleet: ReplicaFleet,
    readonly members: ClusterMember[],
    private readonly sharedArgs: readonly string[],
    /** The file holding the cluster secret every replica was given. */
    readonly secretFile: string,
    readonly idleSlots: readonly IdleSlot[],
    /** The admin token every replica was given (in a file). */
    readonly adminToken: string,
  ) {}

  /** The header an admin route (POST /cluster/leave) needs. */
  get adminHeaders(): OutgoingHttpHeaders {
    return bearer(this.adminToken);
  }

  static async start(fleet: ReplicaFleet, size: number, extraArgs: readonly string[] = [], options: LocalClusterOptions = {}): Promise<LocalCluster> {
    const secretDir = await fleet.newDataDir();
    const secretFile = join(secretDir, "secret");
    await writeFile(secretFile, randomBytes(24).toString("hex"));
    const peerPorts: number[] = [];
    const configured = size + (options.idleSlots ?? 0);
    for (let index = 0; index < configured; index++) peerPorts.push(await freePort());
    const peers = peerPorts.map((port, index) => `r${index + 1}=127.0.0.1:${port}`).join(",");
    const idleSlots = peerPorts.slice(size).map((peerPort, index) => ({ replicaId: `r${size + index + 1}`, peerPort }));
    const admin = await writeAdminToken(fleet);
    const sharedArgs = ["--peers", peers, "--secret-file", secretFile, "--admin-token-file", admin.file, ...extraArgs];
    const members: ClusterMember[] = [];
    for (let index = 0; index < size; index++) {
      const replicaId = `r${index + 1}`;
      const dataDir = await fleet.newDataDir();
      const member = { replicaId, peerPort: peerPorts[index]!, dataDir } as ClusterMember;
      members.push(member);
    }
    const cluster = new LocalCluster(fleet, members, sharedArgs, secretFile, idleSlots, admin.token);
    await Promise.all(members.map((member) => cluster.startMember(member)));
    await cluster.waitForMesh();
    return cluster;
  }

  get urls(): string[] {
    return this.members.map((member) => member.process.url);
  }

  member(index: number): ReplicaProcess {
    return this.members[index]!.process;
  }

  /** (Re)start a member on its folder (or on `dataDir`, e.g. a fresh empty one). */
  async startMember(member: ClusterMember, dataDir: string = member.dataDir): Promise<ReplicaProcess> {
    member.process = await this.fleet.start({
      replicaId: member.replicaId,
      dataDir,
      extraArgs: ["--peer-port", String(member.peerPort), ...this.sharedArgs],
    });
    return member.process;
  }

  /** Until every running member sees every other running member's link up and not lagging. */
  async waitForMesh(): Promise<void> {
    const deadline = Date.now() + meshWaitMsMax;
    for (;;) {
      const running = this.members.filter((member) => member.process.running);
      const views = await Promise.all(running.map((member) => clusterView(member.process)));
      const complete = views.every((view) =>
        running.every(
          (other) => other.replicaId === view.replicaId || view.peers.some((peer) => peer.replicaId === other.replicaId && peer.up && !peer.lagging),
        ),
      );
      if (complete) return;
      if (Date.now() > deadline) throw new Error(`mesh not complete within ${meshWaitMsMax} ms: ${JSON.stringify(views)}`);
      await sleep(50);
    }
  }
}

export interface ClusterView {
  replicaId: string;
  actor: string;
  durableSeq: number;
  peers: { replicaId: string; actor: string; up: boolean; lagging: boolean; lag: number }[];
  members: { replicaId: string; state: string; actor: string; httpAddress: string; peerAddress: string }[];
}

/** Polls `probe` until it gives a value, for at most `waitMsMax`. */
export async function waitFor<T>(probe: () => Promise<T | undefined>, waitMsMax = 10_000): Promise<T> {
  const deadline = Date.now() + waitMsMax;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${waitMsMax} ms`);
    await sleep(50);
  }
}

export async function clusterView(replica: ReplicaProcess): Promise<ClusterView> {
  return jsonOf(await replica.request("GET", "/cluster")) as ClusterView;
}
