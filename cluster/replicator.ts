// Replication of durable states between peers.
// - Live: after each durable batch, the states this replica changed itself go to
//   every up peer (the bytes that reached the disk); peers merge, ack, persist.
// - Read-your-writes: a reply waits until every up, non-lagging peer has acked its
//   batch, within a bound that follows the peers' recent ack round trips (at most
//   ackWaitMsMax); a peer that misses it is marked lagging, every reply waiting on
//   it goes on at once, and it is not waited for until it has acked everything that
//   was sent to it by then. A frozen or cut-off peer costs one such wait, not more.
// - Anti-entropy on every (re)connect: each side asks for what the other changed
//   (locally or by merging) after the cursor it holds for it, reads those states
//   back from LevelDB (durable by construction), and ends with syncDone. Only
//   syncDone moves a cursor, so a cursor never skips a merged state.
// - No needless relay: a state this replica holds exactly as a peer sent it live
//   (its own change in its batch N) is not served to a requester that says it has
//   merged that peer's changes up to N, nor back to that peer itself. Relays are for
//   bridges and lost disks, not for states every replica got first hand.
import type { Actor } from "../crdt/boundedCounter.js";
import { DecodeError } from "../crdt/codec.js";
import { type StateKey, UnadmittedActorError } from "../crdt/shopState.js";
import type { Clock } from "./clock.js";
import { type ActorBatch, type PeerMessage, type StateEntry, bytesPerFrameMax, knownPeersPerRequestMax, statesPerFrameMax } from "./messages.js";
import type { PeerId, Transport } from "./transport.js";

/** Bytes of state per frame we aim under, well below the hard frame limit. */
const stateBytesPerFrameTarget = bytesPerFrameMax / 4;
/** A conservative rate at which a busy peer merges and acks received states. */
const statesMergedPerMs = 20;
/** The ack wait is this many times the peers' recent slowest ack round trip… */
const ackWaitRoundTrips = 4;
/** …and never under this (a GC pause or a busy event loop is not a failure). */
const ackWaitMsFloor = 250;
/** How fast the remembered slowest round trip decays, per ack. */
const ackRoundTripDecay = 0.98;
/** Unacked live batches whose send time is kept, per peer. */
const sendTimesKeptMax = 1024;

export interface ReplicatorDeps {
  readonly transport: Pick<Transport, "send">;
  /** Merge a state received from a peer; true if it changed here (a DecodeError if it is invalid). */
  mergeState(key: StateKey, bytes: Uint8Array): boolean;
  readonly clock: Clock;
  /** Resolves with a batch number once everything changed so far is durable. */
  durable(): Promise<number>;
  durableSeq(): number;
  /** Resolves once everything written so far is fsynced. */
  syncAll(): Promise<number>;
  /** This replica's cursor for `actor` moved (mergedUpTo): keep it with the next batch. */
  cursorMoved(actor: Actor): void;
  /**
   * Calls `take` synchronously at a moment when no batch is being written, with a
   * reader of the database exactly as it is then (every flushed batch, whole).
   */
  whenQuiet(take: (snapshot: DurableSnapshot) => void): void;
  log(level: "info" | "warn", message: string): void;
  readonly ackWaitMsMax: number;
  /**
   * After each completed anti-entropy round with a peer, ask it again after this
   * long for what it merged since: states it relays from a replica this one cannot
   * reach directly (a bridge), or from one that lost its disk.
   */
  readonly resyncMs: number;
  /** Most states a frame carries (statesPerFrameMax; simulations make it small to split syncs). */
  readonly statesPerFrame: number;
  /** `peerId` missed an ack wait and is marked lagging: it is likely silent (frozen, or cut off). */
  onPeerLagging?(peerId: PeerId): void;
}

export interface DurableSnapshot {
  read(keys: readonly StateKey[]): Promise<(Uint8Array | undefined)[]>;
  close(): Promise<void>;
}

export interface PeerStatus {
  readonly replicaId: PeerId;
  readonly actor: Actor;
  readonly up: boolean;
  readonly lagging: boolean;
  readonly lastSentSeq: number;
  readonly ackedSeq: number;
  /** Batches sent live that the peer has not acked. */
  readonly lag: number;
}

class PeerReplication {
  up = true;
  lagging = false;
  /** While lagging: the peer is caught up again once it acks this batch. */
  private caughtUpAtSeq = 0;
  lastSentSeq = 0;
  ackedSeq = 0;
  /** The peer holds this replica's batches up to here durably (the cursor of its last syncRequest). */
  heldUpTo = 0;
  /** Resolvers waiting for ackedSeq to reach a batch number, in increasing order. */
  readonly ackWaiters: { seq: number; done: () => void }[] = [];
  /** Cancels the next anti-entropy round with this peer. */
  cancelResync: () => void = () => {};
  /** The first anti-entropy round on this link is done: with the live frames since, every batch of the peer is merged. */
  caughtUpOnLink = false;
  /** Highest batch of the peer's own changes merged from a live frame on this link. */
  liveMergedUpTo = 0;
  /** The slowest recent ack round trip of a live batch (decaying, so one slow ack is soon forgotten). */
  ackRoundTripMsRecent = 0;
  /** Anti-entropy rounds asked of the peer on this link, and ended (syncDone merged): they end in order. */
  syncRoundsAsked = 0;
  syncRoundsDone = 0;
  /** Waiting for the round numbered `round` to end. */
  readonly roundWaiters: { round: number; done: () => void }[] = [];
  /** Live batches sent and not yet acked, oldest first, with when they were sent. */
  private readonly sendTimes: { seq: number; sentAtMs: number }[] = [];
  constructor(readonly actor: Actor) {}

  sent(seq: number, nowMs: number): void {
    this.lastSentSeq = seq;
    this.sendTimes.push({ seq, sentAtMs: nowMs });
    if (this.sendTimes.length > sendTimesKeptMax) this.sendTimes.shift();
  }

  acked(seq: number, nowMs: number): void {
    if (seq > this.ackedSeq) this.ackedSeq = seq;
    let sentAtMs: number | undefined;
    while (this.sendTimes.length > 0 && this.sendTimes[0]!.seq <= this.ackedSeq) sentAtMs = this.sendTimes.shift()!.sentAtMs;
    if (sentAtMs !== undefined) this.ackRoundTripMsRecent = Math.max(nowMs - sentAtMs, this.ackRoundTripMsRecent * ackRoundTripDecay);
    while (this.ackWaiters.length > 0 && this.ackWaiters[0]!.seq <= this.ackedSeq) this.ackWaiters.shift()!.done();
    if (this.lagging && this.ackedSeq >= this.caughtUpAtSeq) this.lagging = false;
  }

  /**
   * Stop waiting for this peer until it has acked what was sent to it so far: every
   * reply waiting on it goes on now, not each at the end of its own wait.
   */
  markLagging(): void {
    this.lagging = true;
    this.caughtUpAtSeq = this.lastSentSeq;
    for (const waiter of this.ackWaiters.splice(0)) waiter.done();
  }

  /** Wake every waiter: the peer went down or lags, and is no longer waited for. */
  release(): void {
    for (const waiter of this.ackWaiters.splice(0)) waiter.done();
    this.cancelResync();
  }
}

/** Most states held for the membership at once (see Replicator.held): a few MB. */
export const heldStatesMax = 20_000;

/**
 * A state whose last change here was a merge alone (not resent live): the batch
 * that wrote it, and, when it is held exactly as a peer's live frame sent it (that
 * peer's own change in its batch `senderBatch`), the sender.
 */
class MergedChange {
  constructor(
    readonly seq: number,
    readonly sender: Actor | undefined,
    readonly senderBatch: number,
  ) {}
}

export class Replicator {
  private readonly peers = new Map<PeerId, PeerReplication>();
  /**
   * How each state last changed here: the batch number of this replica's own
   * change (or of the last stored batch, for a state loaded at start), or a
   * MergedChange. One entry a key: this is most of a replicator's memory.
   */
  private readonly lastChanges = new Map<StateKey, number | MergedChange>();
  /** Per peer incarnation: its batches up to this number are all merged here. */
  private readonly cursors = new Map<Actor, number>();
  /** One shared wait per batch number, however many replies wait on it. */
  private readonly replicatedWaits = new Map<number, Promise<void>>();
  /** Peers whose changes this replica has caught up with at least once since it started. */
  private readonly caughtUpWith = new Set<PeerId>();
  private caughtUpWaiters: (() => void)[] = [];
  /** Ack waits longer than ackWaitMsMax, for the few batches big enough to need them. */
  private readonly ackWaitMsBySeq = new Map<number, number>();
  /** States merged from live frames and not yet written: the bytes as received, their sender and batch. */
  private readonly liveMerges = new Map<StateKey, { bytes: Uint8Array; actor: Actor; batch: number }>();
  /**
   * Per peer, in arrival order: states with rows of an actor no member names yet
   * (UnadmittedActorError), and every later state from that peer, merged once the
   * membership admits it (retryHeld). Acked like the rest: they are not lost, and a
   * peer's states keep their order (a paid order never before its charges).
   */
  private readonly held = new Map<PeerId, StateEntry[]>();
  private heldCount = 0;

  constructor(private readonly deps: ReplicatorDeps) {}

  /** At start: every loaded state counts as changed in the last stored batch. */
  loaded(keys: Iterable<StateKey>, cursors: ReadonlyMap<Actor, number>): void {
    const seq = this.deps.durableSeq();
    for (const key of keys) this.lastChanges.set(key, seq);
    for (const [actor, cursor] of cursors) this.cursors.set(actor, cursor);
  }

  /**
   * Up to which of this replica's batches `peerId` holds every state durably, as
   * its last anti-entropy request said (0 if it is not up as incarnation `actor`).
   */
  heldUpTo(peerId: PeerId, actor: Actor): number {
    const peer = this.peers.get(peerId);
    return peer?.up === true && peer.actor === actor ? peer.heldUpTo : 0;
  }

  /** States deleted here for good (expired records): nothing to serve or remember of them. */
  forget(keys: readonly StateKey[]): void {
    for (const key of keys) {
      this.lastChanges.delete(key);
      this.liveMerges.delete(key);
    }
  }

  /** Up to which batch of `actor` every state it changed is merged here (0: none known). */
  mergedUpTo(actor: Actor): number {
    return this.cursors.get(actor) ?? 0;
  }

  status(): PeerStatus[] {
    return [...this.peers].map(([replicaId, peer]) => ({
      replicaId,
      actor: peer.actor,
      up: peer.up,
      lagging: peer.lagging,
      lastSentSeq: peer.lastSentSeq,
      ackedSeq: peer.ackedSeq,
      lag: Math.max(0, peer.lastSentSeq - peer.ackedSeq),
    }));
  }

  /** The current incarnation of `peerId` if its link is up. */
  upPeerActor(peerId: PeerId): Actor | undefined {
    const peer = this.peers.get(peerId);
    return peer?.up === true ? peer.actor : undefined;
  }

  /** Up peers that are not lagging: those worth asking for rights (a lagging one is likely silent). */
  responsivePeers(): { replicaId: PeerId; actor: Actor }[] {
    const responsive: { replicaId: PeerId; actor: Actor }[] = [];
    for (const [replicaId, peer] of this.peers) if (peer.up && !peer.lagging) responsive.push({ replicaId, actor: peer.actor });
    return responsive;
  }

  upPeers(): { replicaId: PeerId; actor: Actor }[] {
    const up: { replicaId: PeerId; actor: Actor }[] = [];
    for (const [replicaId, peer] of this.peers) if (peer.up) up.push({ replicaId, actor: peer.actor });
    return up;
  }

  peerUp(peerId: PeerId, actor: Actor): void {
    this.peers.get(peerId)?.release();
    this.peers.set(peerId, new PeerReplication(actor));
    this.askSync(peerId, this.peers.get(peerId)!, false);
  }

  peerDown(peerId: PeerId): void {
    const peer = this.peers.get(peerId);
    if (peer === undefined) return;
    peer.up = false;
    peer.release();
  }

  /** After a batch is durable: send what this replica changed itself to every up peer (`entries`: replicated keys only). */
  batchDurable(seq: number, entries: readonly { key: StateKey; bytes: Uint8Array; local: boolean }[]): void {
    const local: StateEntry[] = [];
    for (const { key, bytes, local: isLocal } of entries) {
      const live = this.liveMerges.get(key);
      this.liveMerges.delete(key);
      if (isLocal) {
        this.lastChanges.set(key, seq);
        local.push([key, bytes]);
      } else {
        // Held as its sender sent it if group commit wrote the very bytes a live frame
        // brought (it writes received bytes as they came while no other change joined them).
        const sentLive = live !== undefined && live.bytes === bytes;
        this.lastChanges.set(key, sentLive ? new MergedChange(seq, live.actor, live.batch) : new MergedChange(seq, undefined, 0));
      }
    }
    if (local.length === 0) return;
    // A batch_init of 100,000 keys takes peers a while to merge: allow for it.
    if (local.length >= statesPerFrameMax) this.ackWaitMsBySeq.set(seq, this.deps.ackWaitMsMax + Math.ceil(local.length / statesMergedPerMs));
    const ordered = inMergeOrder(local, ([key]) => key);
    for (const [peerId, peer] of this.peers) {
      if (peer.up && this.sendStates(peerId, ordered, seq, seq)) peer.sent(seq, this.deps.clock.now());
    }
  }

  /** Resolves when every up, non-lagging peer has acked batch `seq` (or lags). */
  replicated(seq: number): Promise<void> | undefined {
    const existing = this.replicatedWaits.get(seq);
    if (existing !== undefined) return existing;
    const behind: PeerReplication[] = [];
    for (const peer of this.peers.values()) {
      if (peer.up && !peer.lagging && peer.ackedSeq < Math.min(seq, peer.lastSentSeq)) behind.push(peer);
    }
    const sizedWaitMs = this.ackWaitMsBySeq.get(seq);
    this.ackWaitMsBySeq.delete(seq);
    if (behind.length === 0) return undefined;
    const ackWaitMs = sizedWaitMs ?? this.ackWaitMs(behind);
    const wait = new Promise<void>((resolve) => {
      let remaining = behind.length;
      let finished = false;
      const cancelTimer = this.deps.clock.after(ackWaitMs, () => {
        for (const peer of behind) {
          if (peer.up && peer.ackedSeq < Math.min(seq, peer.lastSentSeq)) {
            peer.markLagging();
            this.deps.log("warn", `peer ${peer.actor} did not ack batch ${seq} within ${ackWaitMs} ms: lagging`);
            for (const [peerId, candidate] of this.peers) if (candidate === peer) this.deps.onPeerLagging?.(peerId);
          }
        }
        finish();
      });
      const finish = () => {
        if (finished) return;
        finished = true;
        cancelTimer();
        this.replicatedWaits.delete(seq);
        resolve();
      };
      for (const peer of behind) {
        peer.ackWaiters.push({ seq: Math.min(seq, peer.lastSentSeq), done: () => --remaining === 0 && finish() });
      }
    });
    this.replicatedWaits.set(seq, wait);
    return wait;
  }

  /** How long a reply waits for these peers' acks: a few of their recent slowest round trips, within bounds. */
  private ackWaitMs(behind: readonly PeerReplication[]): number {
    const roundTripMs = Math.max(...behind.map((peer) => peer.ackRoundTripMsRecent));
    return Math.min(this.deps.ackWaitMsMax, Math.max(ackWaitMsFloor, Math.ceil(ackWaitRoundTrips * roundTripMs)));
  }

  receive(peerId: PeerId, message: PeerMessage): void {
    const peer = this.peers.get(peerId);
    if (peer === undefined || !peer.up) return;
    switch (message.type) {
      case "states":
        this.mergeStates(peerId, message.entries, peer.actor, message.batch ?? 0);
        if (message.batch !== undefined && message.seq === message.batch && message.batch > peer.liveMergedUpTo) peer.liveMergedUpTo = message.batch;
        // Acked once merged, before it is durable here: the sender holds it durably
        // and resends it until a syncDone moves our cursor; reads here wait for our
        // own durability of whatever they see.
        if (message.seq > 0) this.deps.transport.send(peerId, { type: "ack", seq: message.seq });
        break;
      case "ack":
        peer.acked(message.seq, this.deps.clock.now());
        break;
      case "syncRequest":
        peer.heldUpTo = Math.max(peer.heldUpTo, message.cursor);
        void this.serveSync(peerId, peer, message.cursor, message.mergedOnly, this.knownBy(peer.actor, message.known ?? []));
        break;
      case "syncDone":
        void this.finishSync(peerId, peer.actor, message.upTo);
        break;
      default:
        break;
    }
  }

  /** Merge a frame's states; `batch` > 0: they are the sender's own changes of that batch (live). */
  private mergeStates(peerId: PeerId, entries: readonly StateEntry[], actor: Actor, batch: number): void {
    if (this.held.has(peerId)) return this.hold(peerId, entries);
    let refused = 0;
    for (const [index, [key, bytes]] of entries.entries()) {
      try {
        if (this.deps.mergeState(key, bytes) && batch > 0) this.liveMerges.set(key, { bytes, actor, batch });
      } catch (error) {
        if (error instanceof UnadmittedActorError) {
          this.deps.log("warn", `holding ${key} and what follows from ${peerId} until the membership admits its writer: ${error.message}`);
          this.hold(peerId, entries.slice(index));
          break;
        }
        if (!(error instanceof DecodeError)) throw error;
        refused += 1;
        if (refused === 1) this.deps.log("warn", `refused an invalid state ${key} from ${peerId}: ${error.message}`);
      }
    }
    if (refused > 1) this.deps.log("warn", `refused ${refused} invalid states from ${peerId} in one frame`);
  }

  private hold(peerId: PeerId, entries: readonly StateEntry[]): void {
    const queue = this.held.get(peerId) ?? [];
    this.held.set(peerId, queue);
    queue.push(...entries);
    this.heldCount += entries.length;
    // Bounded: a peer that keeps sending rows nobody admits loses its oldest held states (forged, most likely).
    while (this.heldCount > heldStatesMax && queue.length > 0) {
      const [dropped] = queue.shift()!;
      this.heldCount -= 1;
      this.deps.log("warn", `dropped held state ${dropped} from ${peerId}: over ${heldStatesMax} states wait for the membership`);
    }
    if (queue.length === 0) this.held.delete(peerId);
  }

  /** The membership changed: merge, per peer in order, the held states it now admits. */
  retryHeld(): void {
    for (const [peerId, queue] of this.held) {
      while (queue.length > 0) {
        const [key, bytes] = queue[0]!;
        try {
          this.deps.mergeState(key, bytes);
        } catch (error) {
          if (error instanceof UnadmittedActorError) break;
          if (!(error instanceof DecodeError)) throw error;
          this.deps.log("warn", `refused an invalid state ${key} from ${peerId}: ${error.message}`);
        }
        queue.shift();
        this.heldCount -= 1;
      }
      if (queue.length === 0) this.held.delete(peerId);
    }
  }

  /**
   * Send every state changed after `cursor`, read back from one snapshot of the
   * database (taken between batches, so a checkout's states are all in it or none),
   * then syncDone with the last fsynced batch: the peer's new cursor.
   */
  private async serveSync(peerId: PeerId, link: PeerReplication, cursor: number, mergedOnly: boolean, known: ReadonlyMap<Actor, number>): Promise<void> {
    // Only on the link that asked: a chunk lost with an older link must not be
    // followed by a syncDone on the next one, which would move the cursor past it.
    const linkLasts = () => this.peers.get(peerId) === link && link.up;
    // Merged states are written without fsync: make them durable, so the cursor
    // given to the peer never counts a batch that a power loss could take back.
    await this.deps.syncAll();
    const { upTo, keys, snapshot } = await new Promise<{ upTo: number; keys: readonly StateKey[]; snapshot: DurableSnapshot }>((resolve) =>
      this.deps.whenQuiet((snapshot) => {
        const keys: StateKey[] = [];
        for (const [key, change] of this.lastChanges) if (isServed(change, cursor, mergedOnly, known)) keys.push(key);
        resolve({ upTo: this.deps.durableSeq(), keys: inMergeOrder(keys, (key) => key), snapshot });
      }),
    );
    try {
      for (let start = 0; start < keys.length; start += this.deps.statesPerFrame) {
        const chunk = keys.slice(start, start + this.deps.statesPerFrame);
        const values = await snapshot.read(chunk);
        const entries: StateEntry[] = [];
        chunk.forEach((key, index) => {
          const bytes = values[index];
          if (bytes !== undefined) entries.push([key, bytes]);
        });
        if (!linkLasts() || !this.sendStates(peerId, entries, 0)) return;
      }
      if (linkLasts()) this.deps.transport.send(peerId, { type: "syncDone", upTo });
    } finally {
      await snapshot.close();
    }
  }

  /** What a requester says it has merged of each replica's own changes, and its own changes, all of them. */
  private knownBy(requester: Actor, known: readonly ActorBatch[]): ReadonlyMap<Actor, number> {
    const byActor = new Map<Actor, number>(known);
    byActor.set(requester, Number.MAX_SAFE_INTEGER);
    return byActor;
  }

  /**
   * Up to which batch this replica has merged each up peer's own changes: all of
   * them up to the first sync's end on the current link, and every live frame since
   * (its cursor alone before that round is done).
   */
  private knownUpTo(except: PeerId): ActorBatch[] {
    const known: ActorBatch[] = [];
    for (const [peerId, peer] of this.peers) {
      if (peerId === except || !peer.up || known.length === knownPeersPerRequestMax) continue;
      const cursor = this.cursors.get(peer.actor) ?? 0;
      const upTo = peer.caughtUpOnLink ? Math.max(cursor, peer.liveMergedUpTo) : cursor;
      if (upTo > 0) known.push([peer.actor, upTo]);
    }
    return known;
  }

  private async finishSync(peerId: PeerId, actor: Actor, upTo: number): Promise<void> {
    await this.deps.durable();
    // States held for the membership are in memory only: the cursor stays, so that a restart asks for them again.
    if ((this.cursors.get(actor) ?? 0) < upTo && !this.held.has(peerId)) {
      this.cursors.set(actor, upTo);
      this.deps.cursorMoved(actor);
      await this.deps.durable();
    }
    this.deps.transport.send(peerId, { type: "ack", seq: upTo });
    const peer = this.peers.get(peerId);
    if (peer?.actor === actor) {
      peer.caughtUpOnLink = true;
      peer.syncRoundsDone += 1;
      while (peer.roundWaiters.length > 0 && peer.roundWaiters[0]!.round <= peer.syncRoundsDone) peer.roundWaiters.shift()!.done();
    }
    this.caughtUpWith.add(peerId);
    for (const wake of this.caughtUpWaiters.splice(0)) wake();
    this.scheduleResync(peerId);
  }

  /** Ask `peerId` for an anti-entropy round; returns its number on this link. */
  private askSync(peerId: PeerId, peer: PeerReplication, mergedOnly: boolean): number {
    this.deps.transport.send(peerId, { type: "syncRequest", cursor: this.cursors.get(peer.actor) ?? 0, mergedOnly, known: this.knownUpTo(peerId) });
    return ++peer.syncRoundsAsked;
  }

  /**
   * A full anti-entropy round with each of `peers`, asked now: resolves once each has
   * ended (everything the peer held when it served the round is merged here, durably)
   * or after `waitMsMax`, with the peers whose round did not end.
   */
  async syncNow(peers: readonly PeerId[], waitMsMax: number): Promise<PeerId[]> {
    const pending = new Set<PeerId>();
    await new Promise<void>((resolve) => {
      const cancel = this.deps.clock.after(waitMsMax, resolve);
      for (const peerId of peers) {
        const peer = this.peers.get(peerId);
        if (peer === undefined || !peer.up) continue;
        pending.add(peerId);
        const round = this.askSync(peerId, peer, false);
        peer.roundWaiters.push({
          round,
          done: () => {
            pending.delete(peerId);
            if (pending.size === 0) {
              cancel();
              resolve();
            }
          },
        });
      }
      if (pending.size === 0) {
        cancel();
        resolve();
      }
    });
    return peers.filter((peerId) => pending.has(peerId) || this.peers.get(peerId)?.up !== true);
  }

  /** The next (merged-only) anti-entropy round with `peerId`, while this link lasts. */
  private scheduleResync(peerId: PeerId): void {
    const peer = this.peers.get(peerId);
    if (peer === undefined || !peer.up) return;
    peer.cancelResync();
    peer.cancelResync = this.deps.clock.after(this.deps.resyncMs, () => {
      if (this.peers.get(peerId) !== peer || !peer.up) return;
      this.askSync(peerId, peer, true);
    });
  }

  /**
   * Resolves once this replica has caught up with every one of `peers` (all it
   * lacked from each is merged and durable), or after `waitMsMax`: a replica
   * that cannot reach some of them still starts (G5).
   */
  async catchUp(peers: readonly PeerId[], waitMsMax: number): Promise<PeerId[]> {
    const deadline = this.deps.clock.now() + waitMsMax;
    for (;;) {
      const missing = peers.filter((peer) => !this.caughtUpWith.has(peer));
      const waitMs = deadline - this.deps.clock.now();
      if (missing.length === 0 || waitMs <= 0) return missing;
      await new Promise<void>((resolve) => {
        const cancel = this.deps.clock.after(waitMs, resolve);
        this.caughtUpWaiters.push(() => {
          cancel();
          resolve();
        });
      });
    }
  }

  /**
   * Send entries in frames under the size bounds, in the order given (callers put
   * orders last: inMergeOrder); only the last frame carries `seq` (so an ack means
   * the whole batch), every frame `batch` (live: this replica's own changes of
   * that batch). False if the link is down.
   */
  private sendStates(peerId: PeerId, entries: readonly StateEntry[], seq: number, batch = 0): boolean {
    let frame: StateEntry[] = [];
    let frameBytes = 0;
    for (const entry of entries) {
      if (frame.length === this.deps.statesPerFrame || frameBytes + entry[1].length > stateBytesPerFrameTarget) {
        if (!this.deps.transport.send(peerId, { type: "states", seq: 0, entries: frame, ...(batch > 0 ? { batch } : {}) })) return false;
        frame = [];
        frameBytes = 0;
      }
      frame.push(entry);
      frameBytes += entry[1].length + entry[0].length;
    }
    return this.deps.transport.send(peerId, { type: "states", seq, entries: frame, ...(batch > 0 ? { batch } : {}) });
  }
}

/**
 * batch_init records first, orders last (stable otherwise). A peer merges frame by
 * frame, so a batch or a catch-up split into frames must never show it an order
 * paid before the stock and credit taken by that checkout: DESIGN.md's "no replica
 * ever sees paid without the matching decrements". The charges of a paid order sent
 * here are in a user or item state sent before it, or already at the peer (changed
 * at or before its cursor). A batch record comes before the states of its keys.
 */
export function inMergeOrder<T>(list: readonly T[], keyOf: (element: T) => StateKey): readonly T[] {
  if (list.length <= 1) return list;
  const records: T[] = [];
  const others: T[] = [];
  const orders: T[] = [];
  for (const element of list) {
    const kind = keyOf(element)[0];
    (kind === "b" ? records : kind === "o" ? orders : others).push(element);
  }
  return records.length + orders.length === 0 ? list : [...records, ...others, ...orders];
}

/**
 * A sync request after `cursor` gets a state changed after it: this replica's own
 * changes only if it asks for all, and a merged state unless the requester holds it
 * (one a replica sent live, in a batch the requester says it has merged).
 */
function isServed(change: number | MergedChange, cursor: number, mergedOnly: boolean, known: ReadonlyMap<Actor, number>): boolean {
  if (typeof change === "number") return !mergedOnly && change > cursor;
  const heldByRequester = change.sender !== undefined && change.senderBatch <= (known.get(change.sender) ?? 0);
  return change.seq > cursor && !heldByRequester;
}
