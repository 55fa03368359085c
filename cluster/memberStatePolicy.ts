// Which states a replica takes from its peers, beyond their being valid: rows only
// of members' actors, generations only up to its own clock plus a bounded skew.
// ShopState applies it (pure); this builds it from what the replica knows.
import type { Actor } from "../crdt/boundedCounter.js";
import { type PeerStatePolicy, generationCounterCeiling } from "../crdt/shopState.js";
import { replicaIdOfActor } from "./peerIds.js";
import type { PeerId } from "./transport.js";

/**
 * How far ahead of this replica's wall clock a peer's batch_init generation may be.
 * Replicas' clocks must agree within this (NTP does far better); a generation
 * further ahead is refused, so nobody can push the counter towards 2^53.
 */
export const generationSkewMsMax = 60 * 60 * 1000;

export interface MemberStatePolicyOptions {
  /** True for this replica's id, each configured peer's, and each id in the membership document. */
  isMember(replicaId: PeerId): boolean;
  /** Milliseconds since the epoch (Date.now in production). */
  wallClockMs(): number;
  /** Actors whose rights the operator released (Replica.release). */
  released(actor: Actor): boolean;
}

/**
 * An actor is admitted if it is an incarnation of a member (`<member id>/<anything>`):
 * any incarnation, so a replica back on an empty disk (a new actor) is taken at once,
 * through whichever peer relays it, before gossip shows its new actor. The replica id
 * is what the handshake binds a link to; the incarnation cannot be checked without
 * per-replica keys (see README, Security).
 */
export function memberStatePolicy(options: MemberStatePolicyOptions): PeerStatePolicy {
  return {
    actorAdmitted(actor: Actor): boolean {
      const replicaId = replicaIdOfActor(actor);
      return replicaId !== undefined && options.isMember(replicaId);
    },
    generationCounterMax(): number {
      return Math.min(generationCounterCeiling, Math.floor(options.wallClockMs()) + generationSkewMsMax);
    },
    released: (actor) => options.released(actor),
  };
}
