// A cluster of real replicas (node/replica.ts: ShopState, GroupCommit, Replicator,
// RightsBroker, membership gossip) in one process: memory-level databases, the
// simulated network, and the scheduler's virtual clock. Replicas crash and
// restart on the same database (storage intact) or on a fresh one (storage lost:
// a new incarnation). With gossip, new replicas join the running cluster as main.ts
// runs one started with --join.
import { MemoryLevel } from "memory-level";
import { pack } from "msgpackr";
import type { Actor } from "../../crdt/boundedCounter.js";
import type { PeerMessage } from "../../cluster/messages.js";
import { type MsRange, SimulatedNetwork, type SimulatedNetworkOptions, type SimulatedTransport } from "./simulatedTransport.js";
import { Membership } from "../../cluster/membership.js";
import { type MemberSource, isMemberRule, peersToDial } from "../../cluster/memberLinks.js";
import { memberStatePolicy } from "../../cluster/memberStatePolicy.js";
import { ShopState, generationCounterCeiling } from "../../crdt/shopState.js";
import { Replica } from "../../node/replica.js";
import { identityKey, membershipKey } from "../../node/storageLayout.js";
import type { Random } from "../harness/random.js";
import type { Life, Scheduler } from "./scheduler.js";

/** A replica that joins the running cluster (main.ts with --join, not named in --peers). */
export interface Joiner {
  readonly replicaId: string;
  /** The founders behind its --join addresses. */
  readonly seeds: readonly string[];
  /** Its --peers names the founders (one setting for a whole StatefulSet); otherwise it has none. */
  readonly configured: boolean;
}

export interface ClusterSettings {
  /** The founders: each one's --peers names them all. */
  readonly replicaIds: readonly string[];
  /** Replicas that join later (gossip only), each started by the run. */
  readonly joiners: readonly Joiner[];
  readonly ackWaitMsMax: number;
  readonly rightsWaitMsMax: number;
  /** How long a started replica waits to catch up with its peers before it serves clients (main.ts). */
  readonly catchUpMsMax: number;
  /** From a change to its group commit's flush (the write itself is instant). */
  readonly flushDelayMs: MsRange;
  readonly network: Omit<SimulatedNetworkOptions, "clock" | "random" | "replicaIds">;
  /**
   * Run membership as main.ts does: every start announces itself into the Automerge
   * document and the links carry its sync messages. Otherwise every database starts
   * with one agreed document that lists all replicas as active, nobody announces,
   * and membership frames are not carried: the shop logic sees the same members,
   * at a fraction of the cost (an Automerge sync costs milliseconds).
   */
  readonly gossip: boolean;
  /** Most states per replication frame: small values split batches and catch-ups into many frames. */
  readonly statesPerFrame: number;
}

export type SimDatabase = MemoryLevel<string, Uint8Array>;

/** One replica id: its database and, while it runs, its process. */
export class ReplicaSlot {
  db: SimDatabase = newDatabase();
  /** Storage losses so far. */
  storageEpoch = 0;
  /** Starts so far (the first included). */
  starts = 0;
  life: Life = { alive: false };
  replica: Replica | undefined;
  /** Caught up with its peers (or gave up waiting), so it serves clients, as main.ts does. */
  serving = false;
  /** Keys the running replica changed since the checkers last looked; undefined: look at all. */
  changed: Set<string> | undefined;
  /** It has served clients once: a joiner that joined (or a founder that caught up). */
  servedOnce = false;
  constructor(
    readonly replicaId: string,
    readonly joiner?: Joiner,
  ) {}

  get running(): boolean {
    return this.life.alive && this.replica !== undefined;
  }
}

export interface LogLine {
  readonly at: number;
  readonly replicaId: string;
  readonly level: string;
  readonly message: string;
}

export class SimCluster {
  readonly network: SimulatedNetwork;
  readonly slots: ReplicaSlot[];
  /** Errors that must fail the run: write failures, rejected opens. */
  readonly errors: string[] = [];
  readonly log: LogLine[] = [];
  /** How each join ended, in order: "active" or "active, not caught up with …". */
  readonly joins: string[] = [];
  /** Per order id, the incarnations a checkout of it was handed to (Replica.checkout): any of them may have paid it. */
  readonly checkoutsHandedTo = new Map<string, Set<Actor>>();

  constructor(
    private readonly scheduler: Scheduler,
    private readonly random: Random,
    private readonly settings: ClusterSettings,
  ) {
    this.network = new SimulatedNetwork({
      ...settings.network,
      clock: scheduler.clock(),
      random: () => random.next(),
      replicaIds: [...settings.replicaIds, ...settings.joiners.map((joiner) => joiner.replicaId)],
    });
    for (const replicaId of settings.replicaIds) this.network.admit(replicaId);
    this.slots = [...settings.replicaIds.map((id) => new ReplicaSlot(id)), ...settings.joiners.map((joiner) => new ReplicaSlot(joiner.replicaId, joiner))];
  }

  slot(replicaId: string): ReplicaSlot {
    const slot = this.slots.find((candidate) => candidate.replicaId === replicaId);
    if (slot === undefined) throw new RangeError(`no replica ${replicaId}`);
    return slot;
  }

  running(): ReplicaSlot[] {
    return this.slots.filter((slot) => slot.running);
  }

  /** The replicas clients may use. */
  serving(): ReplicaSlot[] {
    return this.slots.filter((slot) => slot.running && slot.serving);
  }

  /** Start a process on the slot's database (its replica is there once the event settles). */
  start(slot: ReplicaSlot): void {
    if (slot.life.alive) return;
    const life: Life = { alive: true };
    slot.life = life;
    slot.starts += 1;
    this.network.admit(slot.replicaId);
    void this.open(slot, life).catch((error: unknown) => this.errors.push(`${slot.replicaId} failed to open: ${String(error)}`));
  }

  /** Kill the process; with `loseStorage` its database is gone too (the next start is a new incarnation). */
  crash(slot: ReplicaSlot, loseStorage: boolean): void {
    if (!slot.life.alive) return;
    slot.life.alive = false;
    slot.replica = undefined;
    slot.serving = false;
    this.network.crash(slot.replicaId);
    const db = slot.db;
    void db.close();
    if (loseStorage) {
      slot.db = newDatabase();
      slot.storageEpoch += 1;
    }
  }

  /** With SIM_TRACE set, every link event and message is logged to stderr. */
  private traced(transport: SimulatedTransport): SimulatedTransport {
    if (process.env.SIM_TRACE === undefined) return transport;
    const self = transport.replicaId;
    const line = (text: string) => console.error(`t=${this.scheduler.now.toFixed(2)} ${text}`);
    const start = transport.start.bind(transport);
    transport.start = (events) =>
      start({
        peerUp: (peer, actor) => (line(`${self}: up ${peer} (${actor})`), events.peerUp(peer, actor)),
        peerDown: (peer) => (line(`${self}: down ${peer}`), events.peerDown(peer)),
        message: (peer, message) => (line(`${self} <- ${peer}: ${describeMessage(message)}`), events.message(peer, message)),
      });
    const send = transport.send.bind(transport);
    transport.send = (peer, message) => {
      const sent = send(peer, message);
      line(`${self} -> ${peer}: ${describeMessage(message)}${sent ? "" : " (not sent)"}`);
      return sent;
    };
    return transport;
  }

  /** Notes where checkouts are handed (checkoutsHandedTo). */
  private recordingForwards(transport: SimulatedTransport): SimulatedTransport {
    const send = transport.send.bind(transport);
    transport.send = (peer, message) => {
      const sent = send(peer, message);
      const runner = sent && message.type === "checkoutForward" ? this.slots.find((slot) => slot.replicaId === peer)?.replica?.shop.actor : undefined;
      if (runner !== undefined && message.type === "checkoutForward") {
        const runners = this.checkoutsHandedTo.get(message.orderId) ?? new Set<Actor>();
        runners.add(runner);
        this.checkoutsHandedTo.set(message.orderId, runners);
      }
      return sent;
    };
    return transport;
  }

  /** Without gossip, membership frames are not carried (every replica holds the same document). */
  private withoutGossip(transport: SimulatedTransport): SimulatedTransport {
    if (this.settings.gossip) return transport;
    const send = transport.send.bind(transport);
    transport.send = (peer, message) => (message.type === "membership" ? transport.links.has(peer) : send(peer, message));
    return transport;
  }

  /** Stop the process in an orderly way (Replica.close, as on SIGTERM); it is not restarted. */
  stop(slot: ReplicaSlot): void {
    const replica = slot.replica;
    if (!slot.life.alive || replica === undefined) return;
    const life = slot.life;
    slot.serving = false;
    void replica.close().then(
      () => {
        life.alive = false;
        if (slot.life === life) slot.replica = undefined;
      },
      (error: unknown) => this.errors.push(`${slot.replicaId} failed to close: ${String(error)}`),
    );
  }

  private async open(slot: ReplicaSlot, life: Life): Promise<void> {
    const db = slot.db;
    await db.open();
    // A fresh database gets its incarnation from the seed, not node:crypto, so runs replay.
    if ((await db.get(identityKey)) === undefined) {
      const incarnation = `${slot.storageEpoch}${this.random.int(0, 0xffffff).toString(16).padStart(6, "0")}`;
      await db.put(identityKey, pack({ replicaId: slot.replicaId, incarnation }));
      if (!this.settings.gossip) await db.put(membershipKey, agreedMembership(this.settings.replicaIds));
    }
    const configured = slot.joiner === undefined || slot.joiner.configured ? this.settings.replicaIds.filter((id) => id !== slot.replicaId) : [];
    const configuredAt = configured.map((replicaId) => ({ replicaId, address: `${replicaId}:7000` }));
    let transport: SimulatedTransport | undefined;
    const replica = await Replica.open({
      db,
      replicaId: slot.replicaId,
      transport: (actor) =>
        (transport = this.traced(this.recordingForwards(this.withoutGossip(this.network.transport(slot.replicaId, actor, slot.joiner?.seeds))))),
      ackWaitMsMax: this.settings.ackWaitMsMax,
      statesPerFrame: this.settings.statesPerFrame,
      rightsWaitMsMax: this.settings.rightsWaitMsMax,
      // As main.ts passes --peers.
      configuredPeerIds: configured,
      // As main.ts: dial the configured peers and the members the document lists.
      onMembersChanged: (members) => transport?.setPeers(peersToDial(slot.replicaId, configuredAt, members).map((peer) => peer.replicaId)),
      clock: this.scheduler.clock(life),
      defer: (callback) => void this.scheduler.after(this.random.real(...this.settings.flushDelayMs), callback, life),
      log: (level, message) => this.log.push({ at: this.scheduler.now, replicaId: slot.replicaId, level, message }),
      onWriteFailure: (error) => this.errors.push(`${slot.replicaId}: a write failed: ${String(error)}`),
    });
    if (!life.alive) return;
    // As main.ts: rows only of members' actors (a joiner takes every row until its document lists another member).
    const source: MemberSource = {
      member: (replicaId) => replica.member(replicaId),
      namesOthers: () => replica.status().members.some((member) => member.replicaId !== slot.replicaId),
    };
    replica.shop.peerStatePolicy = memberStatePolicy({
      isMember: isMemberRule(slot.replicaId, new Set(configured), slot.joiner !== undefined, source),
      wallClockMs: () => generationCounterCeiling,
      released: (actor) => replica.isReleased(actor),
    });
    slot.changed = undefined;
    watchChanges(replica.shop, (key) => slot.changed?.add(key));
    const self = { peerAddress: `${slot.replicaId}:7000`, httpAddress: `${slot.replicaId}:8000`, actor: replica.shop.actor };
    slot.replica = replica;
    // As main.ts: a joiner with no entry of its own yet, or one still joining, joins; any other start catches up.
    if (slot.joiner !== undefined && (replica.ownMembership() ?? "joining") === "joining") {
      const notCaughtUp = await replica.join(self, this.settings.catchUpMsMax, (waitedMs) =>
        this.log.push({ at: this.scheduler.now, replicaId: slot.replicaId, level: "info", message: `joining: no member reached after ${waitedMs} ms` }),
      );
      if (!life.alive) return;
      this.joins.push(notCaughtUp.length === 0 ? "active" : `active, not caught up with ${notCaughtUp.join(", ")}`);
      this.log.push({ at: this.scheduler.now, replicaId: slot.replicaId, level: "warn", message: `joined: ${this.joins.at(-1)!}` });
    } else {
      if (this.settings.gossip) replica.announce(self);
      const members = replica
        .status()
        .members.filter((member) => member.state !== "retired")
        .map((member) => member.replicaId);
      const peers = [...new Set([...configured, ...members])].filter((replicaId) => replicaId !== slot.replicaId);
      const notCaughtUp = await replica.catchUp(peers, this.settings.catchUpMsMax);
      if (!life.alive) return;
      if (notCaughtUp.length > 0)
        this.log.push({
          at: this.scheduler.now,
          replicaId: slot.replicaId,
          level: "info",
          message: `serving before catching up with ${notCaughtUp.join(", ")}`,
        });
    }
    slot.serving = true;
    slot.servedOnce = true;
  }
}

/** main.ts's peersToDial, by id: the configured peers and the document's members but the retired. */
function newDatabase(): SimDatabase {
  return new MemoryLevel<string, Uint8Array>({ keyEncoding: "utf8", valueEncoding: "view" });
}

/** The shop as the slot's database holds it (what a restart would load). */
export async function durableShop(slot: ReplicaSlot): Promise<ShopState> {
  const shop = new ShopState(slot.replica?.shop.actor ?? "durable", () => {});
  for await (const [key, value] of slot.db.iterator()) {
    // The shop's states and batch records only: not the replica's own keys (~), nor idempotency and release records.
    if (/^[iuob]:/.test(key)) shop.mergeEncoded(key, value, "disk");
  }
  return shop;
}

function describeMessage(message: PeerMessage): string {
  switch (message.type) {
    case "states":
      return `states seq ${message.seq} [${message.entries.map(([key]) => key).join(" ")}]`;
    case "ack":
      return `ack ${message.seq}`;
    case "syncRequest":
      return `syncRequest after ${message.cursor}`;
    case "syncDone":
      return `syncDone up to ${message.upTo}`;
    case "rightsRequest":
      return `rightsRequest #${message.requestId} ${message.needs.map(([key, amount]) => `${key}:${amount}`).join(" ")}`;
    case "rightsGrant":
      return `rightsGrant #${message.requestId} ${message.granted.map(([key, amount]) => `${key}:${amount}`).join(" ")}`;
    case "membership":
      return "membership";
    case "drainSeen":
      return `drainSeen${message.retired ? " (retired)" : ""} up to ${message.upTo}`;
    case "checkoutForward":
      return `checkoutForward #${message.requestId} o:${message.orderId}`;
    case "checkoutAnswer":
      return `checkoutAnswer #${message.requestId} ${message.refusal === null ? "paid" : message.refusal.reason}`;
  }
}

const agreedDocuments = new Map<string, Uint8Array>();

/** A membership document listing every replica as active, made once per replica set. */
function agreedMembership(replicaIds: readonly string[]): Uint8Array {
  const key = replicaIds.join(",");
  let bytes = agreedDocuments.get(key);
  if (bytes === undefined) {
    let membership: Membership | undefined;
    for (const [index, replicaId] of replicaIds.entries()) {
      const hex = (index + 1).toString(16).padStart(2, "0").repeat(16);
      membership = Membership.load(replicaId, membership?.save(), { automergeActorHex: hex });
      membership.announce({ peerAddress: `${replicaId}:7000`, httpAddress: `${replicaId}:8000`, actor: `${replicaId}/agreed` });
    }
    bytes = membership!.save();
    agreedDocuments.set(key, bytes);
  }
  return bytes;
}

/**
 * Tell `changed` of every key the shop reports changed (ShopState reports each
 * change through its onChange, in the same step), so checkers look only there.
 */
function watchChanges(shop: ShopState, changed: (key: string) => void): void {
  const reporting = shop as unknown as { onChange: (key: string, ...rest: unknown[]) => void };
  const report = reporting.onChange;
  reporting.onChange = (key, ...rest) => {
    changed(key);
    report(key, ...rest);
  };
}
