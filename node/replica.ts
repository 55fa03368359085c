// One replica: the in-memory shop state, durable in LevelDB through group commit,
// replicated to its peers. Every mutation runs synchronously on the state; if
// rights are elsewhere it gathers them from peers and runs again; once it applies,
// it waits until its changes are durable and acked by the up peers. Every read
// takes its answer first, then waits until what it saw is durable, so no reply
// shows a state that a crash could take back.
import { mkdir } from "node:fs/promises";
import { Level } from "level";
import type { Actor } from "../crdt/boundedCounter.js";
import type { OrderState } from "../crdt/orderState.js";
import { type ChangeOrigin, type Refusal, ShopState, type StateKey, openPeerStatePolicy, orderKey } from "../crdt/shopState.js";
import { type Clock, realClock } from "../cluster/clock.js";
import { DrainHandshake, type Writer } from "../cluster/drainHandshake.js";
import type { Announcement, MemberState, MemberView } from "../cluster/membership.js";
import { MembershipGossip } from "../cluster/membershipGossip.js";
import { type PeerMessage, statesPerFrameMax } from "../cluster/messages.js";
import { type PeerStatus, Replicator, type ReplicatorDeps } from "../cluster/replicator.js";
import { CheckoutForwarder } from "../cluster/checkoutForwarder.js";
import { RightsBroker } from "../cluster/rightsBroker.js";
import type { PeerId, Transport } from "../cluster/transport.js";
import type { Database } from "./database.js";
import { type BatchWritten, GroupCommit } from "./groupCommit.js";
import { IdempotencyStore, type RequestGuard, isRecordable } from "./idempotency.js";
import { type Identity, actorOf, loadOrCreateIdentity } from "./identity.js";
import { ReleasedActors } from "./releasedActors.js";
import {
  type ReplicatedStores,
  type StoredValues,
  cursorKey,
  encodeStored,
  membershipKey,
  isReplicatedKey,
  mergeReplicated,
  readBatchSeq,
  setAsideKeyPrefix,
} from "./storageLayout.js";
import { loadStoredStates, writtenStatesIn } from "./storedStates.js";

/** Where a replica keeps its state: a LevelDB folder (made if missing), or a database the caller made (simulation tests: memory-level). */
export type ReplicaStorage = { readonly dataDir: string } | { readonly db: Database };

export type ReplicaOptions = ReplicaStorage & ReplicaSettings;

export interface ReplicaSettings {
  readonly replicaId: string;
  /** Links to the peers; a replica alone gets a transport with no peers. */
  readonly transport: (actor: Actor) => Transport;
  /** How long a reply waits for a peer's ack before that peer is marked lagging. */
  readonly ackWaitMsMax: number;
  /** How long an operation may wait for rights held by peers. */
  readonly rightsWaitMsMax: number;
  /** Period of the anti-entropy rounds on an open link (see Replicator). */
  readonly resyncMs?: number;
  /** Most states in one replication frame (default and ceiling: statesPerFrameMax). */
  readonly statesPerFrame?: number;
  readonly clock?: Clock;
  /** How group commit runs its flush on a later turn of the event loop: setImmediate unless a simulation schedules it. */
  readonly defer?: (callback: () => void) => void;
  readonly log: (level: "info" | "warn", message: string) => void;
  /** A failed write leaves memory ahead of disk: the replica must stop. */
  readonly onWriteFailure: (error: unknown) => void;
  /** Told of every group-commit batch written (metrics). */
  readonly onBatchWritten?: (batch: BatchWritten) => void;
  /**
   * The replicas named in this replica's settings (--peers): they may receive rights
   * before the membership document lists them. Any other replica must be a member
   * (joining, active or draining) in the document.
   */
  readonly configuredPeerIds?: readonly string[];
  /** Told of the members whenever the document or the links may have changed (main.ts dials new members). */
  readonly onMembersChanged?: (members: readonly MemberView[]) => void;
}

/** How long a release waits to catch up with every reachable peer first. */
const releaseSyncWaitMsMax = 10_000;
/** How long a request's Idempotency-Key is remembered (docs/API.md). */
const idempotencyWindowMs = 60 * 60 * 1000;
/** Most idempotency records kept; past it the oldest are forgotten early. */
const idempotencyRecordsMax = 200_000;
const idempotencyExpiryPeriodMs = 60_000;
/** States relayed through a bridge, or left by a lost disk, arrive within about this long. */
const resyncMsDefault = 1000;
/** How often a replica that left hands on rights that reached it late. */
const lateRightsSweepMs = 1000;
/** Most passes over the keys a leaving replica makes to hand its rights over, per round. */
const leavePassesMax = 5;
/** How long leave() waits for every other replica to confirm it moves no more rights here. */
const leaveSettleWaitMsMax = 10_000;
/** How often join() looks again for a member it has learned of. */
const joinPollMs = 50;
/** How often leave() looks again while it waits for those confirmations. */
const leaveSettlePollMs = 50;
/** Keys handed over per durable, acked step while leaving. */
const keysPerHandOverStepMax = 2000;
/** How often a checkout handed to the token's holder looks again for the order paid here. */
const forwardedOutcomePollMs = 10;
/** Most checkouts forwarded by peers that run here at once. */
const forwardedCheckoutsInFlightMax = 10_000;

/** A write that may or may not have happened: the client must be told neither (the connection closes unanswered). */
export class OutcomeUnknownError extends Error {}

/** What of a checked-out order the answer's metrics count (its user and items), as this replica reads it. */
export type CheckedOutOrder = Readonly<Pick<OrderState, "userId" | "lines">>;

/** What a checkout decided, and its order (undefined if there is no such order). */
export interface CheckoutAnswer {
  readonly refusal: Refusal | null;
  readonly order: CheckedOutOrder | undefined;
}

/**
 * Where a replica is in its life (docs/DESIGN.md, "Leaving for good").
 * - starting: loading its stored states (nothing to write back), no links yet;
 * - serving: an active member;
 * - draining: leaving, by its own leave or an operator's edit of the membership: it
 *   takes writes, but gathers no rights and spreads new ones to the active peers;
 * - retiring: the last hand-over of a leave: it refuses writes too, so none can put
 *   rights here, or change a state, after what the peers were shown to hold;
 * - retired: gone for good: it refuses writes and hands on rights that arrive late.
 */
export type Lifecycle = "starting" | "serving" | "draining" | "retiring" | "retired";

/** The lifecycle once the membership document shows this replica `own`: a leave's last hand-over runs to its end. */
function lifecycleAfter(current: Lifecycle, own: MemberState): Lifecycle {
  if (own === "retired") return "retired";
  if (current === "retiring") return "retiring";
  return own === "draining" ? "draining" : "serving";
}

/** What the replica needs from the local keys before it can build its parts. */
interface StoredAtStart {
  readonly batchSeq: number;
  readonly membership: Uint8Array | undefined;
}

export interface LeaveReport {
  readonly keysHandedOver: number;
  /** Keys whose rights came back while leaving (more than `leavePassesMax` passes): still here. */
  readonly keysStillHeld: number;
  /**
   * Replicas that did not confirm in time (unreachable ones, typically). While
   * draining: that they move no more rights here; until they do, rights could
   * still arrive, so the replica stays draining. Once retired: that they see it
   * retired; until they do, keep it running (they would wait for it when they
   * leave themselves). Either way, ask it to leave again once they are back.
   */
  readonly waitingFor: string[];
  readonly state: "retired" | "draining";
}

export interface ReleaseReport {
  readonly actor: Actor;
  readonly keysReleased: number;
  /** Keys whose rows had no room left to take the transfer: still held by the released actor. */
  readonly keysStillHeld: number;
  /** The actors that received the rights. */
  readonly to: Actor[];
  /** The member retired because the released actor was its last incarnation (gone for good). */
  readonly memberRetired: string | null;
}

export interface ReplicaStatus {
  readonly replicaId: string;
  readonly actor: Actor;
  readonly durableSeq: number;
  readonly peers: PeerStatus[];
  readonly members: MemberView[];
}

export class Replica {
  readonly shop: ShopState;
  /** What requests sent with an Idempotency-Key decided (node/idempotency.ts). */
  readonly idempotency: IdempotencyStore;
  private readonly released: ReleasedActors;
  private readonly stores: ReplicatedStores;
  private readonly clock: Clock;
  private readonly transport: Transport;
  private readonly commit: GroupCommit;
  private readonly gossip: MembershipGossip;
  private readonly replicator: Replicator;
  private readonly broker: RightsBroker;
  private readonly forwarder: CheckoutForwarder;
  private readonly drainHandshake: DrainHandshake;
  private lifecycle: Lifecycle = "starting";
  private leaveUnderway: Promise<LeaveReport | Refusal> | undefined;
  private cancelSweep: () => void = () => {};
  private cancelExpiry: () => void = () => {};

  static async open(options: ReplicaOptions): Promise<Replica> {
    const db = await openDatabase(options);
    const identity = await loadOrCreateIdentity(db, options.replicaId);
    const stored: StoredAtStart = { batchSeq: await readBatchSeq(db), membership: await db.get(membershipKey) };
    const replica = new Replica(db, identity, stored, options);
    await replica.load();
    await replica.start();
    return replica;
  }

  /**
   * Builds the parts in dependency order. A call back into a part built after the
   * caller goes through `this`: none runs before open() has built them all (group
   * commit flushes on a later turn, the transport starts last).
   */
  private constructor(
    private readonly db: Database,
    readonly identity: Identity,
    stored: StoredAtStart,
    private readonly options: ReplicaOptions,
  ) {
    const actor = actorOf(identity);
    const markLocal = (key: StateKey) => this.keyChanged(key, "local");
    this.clock = options.clock ?? realClock;
    this.transport = options.transport(actor);
    this.shop = new ShopState(actor, (key, origin, bytes) => this.keyChanged(key, origin, bytes), writtenStatesIn(db));
    this.idempotency = new IdempotencyStore({
      actor,
      nowMs: () => Date.now(),
      markChanged: markLocal,
      windowMs: idempotencyWindowMs,
      recordsMax: idempotencyRecordsMax,
    });
    this.released = new ReleasedActors(markLocal);
    this.shop.peerStatePolicy = { ...openPeerStatePolicy, released: (releasedActor) => this.released.has(releasedActor) };
    this.stores = { shop: this.shop, idempotency: this.idempotency, released: this.released };
    const values: StoredValues = { ...this.stores, membership: () => this.gossip.membership.save(), mergedUpTo: (peer) => this.replicator.mergedUpTo(peer) };
    this.commit = new GroupCommit(db, stored.batchSeq, {
      encode: (key, received) => encodeStored(values, key, received),
      onDurable: (batch) => {
        const replicated = batch.entries.filter((entry) => isReplicatedKey(entry.key));
        this.replicator.batchDurable(batch.seq, replicated);
        // Written states unchanged since are read back from the database when next read (crdt/keptStates.ts).
        this.shop.settle(replicated);
      },
      onWriteFailure: options.onWriteFailure,
      defer: options.defer ?? setImmediate,
      ...(options.onBatchWritten === undefined ? {} : { observe: options.onBatchWritten }),
    });
    this.gossip = MembershipGossip.load(identity.replicaId, stored.membership, {
      transport: this.transport,
      persist: () => markLocal(membershipKey),
      upPeers: () => this.replicator.upPeers().map((peer) => peer.replicaId),
      log: options.log,
    });
    this.replicator = new Replicator(this.replicatorDeps());
    this.broker = new RightsBroker({
      selfId: identity.replicaId,
      transport: this.transport,
      shop: this.shop,
      clock: this.clock,
      durable: () => this.commit.durable(),
      // Rights are asked of responsive peers only: rights held by a silent one are refused at once (409), not after a wait.
      responsivePeers: () => this.replicator.responsivePeers(),
      mayReceiveRights: (peerId) => this.mayReceiveRights(peerId),
      retryPauseMs: 5,
      log: options.log,
    });
    this.forwarder = new CheckoutForwarder({
      transport: this.transport,
      clock: this.clock,
      mayForward: (peerId) => this.mayReceiveRights(peerId),
      checkoutHere: (orderId) => this.mutate((shop) => shop.checkout(orderId)),
      inFlightMax: forwardedCheckoutsInFlightMax,
      log: options.log,
    });
    this.drainHandshake = new DrainHandshake({
      transport: this.transport,
      durable: () => this.commit.durable(),
      mergedUpTo: (peer) => this.replicator.mergedUpTo(peer),
    });
  }

  private replicatorDeps(): ReplicatorDeps {
    const commit = this.commit;
    return {
      transport: this.transport,
      mergeState: (key, bytes) => mergeReplicated(this.stores, key, bytes, "peer"),
      clock: this.clock,
      durable: () => commit.durable(),
      durableSeq: () => commit.durableSeq,
      syncAll: () => commit.syncAll(),
      cursorMoved: (peer) => commit.markChanged(cursorKey(peer), "local"),
      whenQuiet: (take) =>
        commit.whenQuiet(() => {
          const snapshot = this.db.snapshot();
          take({ read: (keys) => this.db.getMany(keys as StateKey[], { snapshot }), close: () => snapshot.close() });
        }),
      log: this.options.log,
      ackWaitMsMax: this.options.ackWaitMsMax,
      resyncMs: this.options.resyncMs ?? resyncMsDefault,
      statesPerFrame: Math.min(this.options.statesPerFrame ?? statesPerFrameMax, statesPerFrameMax),
      // A peer that misses an ack wait is likely silent: its grants will not come either.
      onPeerLagging: (peerId) => this.broker.peerDown(peerId),
    };
  }

  /** Merge every stored state; what does not decode is set aside, to come back from the peers. */
  private async load(): Promise<void> {
    const { stateKeys, cursors, setAside } = await loadStoredStates(this.db, (key, bytes) => mergeReplicated(this.stores, key, bytes, "disk"));
    if (setAside.length > 0) {
      const shown = setAside.slice(0, 10).join(", ");
      this.options.log(
        "warn",
        `set aside ${setAside.length} stored records that do not decode (${shown}${setAside.length > 10 ? ", …" : ""}) under ${setAsideKeyPrefix}<key>; fetching every state again from the peers`,
      );
    }
    this.replicator.loaded(stateKeys, cursors);
  }

  private async start(): Promise<void> {
    this.membershipChanged(); // leaves "starting": serving, draining or retired, as the document says
    this.expireIdempotencyRecords();
    await this.transport.start({
      peerUp: (peer, peerActor) => this.peerUp(peer, peerActor),
      peerDown: (peer) => this.peerDown(peer),
      message: (peer, message) => this.receive(peer, message),
    });
  }

  /** A store changed `key`: write it with the next batch. While starting, the stores load what is on disk already. */
  private keyChanged(key: StateKey, origin: ChangeOrigin, bytes?: Uint8Array): void {
    if (this.lifecycle !== "starting") this.commit.markChanged(key, origin, bytes);
  }

  private receive(peer: PeerId, message: PeerMessage): void {
    if (message.type === "rightsRequest" || message.type === "rightsGrant") {
      const peerActor = this.replicator.upPeerActor(peer);
      if (peerActor !== undefined) this.broker.receive(peer, peerActor, message);
    } else if (message.type === "checkoutForward" || message.type === "checkoutAnswer") {
      const peerActor = this.replicator.upPeerActor(peer);
      if (peerActor !== undefined) this.forwarder.receive(peer, peerActor, message);
    } else if (message.type === "drainSeen") {
      const peerActor = this.replicator.upPeerActor(peer);
      if (peerActor !== undefined) this.drainHandshake.receive(peer, peerActor, message);
    } else if (message.type === "membership") {
      this.gossip.receive(peer, message);
      this.membershipChanged();
    } else {
      this.replicator.receive(peer, message);
    }
  }

  /**
   * Leave the cluster for good: mark this replica draining (peers stop handing it
   * new rights), hand every right and order token it holds to the active peers it
   * can reach, durably and acked. Then wait until every other replica has confirmed
   * that it moves no more rights here and all it moved is merged (DrainHandshake),
   * hand over what came in meanwhile, and mark this replica retired. Safe to stop
   * afterwards. If some replica does not confirm in time, it stays draining.
   */
  leave(): Promise<LeaveReport | Refusal> {
    // One leave at a time: a second request shares the answer of the first.
    this.leaveUnderway ??= this.leaveOnce().finally(() => (this.leaveUnderway = undefined));
    return this.leaveUnderway;
  }

  private async leaveOnce(): Promise<LeaveReport | Refusal> {
    if (this.lifecycle === "retired") {
      const waitingFor = await this.waitForWriters(this.clock.now() + leaveSettleWaitMsMax, (writers) => this.drainHandshake.unawareOfRetirement(writers));
      return { keysHandedOver: 0, keysStillHeld: [...this.shop.keysWithRights()].length, waitingFor, state: "retired" };
    }
    if (this.activePeerActors().length === 0) {
      return { reason: "rights-elsewhere", message: "no active peer is reachable to take this replica's rights: not leaving" };
    }
    this.gossip.setState(this.identity.replicaId, "draining");
    this.membershipChanged();
    const deadline = this.clock.now() + leaveSettleWaitMsMax;
    let keysHandedOver = await this.handOverPasses();
    let waitingFor = await this.waitForWriters(deadline, (writers) => this.drainHandshake.unsettled(writers));
    this.lifecycle = "retiring";
    keysHandedOver += await this.handOverPasses();
    // Its data may be deleted once it retired: every other replica must hold all of it
    // durably. (The ordered link mostly ensures this already; this wait covers a link
    // that broke with hand-over frames in flight, whose resend by anti-entropy could
    // otherwise still be under way.)
    const lastSeq = await this.commit.durable();
    if (waitingFor.length === 0) {
      waitingFor = await this.waitForWriters(deadline, (writers) =>
        writers.filter((writer) => this.replicator.heldUpTo(writer.replicaId, writer.actor) < lastSeq).map((writer) => writer.replicaId),
      );
    }
    const keysStillHeld = [...this.shop.keysWithRights()].length;
    const state = keysStillHeld === 0 && waitingFor.length === 0 ? "retired" : "draining";
    if (state === "retired") {
      this.gossip.setState(this.identity.replicaId, "retired");
      this.membershipChanged();
      // Peers must learn it, or they would wait for this replica at their own leave.
      waitingFor = await this.waitForWriters(this.clock.now() + leaveSettleWaitMsMax, (writers) => this.drainHandshake.unawareOfRetirement(writers));
    } else {
      // Still a member: it takes writes again (they spread to peers).
      this.lifecycle = lifecycleAfter("draining", this.ownMemberState());
    }
    await this.replicator.replicated(await this.commit.durable());
    this.sweepLateRights();
    return { keysHandedOver, keysStillHeld, waitingFor, state };
  }

  /** Hand-over passes until one moves nothing (at most `leavePassesMax`). */
  private async handOverPasses(): Promise<number> {
    let keysHandedOver = 0;
    for (let pass = 0; pass < leavePassesMax; pass++) {
      const moved = await this.handOverPass();
      keysHandedOver += moved;
      if (moved === 0) break;
    }
    return keysHandedOver;
  }

  /**
   * Wait until `unsettled` finds none of the other replicas that could still move
   * rights here, or until `deadline`; returns those still unsettled then.
   */
  private async waitForWriters(deadline: number, unsettled: (writers: readonly Writer[]) => string[]): Promise<string[]> {
    for (;;) {
      const waitingFor = unsettled(this.writers());
      if (waitingFor.length === 0 || this.clock.now() >= deadline) return waitingFor;
      await new Promise<void>((resolve) => this.clock.after(leaveSettlePollMs, resolve));
    }
  }

  /**
   * Every replica that could still move rights here: each member not retired, and
   * each up peer whatever its state (a retired one may still be handing on late rights).
   */
  private writers(): Writer[] {
    const writers = new Map<string, Writer>();
    for (const member of this.gossip.view()) {
      if (member.replicaId !== this.identity.replicaId && member.state !== "retired") writers.set(member.replicaId, member);
    }
    for (const peer of this.replicator.upPeers()) writers.set(peer.replicaId, peer);
    return [...writers.values()];
  }

  /**
   * Rights may still arrive after the last pass (a peer that had not yet heard of
   * the leave spread new ones here): hand them on too, every second, for as long
   * as this process runs.
   */
  private sweepLateRights(): void {
    this.cancelSweep();
    this.cancelSweep = this.clock.after(lateRightsSweepMs, () => {
      const late = !this.shop.keysWithRights().next().done;
      void (late ? this.handOverPass() : Promise.resolve(0)).then(() => this.sweepLateRights());
    });
  }

  /** One pass over every key with rights here, handed over in bounded, durable, acked steps. */
  private async handOverPass(): Promise<number> {
    let moved = 0;
    const keys = this.shop.keysWithRights();
    let exhausted = false;
    while (!exhausted) {
      const targets = this.activePeerActors();
      if (targets.length === 0) break;
      let step = 0;
      while (step < keysPerHandOverStepMax) {
        const next = keys.next();
        if (next.done === true) {
          exhausted = true;
          break;
        }
        if (this.shop.handOverAll(next.value, targets, moved + step)) step += 1;
      }
      moved += step;
      if (step > 0) await this.replicator.replicated(await this.commit.durable());
    }
    return moved;
  }

  private activePeerActors(members: readonly MemberView[] = this.gossip.view()): Actor[] {
    const active = new Set(members.filter((member) => member.state === "active").map((member) => member.replicaId));
    return this.replicator
      .upPeers()
      .filter((peer) => active.has(peer.replicaId))
      .sort((a, b) => (a.replicaId < b.replicaId ? -1 : 1))
      .map((peer) => peer.actor);
  }

  /**
   * Wait (at most `waitMsMax`) until this replica has caught up with each of
   * `peers`, so that it does not answer from a stale state after a restart.
   * Returns the peers it could not catch up with in time.
   */
  catchUp(peers: readonly PeerId[], waitMsMax: number): Promise<PeerId[]> {
    return this.replicator.catchUp(peers, waitMsMax);
  }

  /** Enter (or refresh) this replica's entry in the membership document. */
  announce(self: Announcement): void {
    this.gossip.announce(self);
    this.membershipChanged();
  }

  /**
   * This replica's own state in the membership document, if it has an entry: a
   * replica with none, or still joining, joins (join()) rather than restarts.
   */
  ownMembership(): MemberState | undefined {
    return this.member(this.identity.replicaId)?.state;
  }

  /** A replica's entry in the membership document, if it has one. */
  member(replicaId: PeerId): MemberView | undefined {
    return this.gossip.membership.member(replicaId);
  }

  /**
   * Join a running cluster (docs/DESIGN.md, "Joining"): wait until the document,
   * learned through a seed's link, lists an active member; enter this replica as
   * joining (peers accept its states, spread it no rights yet); catch up with every
   * active member (at most `waitMsMax`); then turn active, so that new rights are
   * spread to it and donors hand it rights when it asks. Returns the members it
   * could not catch up with in time (it turns active anyway, as a restart serves).
   */
  async join(self: Announcement, waitMsMax: number, onWaiting: (waitedMs: number) => void = () => {}): Promise<PeerId[]> {
    const startedAt = this.clock.now();
    let toldAt = startedAt;
    while (this.activeMemberIds().length === 0) {
      if (this.clock.now() - toldAt >= waitMsMax) {
        toldAt = this.clock.now();
        onWaiting(toldAt - startedAt);
      }
      await new Promise<void>((resolve) => this.clock.after(joinPollMs, resolve));
    }
    this.gossip.announce(self, "joining");
    this.membershipChanged();
    const notCaughtUp = await this.catchUp(this.activeMemberIds(), waitMsMax);
    if (this.ownMembership() === "joining") this.gossip.setState(this.identity.replicaId, "active");
    this.membershipChanged();
    return notCaughtUp;
  }

  /** Active members other than this replica, as the document shows them. */
  private activeMemberIds(): PeerId[] {
    return this.gossip
      .view()
      .filter((member) => member.state === "active" && member.replicaId !== this.identity.replicaId)
      .map((member) => member.replicaId);
  }

  /** Rights go only to configured peers and to members of the document (not retired): never to a stranger. */
  private mayReceiveRights(peerId: PeerId): boolean {
    if (this.options.configuredPeerIds?.includes(peerId) === true) return true;
    const state = this.member(peerId)?.state;
    return state !== undefined && state !== "retired";
  }

  /**
   * Apply `change` now, gathering rights from peers while it says they are
   * elsewhere; resolve once the change is durable and acked by the up peers.
   * `guard`: the request's Idempotency-Key, whose decision is recorded with the change.
   * `handOff`: asked once, before gathering rights, whether a peer should make the
   * change instead; its answer then stands (undefined: go on here).
   */
  async mutate(
    change: (shop: ShopState) => Refusal | null,
    guard?: RequestGuard,
    handOff?: (refusal: Refusal) => Promise<Refusal | null | undefined>,
  ): Promise<Refusal | null> {
    if (guard?.replay !== undefined) {
      // A repeat of a request with an Idempotency-Key: its first decision, nothing changed.
      if (!this.commit.idle) await this.commit.durable();
      const refusal = guard.replay.refusal;
      return refusal === null ? null : { ...refusal };
    }
    if (this.lifecycle === "retiring" || this.lifecycle === "retired") {
      return refusedWhileLeaving("this replica is leaving the cluster and takes no more writes: send them to another replica");
    }
    let deadline: number | undefined;
    for (;;) {
      const refusal = change(this.shop);
      const final = refusal === null || refusal.reason !== "rights-elsewhere" || refusal.missing === undefined || this.lifecycle !== "serving";
      if (final && guard !== undefined && isRecordable(refusal)) {
        // In the same synchronous step as the change: both go in one batch.
        this.idempotency.record(guard, refusal);
        await this.replicator.replicated(await this.commit.durable());
        return refusal;
      }
      if (refusal === null) {
        await this.replicator.replicated(await this.commit.durable());
        return null;
      }
      // A leaving replica gathers no rights: they would only have to be handed on again.
      if (final) return refusal;
      if (handOff !== undefined && deadline === undefined) {
        const handedOff = await handOff(refusal);
        if (handedOff !== undefined) return handedOff;
      }
      deadline ??= this.clock.now() + this.options.rightsWaitMsMax;
      if (!(await this.broker.acquire(refusal.missing, deadline))) {
        const waited = this.clock.now() >= deadline;
        return {
          reason: "rights-elsewhere",
          message: waited
            ? `${refusal.message}, and no reachable replica handed them over within ${this.options.rightsWaitMsMax} ms`
            : `${refusal.message}, and no reachable replica that answers holds them`,
        };
      }
    }
  }

  /**
   * A checkout. Where the order's token is at an active, responsive peer, that peer
   * decides it (docs/DESIGN.md, "A checkout handed to the token's holder") instead
   * of handing the token over. With an Idempotency-Key it runs here as any write:
   * the key's record is written where the decision is.
   * Throws OutcomeUnknownError when a checkout handed on may have happened but this
   * replica could not learn so in time: neither a 2xx nor a 4xx would be the truth.
   */
  async checkout(orderId: string, guard?: RequestGuard): Promise<CheckoutAnswer> {
    // The order as the checkout last read it: a paid one is then not read back from
    // LevelDB for the answer's metrics (it is written, and no longer held, by then).
    const seen: { order: OrderState | undefined } = { order: undefined };
    const change = (shop: ShopState) => {
      const refusal = shop.checkout(orderId);
      // Paid by this change, the order is held decoded (a Map lookup); a repeat of a paid one reads it once here.
      if (refusal === null) seen.order = shop.order(orderId);
      return refusal;
    };
    const refusal =
      guard !== undefined ? await this.mutate(change, guard) : await this.mutate(change, undefined, (refused) => this.handOffCheckout(orderId, refused, seen));
    return { refusal, order: seen.order ?? this.shop.order(orderId) };
  }

  /**
   * The holder's answer to a checkout this replica lacks the token for (undefined: nobody
   * to hand it to, it runs here). `seen.order`: the order once it reads paid here.
   */
  private async handOffCheckout(orderId: string, refusal: Refusal, seen: { order: OrderState | undefined }): Promise<Refusal | null | undefined> {
    if (refusal.missing?.some(([key]) => key === orderKey(orderId)) !== true) return undefined;
    const holder = this.tokenHolderToAsk(orderId);
    if (holder === undefined) return undefined;
    // The holder may gather rights, then wait for its peers' acks.
    const waitMs = this.options.rightsWaitMsMax + this.options.ackWaitMsMax;
    const deadline = this.clock.now() + waitMs;
    const outcome = await this.forwarder.forward(holder, orderId, waitMs);
    // Never sent: nothing happened there.
    if (outcome.kind === "not-sent") return undefined;
    if (outcome.kind === "answered" && outcome.refusal !== null) {
      // The holder's own "leaving" would send the client elsewhere; the token is what moves.
      if (outcome.refusal.reason !== "leaving") return { ...outcome.refusal };
      return { reason: "rights-elsewhere", message: `the token of order ${orderId} is at ${holder}, which is leaving the cluster: try again shortly` };
    }
    // Paid at the holder, or maybe: the answer is a 2xx once the order reads paid here, durably.
    for (;;) {
      const order = this.shop.order(orderId);
      if (order?.paid === true) {
        seen.order = order;
        await this.commit.durable();
        return null;
      }
      if (this.clock.now() >= deadline) {
        const why = outcome.kind === "unknown" ? outcome.why : `${holder} answered paid, but its states did not arrive`;
        throw new OutcomeUnknownError(`checkout of order ${orderId} was handed to ${holder}, the holder of its token, and its outcome is unknown: ${why}`);
      }
      await new Promise<void>((resolve) => this.clock.after(forwardedOutcomePollMs, resolve));
    }
  }

  /** The responsive, active peer that holds `orderId`'s token (a draining one gathers no rights it lacks). */
  private tokenHolderToAsk(orderId: string): PeerId | undefined {
    const order = this.shop.order(orderId);
    if (order === undefined) return undefined;
    const holder = this.replicator.responsivePeers().find((peer) => order.holdsToken(peer.actor))?.replicaId;
    if (holder === undefined) return undefined;
    const state = this.member(holder)?.state;
    return state === "active" || (state === undefined && this.options.configuredPeerIds?.includes(holder) === true) ? holder : undefined;
  }

  /** Take `view` now; resolve once everything it may have seen is durable. */
  async read<T>(view: (shop: ShopState) => T): Promise<T> {
    const result = view(this.shop);
    if (!this.commit.idle) await this.commit.durable();
    return result;
  }

  status(): ReplicaStatus {
    return {
      replicaId: this.identity.replicaId,
      actor: this.shop.actor,
      durableSeq: this.commit.durableSeq,
      peers: this.replicator.status(),
      members: this.gossip.view(),
    };
  }

  async close(): Promise<void> {
    this.cancelSweep();
    this.cancelExpiry();
    await this.transport.close();
    await this.commit.durable();
    await this.db.close();
  }

  /** The operator released this actor's rights (here or at a peer): no later change of it is taken. */
  isReleased(actor: Actor): boolean {
    return this.released.has(actor);
  }

  /**
   * The operator's call for an incarnation that lost its disk, or a member gone for
   * good (docs/OPERATIONS.md): hand `actor`'s rights to the active members, as this
   * replica and every reachable member see them now, and refuse its later changes
   * everywhere. Needs every other active member up: one that is not might know a
   * later change of `actor`. Sales `actor` acknowledged while cut off from all of
   * them, and never sent, are lost with its disk; releasing sells those units again.
   */
  async release(actor: Actor): Promise<ReleaseReport | Refusal> {
    const refusal = this.releaseRefusal(actor);
    if (refusal !== null) return refusal;
    const upIds = this.replicator.upPeers().map((peer) => peer.replicaId);
    const notSynced = await this.replicator.syncNow(upIds, releaseSyncWaitMsMax);
    if (notSynced.length > 0) {
      return { reason: "rights-elsewhere", message: `could not catch up with ${notSynced.join(", ")} within ${releaseSyncWaitMsMax} ms: try again` };
    }
    const again = this.releaseRefusal(actor);
    if (again !== null) return again;
    // One synchronous step: the record, the member retired if it is gone for good, every right moved.
    this.released.mark(actor, { by: this.shop.actor, atMs: Math.floor(Date.now()) });
    const gone = this.gossip.view().find((member) => member.actor === actor && member.state !== "retired");
    if (gone !== undefined) this.gossip.setState(gone.replicaId, "retired");
    const targets = [this.shop.actor, ...this.activePeerActors()];
    let keysReleased = 0;
    for (const key of [...this.shop.keysWithRightsOf(actor)]) if (this.shop.releaseAll(actor, key, targets, keysReleased)) keysReleased += 1;
    const keysStillHeld = [...this.shop.keysWithRightsOf(actor)].length;
    await this.replicator.replicated(await this.commit.durable());
    return { actor, keysReleased, keysStillHeld, to: targets, memberRetired: gone?.replicaId ?? null };
  }

  /** Why `actor` cannot be released now, or null. */
  private releaseRefusal(actor: Actor): Refusal | null {
    const replicaId = actor.slice(0, Math.max(0, actor.indexOf("/")));
    if (replicaId.length === 0 || actor.length > 200) return { reason: "bad-reference", message: `${actor} is not an actor (<replica id>/<incarnation>)` };
    if (actor === this.shop.actor) return { reason: "bad-reference", message: `${actor} is this replica: it is not lost` };
    const up = this.replicator.upPeers();
    const live = up.find((peer) => peer.actor === actor);
    if (live !== undefined) return { reason: "bad-reference", message: `${actor} is the incarnation of ${live.replicaId}, which is up: it is not lost` };
    if (this.lifecycle !== "serving") return refusedWhileLeaving("this replica is leaving the cluster: release from another one");
    const members = this.gossip.view();
    const waitingFor = members
      .filter((member) => member.state === "active" && member.replicaId !== this.identity.replicaId && member.actor !== actor)
      .filter((member) => !up.some((peer) => peer.replicaId === member.replicaId))
      .map((member) => member.replicaId);
    if (waitingFor.length > 0) {
      return {
        reason: "rights-elsewhere",
        message: `every other active member must be reachable to release rights as they last saw them; not reachable: ${waitingFor.join(", ")}`,
      };
    }
    return null;
  }

  /** Every minute, forget idempotency records past their window, on disk too. */
  private expireIdempotencyRecords(): void {
    const gone = this.idempotency.expire();
    if (gone.length > 0) {
      this.replicator.forget(gone);
      this.commit.whenQuiet(() => {
        const write = this.db.batch();
        for (const key of gone) write.del(key);
        void write.write({ sync: false }).catch((error: unknown) => this.options.log("warn", `could not delete expired idempotency records: ${String(error)}`));
      });
    }
    this.cancelExpiry = this.clock.after(idempotencyExpiryPeriodMs, () => this.expireIdempotencyRecords());
  }

  private peerUp(peer: PeerId, actor: Actor): void {
    this.replicator.peerUp(peer, actor);
    this.gossip.peerUp(peer);
    this.membershipChanged();
  }

  private peerDown(peer: PeerId): void {
    this.replicator.peerDown(peer);
    this.broker.peerDown(peer);
    this.forwarder.peerDown(peer);
    this.gossip.peerDown(peer);
    this.drainHandshake.peerDown(peer);
    this.membershipChanged();
  }

  /**
   * The members or the links may have changed. New rights are spread over this
   * replica (unless it is leaving) and the active peers it can reach, in id order;
   * up peers that leave are told that this replica sees it (DrainHandshake).
   */
  private membershipChanged(): void {
    const members = this.gossip.view();
    const stateOf = new Map(members.map((member) => [member.replicaId, member.state]));
    this.lifecycle = lifecycleAfter(this.lifecycle, stateOf.get(this.identity.replicaId) ?? "active");
    const peers = this.activePeerActors(members);
    this.shop.spreadActors = this.lifecycle !== "serving" && peers.length > 0 ? peers : [this.shop.actor, ...peers];
    const leavingPeers = this.replicator.upPeers().filter((peer) => isLeaving(stateOf.get(peer.replicaId)));
    this.drainHandshake.tellLeaving(leavingPeers.map((peer) => ({ replicaId: peer.replicaId, retired: stateOf.get(peer.replicaId) === "retired" })));
    this.options.onMembersChanged?.(members);
    // After the caller saw the members: its state policy decides what is admitted now.
    this.replicator.retryHeld();
  }

  private ownMemberState(): MemberState {
    return this.gossip.membership.member(this.identity.replicaId)?.state ?? "active";
  }
}

function isLeaving(state: MemberState | undefined): boolean {
  return state === "draining" || state === "retired";
}

/** A leaving replica's refusal: a 409 (docs/API.md: "this replica is leaving the cluster, or has left"). */
function refusedWhileLeaving(message: string): Refusal {
  return { reason: "leaving", message };
}

async function openDatabase(storage: ReplicaStorage): Promise<Database> {
  if ("db" in storage) {
    await storage.db.open();
    return storage.db;
  }
  await mkdir(storage.dataDir, { recursive: true });
  const db = new Level<string, Uint8Array>(storage.dataDir, { keyEncoding: "utf8", valueEncoding: "view" });
  await openOrExplain(db, storage.dataDir);
  return db;
}

async function openOrExplain(db: Level<string, Uint8Array>, dataDir: string): Promise<void> {
  try {
    await db.open();
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    if (cause?.code === "LEVEL_LOCKED") throw new Error(`data folder ${dataDir} is in use by another replica process`);
    throw error;
  }
}
