// A simulated network for deterministic simulation tests: the transports of many
// replicas in one process, links that the test cuts, heals and breaks, and every
// delivery run by a Clock (virtual in tests) with randomness passed in, so one seed
// replays one schedule. It does what the WebSocket transport (wsTransport.ts) can
// do, and no more:
// - A link is ordered and loss-free while it is up. Each message travels as an
//   encoded frame and is decoded on arrival, so receivers get fresh bytes.
// - Loss is a link going down. A cut (partition) holds a link's frames, as TCP
//   retransmission does; each side gives up on the silent link after its own
//   detection delay (the ping timeout). A cut healed before then only delayed them.
// - A side that closes a link (timeout, break, crash) sees peerDown at once; what
//   it had in flight arrives up to a random point, then the close reaches the other
//   side, which sees peerDown then (or at its own timeout, while still cut).
// - The lower id dials the higher after a redial delay, whenever both run, their
//   pair is not cut and the dialer has no link; a transport given its peers
//   (setPeers, as main.ts gives WsTransport the configured peers and the members
//   the membership document lists) dials only those. A joiner also dials its seeds,
//   whatever their ids, whenever it has no link. One side goes up first; the
//   other when the last handshake frame reaches it, so nothing arrives before
//   peerUp. A side still up on an older link sees its peerDown before the new peerUp.
// - Duplicates and reordering come only across reconnects, where anti-entropy
//   resends. Beyond what TCP does, `replayProbability` lets a new link first carry
//   a few states frames that older links delivered to the same process, resent
//   as anti-entropy (seq 0): stale and duplicate states.
import type { Actor } from "../../crdt/boundedCounter.js";
import type { Clock } from "../../cluster/clock.js";
import { type PeerMessage, bytesPerFrameMax, decodeFrame, encodeMessage } from "../../cluster/messages.js";
import type { PeerId, Transport, TransportEvents } from "../../cluster/transport.js";

/** [least, most] milliseconds, drawn uniformly. */
export type MsRange = readonly [number, number];

export interface SimulatedNetworkOptions {
  readonly clock: Clock;
  /** Uniform in [0, 1): the only randomness the network uses. */
  readonly random: () => number;
  /** Every replica that may take part, joiners included; links form between pairs that run. */
  readonly replicaIds: readonly PeerId[];
  /** One-way delay of a frame. */
  readonly latencyMs: MsRange;
  /** How long a side of a silent (cut) link waits before it closes it. */
  readonly detectMs: MsRange;
  /** From a dialer having no link to its new link being up on its side. */
  readonly redialMs: MsRange;
  /** Chance that a new link first replays states frames of older links (0: only what TCP does). */
  readonly replayProbability: number;
}

/** Older states frames kept per direction for replays. */
const framesKeptForReplayMax = 8;
/** Most frames one replay resends. */
const framesPerReplayMax = 3;

type Frame = { readonly kind: "message"; readonly bytes: Uint8Array } | { readonly kind: "handshake" } | { readonly kind: "close" };

interface QueuedFrame {
  readonly frame: Frame;
  at: number;
}

type EndState = "connecting" | "up" | "closed";

interface LinkEnd {
  readonly transport: SimulatedTransport;
  state: EndState;
  cancelDetect: (() => void) | undefined;
}

/** Frames from one end to the other, delivered in order. */
class Direction {
  readonly frames: QueuedFrame[] = [];
  cancelPump: (() => void) | undefined;
  lastAt = 0;
  constructor(
    readonly from: PeerId,
    readonly to: PeerId,
  ) {}
}

class Link {
  readonly ends = new Map<PeerId, LinkEnd>();
  readonly directions = new Map<PeerId, Direction>();
  constructor(
    readonly id: number,
    a: SimulatedTransport,
    b: SimulatedTransport,
  ) {
    for (const [self, other] of [
      [a, b],
      [b, a],
    ] as const) {
      this.ends.set(self.replicaId, { transport: self, state: "connecting", cancelDetect: undefined });
      this.directions.set(self.replicaId, new Direction(other.replicaId, self.replicaId));
    }
  }

  end(replicaId: PeerId): LinkEnd {
    return this.ends.get(replicaId)!;
  }

  other(replicaId: PeerId): PeerId {
    for (const id of this.ends.keys()) if (id !== replicaId) return id;
    throw new Error(`link ${this.id} has no end other than ${replicaId}`);
  }

  /** Frames towards `receiver`. */
  towards(receiver: PeerId): Direction {
    return this.directions.get(receiver)!;
  }

  get over(): boolean {
    for (const end of this.ends.values()) if (end.state !== "closed") return false;
    return true;
  }
}

export class SimulatedTransport implements Transport {
  events: TransportEvents | undefined;
  /** The link this side holds up (or is connecting) to each peer. */
  readonly links = new Map<PeerId, Link>();
  alive = true;
  /** The peers this process dials (those whose id sorts after its own); undefined: every replica. */
  peers: ReadonlySet<PeerId> | undefined;

  constructor(
    private readonly network: SimulatedNetwork,
    readonly replicaId: PeerId,
    readonly actor: Actor,
    /** The replicas behind a joiner's seed addresses (--join). */
    readonly seeds: readonly PeerId[] = [],
  ) {}

  /** Replace the peers to dial (WsTransport.setPeers). */
  setPeers(peers: readonly PeerId[]): void {
    this.peers = new Set(peers);
    this.network.peersChanged(this);
  }

  /** Whether this process dials `peer` now. */
  dials(peer: PeerId): boolean {
    // As WsTransport: a joiner dials its seeds whenever it has no link.
    if (this.links.size === 0 && this.seeds.includes(peer)) return true;
    return this.replicaId < peer && (this.peers === undefined || this.peers.has(peer));
  }

  async start(events: TransportEvents): Promise<void> {
    this.events = events;
    this.network.started(this);
  }

  send(peer: PeerId, message: PeerMessage): boolean {
    return this.network.send(this, peer, message);
  }

  async close(): Promise<void> {
    this.network.stopped(this, "close");
  }
}

export class SimulatedNetwork {
  private readonly transports = new Map<PeerId, SimulatedTransport>();
  /** The newest link of each pair. */
  private readonly links = new Map<string, Link>();
  private readonly cuts = new Set<string>();
  /** Extra one-way delay per pair, while a delay fault lasts. */
  private readonly slowMs = new Map<string, number>();
  private readonly dialing = new Set<string>();
  private readonly retired = new Set<PeerId>();
  /** The replicas of the cluster: each counts from its first start on (or from admit). */
  private readonly admitted = new Set<PeerId>();
  /** Delivered states frames per direction ("from>to"), newest last, for replays. */
  private readonly deliveredStates = new Map<string, PeerMessage[]>();
  private nextLinkId = 1;
  /** Bumped whenever a link end or a cut changes: connectivity is the same while it is. */
  version = 0;
  /** Frames delivered and dropped, for statistics. */
  framesDelivered = 0;
  /** States delivered in live frames (a sender's own batch) and in anti-entropy frames. */
  readonly statesDelivered = { live: 0, antiEntropy: 0 };
  framesLost = 0;

  constructor(private readonly options: SimulatedNetworkOptions) {}

  /** The transport of a new process of `replicaId` (give it to Replica.open); a joiner's dials `seeds` while it has no link. */
  transport(replicaId: PeerId, actor: Actor, seeds: readonly PeerId[] = []): SimulatedTransport {
    if (!this.options.replicaIds.includes(replicaId)) throw new RangeError(`unknown replica ${replicaId}`);
    return new SimulatedTransport(this, replicaId, actor, seeds);
  }

  /** The process of `replicaId` died: its links close as the kernel closes its sockets. */
  crash(replicaId: PeerId): void {
    const transport = this.transports.get(replicaId);
    if (transport !== undefined) this.stopped(transport, "crash");
  }

  /** Exactly these pairs cannot reach each other from now on. */
  setCuts(pairs: Iterable<readonly [PeerId, PeerId]>): void {
    const next = new Set<string>();
    for (const [a, b] of pairs) if (a !== b) next.add(pairKey(a, b));
    for (const key of [...this.cuts]) if (!next.has(key)) this.heal(key);
    for (const key of next) if (!this.cuts.has(key)) this.cut(key);
  }

  /** Frames sent between `a` and `b` from now on take `extraMs` longer (0: normal again). */
  setSlow(a: PeerId, b: PeerId, extraMs: number): void {
    if (extraMs > 0) this.slowMs.set(pairKey(a, b), extraMs);
    else this.slowMs.delete(pairKey(a, b));
  }

  /** One side of the a–b link drops it (a send buffer overflow, a lost connection): a reconnect follows. */
  breakLink(a: PeerId, b: PeerId): void {
    const link = this.links.get(pairKey(a, b));
    if (link === undefined) return;
    const side = this.options.random() < 0.5 ? a : b;
    if (link.end(side).state === "closed") return;
    this.closeEnd(link, side, true);
  }

  /** `replicaId` left the cluster for good (or a joiner was given up): connectivity no longer counts it. */
  retire(replicaId: PeerId): void {
    this.version += 1;
    this.retired.add(replicaId);
  }

  /** Every pair of the replicas (but those retired) has a link that is up on both sides and not cut. */
  fullyConnected(): boolean {
    const ids = this.members();
    for (let i = 0; i < ids.length; i++) {
      for (let j = i + 1; j < ids.length; j++) if (!this.linkUp(ids[i]!, ids[j]!)) return false;
    }
    return true;
  }

  /** Every replica (but those retired) runs and reaches every other over a path of up links. */
  transitivelyConnected(): boolean {
    const ids = this.members();
    if (ids.length === 0 || ids.some((id) => !this.transports.has(id))) return false;
    const reached = new Set<PeerId>([ids[0]!]);
    const frontier = [ids[0]!];
    while (frontier.length > 0) {
      const from = frontier.pop()!;
      for (const to of ids) {
        if (!reached.has(to) && this.linkUp(from, to)) {
          reached.add(to);
          frontier.push(to);
        }
      }
    }
    return reached.size === ids.length;
  }

  /** `replicaId` is part of the cluster from now on: connectivity counts it. */
  admit(replicaId: PeerId): void {
    if (this.admitted.has(replicaId)) return;
    this.version += 1;
    this.admitted.add(replicaId);
  }

  /** The replicas connectivity counts: admitted, and not retired. */
  members(): PeerId[] {
    return this.options.replicaIds.filter((id) => this.admitted.has(id) && !this.retired.has(id));
  }

  /** The a–b link is up on both sides and not cut. */
  linkUp(a: PeerId, b: PeerId): boolean {
    const key = pairKey(a, b);
    const link = this.links.get(key);
    return link !== undefined && !this.cuts.has(key) && link.end(a).state === "up" && link.end(b).state === "up";
  }

  // ---- called by transports

  started(transport: SimulatedTransport): void {
    this.version += 1;
    const previous = this.transports.get(transport.replicaId);
    if (previous !== undefined) this.stopped(previous, "crash");
    this.forgetDeliveredTo(transport.replicaId);
    this.transports.set(transport.replicaId, transport);
    this.admit(transport.replicaId);
    for (const other of this.options.replicaIds) if (other !== transport.replicaId) this.dialSoon(pairKey(transport.replicaId, other));
  }

  /** `transport` was given new peers: dial those it may now. */
  peersChanged(transport: SimulatedTransport): void {
    if (this.transports.get(transport.replicaId) !== transport) return;
    for (const other of this.options.replicaIds) if (other !== transport.replicaId) this.dialSoon(pairKey(transport.replicaId, other));
  }

  /** A crash loses what was in flight past a random point; a close sends it all and reports peerDown. */
  stopped(transport: SimulatedTransport, how: "crash" | "close"): void {
    if (!transport.alive) return;
    if (how === "crash") transport.alive = false;
    if (this.transports.get(transport.replicaId) === transport) this.transports.delete(transport.replicaId);
    for (const link of [...transport.links.values()]) {
      if (link.end(transport.replicaId).state !== "closed") this.closeEnd(link, transport.replicaId, how === "close", how === "close");
    }
    transport.alive = false;
  }

  send(from: SimulatedTransport, peer: PeerId, message: PeerMessage): boolean {
    const link = from.links.get(peer);
    if (!from.alive || link === undefined || link.end(from.replicaId).state !== "up") return false;
    const bytes = encodeMessage(message);
    if (bytes.length > bytesPerFrameMax) {
      throw new RangeError(`a ${message.type} message of ${bytes.length} bytes is over bytesPerFrameMax: split it`);
    }
    this.enqueue(link, peer, { kind: "message", bytes });
    return true;
  }

  // ---- links

  private dialSoon(key: string): void {
    if (this.dialing.has(key) || !this.mayDial(key)) return;
    this.dialing.add(key);
    this.options.clock.after(this.draw(this.options.redialMs), () => {
      this.dialing.delete(key);
      if (this.mayDial(key)) this.connect(key);
    });
  }

  /** Both sides run, the pair is not cut, and a side that dials the other has no link to it. */
  private mayDial(key: string): boolean {
    const [low, high] = key.split("|") as [PeerId, PeerId];
    const a = this.transports.get(low);
    const b = this.transports.get(high);
    if (a === undefined || b === undefined || this.cuts.has(key)) return false;
    return (a.dials(high) && !a.links.has(high)) || (b.dials(low) && !b.links.has(low));
  }

  private connect(key: string): void {
    const [low, high] = key.split("|") as [PeerId, PeerId];
    const link = new Link(this.nextLinkId++, this.transports.get(low)!, this.transports.get(high)!);
    this.links.set(key, link);
    for (const [self, other] of [
      [low, high],
      [high, low],
    ] as const) {
      const transport = link.end(self).transport;
      const older = transport.links.get(other);
      // A side still up on an older link learns it was replaced before the new one is up.
      if (older !== undefined && older.end(self).state !== "closed") this.closeEnd(older, self, true);
      transport.links.set(other, link);
    }
    // The side that authenticates first sends the last handshake frame, then its own frames.
    const first = this.options.random() < 0.5 ? low : high;
    this.enqueue(link, link.other(first), { kind: "handshake" });
    this.goUp(link, first);
  }

  private goUp(link: Link, side: PeerId): void {
    this.version += 1;
    const end = link.end(side);
    const other = link.other(side);
    end.state = "up";
    end.transport.events!.peerUp(other, link.end(other).transport.actor);
    if (this.options.replayProbability > 0 && this.options.random() < this.options.replayProbability) this.replay(link, side);
  }

  /** `side`, just up, first resends a few states frames that older links delivered to its peer. */
  private replay(link: Link, side: PeerId): void {
    const receiver = link.other(side);
    const older = this.deliveredStates.get(`${side}>${receiver}`) ?? [];
    const count = Math.min(older.length, 1 + Math.floor(this.options.random() * framesPerReplayMax));
    for (let index = 0; index < count; index++) {
      const message = older[Math.floor(this.options.random() * older.length)]!;
      if (message.type !== "states") continue;
      this.enqueue(link, receiver, { kind: "message", bytes: encodeMessage({ type: "states", seq: 0, entries: message.entries }) });
    }
  }

  /**
   * `side` closes its end of `link`: peerDown there (unless its process is gone),
   * what it had in flight arrives up to a random point (all of it when `orderly`),
   * then the close.
   */
  private closeEnd(link: Link, side: PeerId, notify: boolean, orderly = false): void {
    this.version += 1;
    const end = link.end(side);
    const wasUp = end.state === "up";
    end.state = "closed";
    end.cancelDetect?.();
    end.cancelDetect = undefined;
    const other = link.other(side);
    const towardsOther = link.towards(other);
    if (!orderly) {
      const kept = Math.floor(this.options.random() * (towardsOther.frames.length + 1));
      this.framesLost += towardsOther.frames.length - kept;
      towardsOther.frames.length = kept;
    }
    const towardsSide = link.towards(side);
    this.framesLost += towardsSide.frames.length;
    towardsSide.frames.length = 0;
    towardsSide.cancelPump?.();
    towardsSide.cancelPump = undefined;
    if (link.end(other).state !== "closed") towardsOther.frames.push({ frame: { kind: "close" }, at: this.arrivalAt(towardsOther, pairKey(side, other)) });
    this.pump(link, towardsOther);
    if (end.transport.links.get(other) === link) end.transport.links.delete(other);
    if (notify && wasUp && end.transport.alive) end.transport.events!.peerDown(other);
    this.dialSoon(pairKey(side, other));
    // Its last link gone, a joiner dials its seeds again.
    if (end.transport.links.size === 0 && end.transport.seeds.length > 0) this.peersChanged(end.transport);
  }

  private cut(key: string): void {
    this.version += 1;
    this.cuts.add(key);
    const link = this.links.get(key);
    if (link === undefined || link.over) return;
    for (const [side, end] of link.ends) {
      link.towards(side).cancelPump?.();
      if (end.state === "closed") continue;
      end.cancelDetect = this.options.clock.after(this.draw(this.options.detectMs), () => {
        end.cancelDetect = undefined;
        if (this.cuts.has(key) && end.state !== "closed") this.closeEnd(link, side, true);
      });
    }
  }

  private heal(key: string): void {
    this.version += 1;
    this.cuts.delete(key);
    const link = this.links.get(key);
    if (link !== undefined) {
      for (const [side, end] of link.ends) {
        end.cancelDetect?.();
        end.cancelDetect = undefined;
        const direction = link.towards(side);
        // Held frames go on from now, in order.
        for (const queued of direction.frames) queued.at = Math.max(queued.at, this.arrivalAt(direction, key));
        this.pump(link, direction);
      }
    }
    this.dialSoon(key);
  }

  // ---- frames

  private enqueue(link: Link, receiver: PeerId, frame: Frame): void {
    const direction = link.towards(receiver);
    const key = pairKey(direction.from, direction.to);
    direction.frames.push({ frame, at: this.arrivalAt(direction, key) });
    if (direction.frames.length === 1) this.pump(link, direction);
  }

  /** When a frame sent now arrives: after the frames before it, on this ordered link. */
  private arrivalAt(direction: Direction, key: string): number {
    const at = Math.max(direction.lastAt, this.options.clock.now() + this.draw(this.options.latencyMs) + (this.slowMs.get(key) ?? 0));
    direction.lastAt = at;
    return at;
  }

  /** Deliver the head frame at its time, unless the pair is cut (then it waits for heal). */
  private pump(link: Link, direction: Direction): void {
    direction.cancelPump?.();
    direction.cancelPump = undefined;
    const head = direction.frames[0];
    if (head === undefined || this.cuts.has(pairKey(direction.from, direction.to))) return;
    direction.cancelPump = this.options.clock.after(Math.max(0, head.at - this.options.clock.now()), () => {
      direction.cancelPump = undefined;
      const queued = direction.frames.shift();
      if (queued !== undefined) this.deliver(link, direction, queued.frame);
      this.pump(link, direction);
    });
  }

  private deliver(link: Link, direction: Direction, frame: Frame): void {
    const end = link.end(direction.to);
    if (!end.transport.alive || end.state === "closed") {
      this.framesLost += 1;
      return;
    }
    if (frame.kind === "handshake") {
      if (end.state === "connecting") this.goUp(link, direction.to);
      return;
    }
    if (frame.kind === "close") return this.closeEnd(link, direction.to, true);
    if (end.state !== "up") return;
    this.framesDelivered += 1;
    for (const message of decodeFrame(frame.bytes)) {
      if (message.type === "states") {
        this.keepForReplay(`${direction.from}>${direction.to}`, message);
        if (message.batch === undefined) this.statesDelivered.antiEntropy += message.entries.length;
        else this.statesDelivered.live += message.entries.length;
      }
      if (end.state !== "up" || !end.transport.alive) return;
      end.transport.events!.message(direction.from, message);
    }
  }

  /**
   * A new process of `replicaId` is replayed nothing its predecessors were sent: no
   * connection carries frames of an older one, and a restarted process has lost the
   * memory that made those frames whole (a lone paid order needs the user and item
   * states an earlier frame brought). What it lacks, anti-entropy sends it.
   */
  private forgetDeliveredTo(replicaId: PeerId): void {
    for (const key of [...this.deliveredStates.keys()]) if (key.endsWith(`>${replicaId}`)) this.deliveredStates.delete(key);
  }

  private keepForReplay(key: string, message: PeerMessage): void {
    if (this.options.replayProbability === 0) return;
    const kept = this.deliveredStates.get(key) ?? [];
    kept.push(message);
    if (kept.length > framesKeptForReplayMax) kept.shift();
    this.deliveredStates.set(key, kept);
  }

  private draw([least, most]: MsRange): number {
    return least + this.options.random() * (most - least);
  }
}

export function pairKey(a: PeerId, b: PeerId): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}
