// Rights that move. A replica short of rights (stock, credit, an order token) asks
// the up peers that hold them, richest first, and the caller retries its
// operation when grants arrive, until a deadline. A donor hands over what is asked
// or half of what it can spare, whichever is more, and replies only after the
// transfer is durable and its state was sent on the same ordered link, so the
// grant never arrives before the rights it announces.
//
// Who gets rights: only an up peer (the transport authenticated it) that is a
// configured peer or a member of the membership document, not retired (a replica
// that links to join gets rights once it is in the document), and whose actor is an
// incarnation of its replica id, the one its handshake announced. Gossip may not show that incarnation yet (a replica back on
// an empty disk): the authenticated link is what counts, as for its states.
//
// Grants are bounded (ShopState.grantRights): what is asked plus at most 2^32, and
// never past a safe integer in the donor's row. A grant runs on its own (nobody
// awaits it): it never lets a failure escape as an unhandled rejection.
//
// No livelock: a donor keeps the rights its own waiting operations need, except
// from requesters that rank before it (lower replica id). The first-ranked
// waiting replica therefore always gathers what it needs, then frees the rest.
import type { Actor } from "../crdt/boundedCounter.js";
import type { Need, ShopState, StateKey } from "../crdt/shopState.js";
import type { Clock } from "./clock.js";
import { isActorOf } from "./peerIds.js";
import { type PeerMessage, needsPerRequestMax } from "./messages.js";
import { PendingRequests } from "./pendingRequests.js";
import type { PeerId, Transport } from "./transport.js";

export interface RightsBrokerDeps {
  readonly selfId: PeerId;
  readonly transport: Pick<Transport, "send">;
  readonly shop: ShopState;
  readonly clock: Clock;
  durable(): Promise<number>;
  /** The peers worth asking: up, and not silent (a lagging peer's grants would not come). */
  responsivePeers(): readonly { replicaId: PeerId; actor: Actor }[];
  /** Whether `peerId` may receive rights: a member (or configured peer), never a stranger whose link merely authenticated. */
  mayReceiveRights(peerId: PeerId): boolean;
  /** Pause after a round that brought nothing, so a contended key is not hammered. */
  readonly retryPauseMs: number;
  /** Where a grant that failed is reported (default: stderr). */
  readonly log?: (level: "info" | "warn", message: string) => void;
}

/** A request that gets no grant: the caller goes on as if nothing was granted. */
const grantedNothing = () => false;

export class RightsBroker {
  private readonly pending: PendingRequests<boolean>;
  /** Rights that this replica's waiting operations still need, per key. */
  private readonly waitingNeeds = new Map<StateKey, number>();

  constructor(private readonly deps: RightsBrokerDeps) {
    this.pending = new PendingRequests(deps.clock);
  }

  /**
   * Ask up peers for `missing`; resolves true when the caller should try again
   * (something was granted, or a pause passed while peers still hold rights), false
   * when no reachable peer holds what is missing or `deadline` has passed.
   */
  async acquire(missing: readonly Need[], deadline: number): Promise<boolean> {
    const requests = this.planRequests(missing);
    if (requests.size === 0) return false;
    for (const [key, amount] of missing) this.waitingNeeds.set(key, (this.waitingNeeds.get(key) ?? 0) + amount);
    try {
      const waitMs = deadline - this.deps.clock.now();
      if (waitMs <= 0) return false;
      const answers = [...requests].map(([peerId, needs]) => this.request(peerId, needs, waitMs));
      const grantedAny = (await Promise.all(answers)).some(Boolean);
      if (grantedAny) return true;
      await this.pause(Math.min(this.deps.retryPauseMs, deadline - this.deps.clock.now()));
      return this.deps.clock.now() < deadline;
    } finally {
      for (const [key, amount] of missing) {
        const left = (this.waitingNeeds.get(key) ?? 0) - amount;
        if (left > 0) this.waitingNeeds.set(key, left);
        else this.waitingNeeds.delete(key);
      }
    }
  }

  receive(peerId: PeerId, peerActor: Actor, message: PeerMessage): void {
    if (message.type === "rightsRequest") {
      void this.grant(peerId, peerActor, message.requestId, message.needs).catch((error: unknown) => {
        const log = this.deps.log ?? ((level, line) => console.error(`${level}: ${line}`));
        log("warn", `rights request ${message.requestId} of ${peerId} failed: ${error instanceof Error ? error.message : String(error)}`);
      });
    } else if (message.type === "rightsGrant") this.pending.answered(peerId, message.requestId, message.granted.length > 0);
  }

  /** Requests to `peerId` will get no answer: let their callers go on. */
  peerDown(peerId: PeerId): void {
    this.pending.peerDown(peerId, grantedNothing);
  }

  /** Per need: ask the richest responsive peers, each for what the richer ones may not cover. */
  private planRequests(missing: readonly Need[]): Map<PeerId, Need[]> {
    const requests = new Map<PeerId, Need[]>();
    const peers = this.deps.responsivePeers();
    for (const [key, amount] of missing) {
      const counter = this.deps.shop.counterAt(key);
      if (counter === undefined) continue;
      const holders = peers
        .map((peer) => ({ peerId: peer.replicaId, rights: counter.rights(peer.actor) }))
        .filter((holder) => holder.rights > 0)
        .sort((a, b) => b.rights - a.rights);
      let uncovered = amount;
      for (const holder of holders) {
        if (uncovered <= 0) break;
        const needs = requests.get(holder.peerId) ?? [];
        if (needs.length >= needsPerRequestMax) continue;
        needs.push([key, uncovered]);
        requests.set(holder.peerId, needs);
        uncovered -= holder.rights;
      }
    }
    return requests;
  }

  private request(peerId: PeerId, needs: readonly Need[], waitMs: number): Promise<boolean> {
    const requestId = this.pending.newId();
    if (!this.deps.transport.send(peerId, { type: "rightsRequest", requestId, needs })) return Promise.resolve(false);
    return this.pending.wait(requestId, peerId, waitMs, grantedNothing);
  }

  private async grant(peerId: PeerId, peerActor: Actor, requestId: number, needs: readonly Need[]): Promise<void> {
    if (!isActorOf(peerActor, peerId) || !this.deps.mayReceiveRights(peerId)) {
      this.deps.transport.send(peerId, { type: "rightsGrant", requestId, granted: [] });
      return;
    }
    const requesterRanksFirst = peerId < this.deps.selfId;
    const granted = this.deps.shop.grantRights(peerActor, needs, (key, rights) =>
      requesterRanksFirst ? rights : Math.max(0, rights - (this.waitingNeeds.get(key) ?? 0)),
    );
    // The transfer's state goes out live when its batch is durable, before this grant.
    if (granted.length > 0) await this.deps.durable();
    this.deps.transport.send(peerId, { type: "rightsGrant", requestId, granted });
  }

  private pause(delayMs: number): Promise<void> {
    if (delayMs <= 0) return Promise.resolve();
    return new Promise((resolve) => this.deps.clock.after(delayMs, resolve));
  }
}
