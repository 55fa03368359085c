// The handshake that lets a leaving replica retire with nothing stranded.
//
// Rights reach a replica only through rows that other replicas write: spreads of
// new stock, credit and tokens, grants, hand-overs. A leaving replica L may retire
// once no other replica will write such a row again, and L has merged every one
// already written. So each peer P that sees L draining (or retired) stops moving
// rights to L (the caller's job: spread and hand-over targets are active members
// only; grants need no check, since L asks for nothing once it leaves, and a request
// it sent before reaches P ahead of the news, on the same ordered link), waits until
// everything it changed so far is durable, and sends L `drainSeen` with its last
// batch number. L counts P as settled once it has P's
// drainSeen from P's current incarnation and has merged P's batches up to that
// number (its anti-entropy cursor for P). Reconnects and restarts are safe: P tells
// L again on every new link, and a new incarnation of P must tell L anew.
//
// P tells L once more when it sees L retired, so that L knows its last state reached
// P: a replica stopped while its peers still saw it draining would hold up every
// later leave (they would wait for its drainSeen).
import type { Actor } from "../crdt/boundedCounter.js";
import type { PeerMessage } from "./messages.js";
import type { PeerId, Transport } from "./transport.js";

export interface DrainHandshakeDeps {
  readonly transport: Pick<Transport, "send">;
  /** Resolves with the last batch number once everything changed so far is durable (and sent live). */
  durable(): Promise<number>;
  /** Up to which batch of `actor` everything is merged here (the anti-entropy cursor). */
  mergedUpTo(actor: Actor): number;
}

/** A replica whose rights could still move to the leaving one, by id and current incarnation. */
export interface Writer {
  readonly replicaId: PeerId;
  readonly actor: Actor;
}

/** An up peer that this replica sees leaving. */
export interface LeavingPeer {
  readonly replicaId: PeerId;
  readonly retired: boolean;
}

/** A peer's last drainSeen, with the incarnation that sent it. */
interface DrainSeen {
  readonly actor: Actor;
  readonly upTo: number;
  readonly retired: boolean;
}

export class DrainHandshake {
  /** What each leaving peer was told on its current link: this replica sees it draining, or retired. */
  private readonly toldSeenAs = new Map<PeerId, "draining" | "retired">();
  /** Per peer: the incarnation that last sent drainSeen, and what it said. */
  private readonly seenBy = new Map<PeerId, DrainSeen>();

  constructor(private readonly deps: DrainHandshakeDeps) {}

  /**
   * Call with the up peers this replica sees draining or retired, whenever that may
   * have changed (membership news, a link up). Each is told once per link and state,
   * after this replica's changes so far are durable (so `upTo` covers every right it moved).
   */
  tellLeaving(leavingUpPeers: Iterable<LeavingPeer>): void {
    for (const { replicaId, retired } of leavingUpPeers) {
      const seenAs = retired ? "retired" : "draining";
      if (this.toldSeenAs.get(replicaId) === seenAs) continue;
      this.toldSeenAs.set(replicaId, seenAs);
      void this.deps.durable().then((upTo) => {
        if (this.toldSeenAs.get(replicaId) === seenAs) this.deps.transport.send(replicaId, { type: "drainSeen", upTo, retired });
      });
    }
  }

  peerDown(peer: PeerId): void {
    this.toldSeenAs.delete(peer);
  }

  receive(peer: PeerId, peerActor: Actor, message: PeerMessage): void {
    if (message.type === "drainSeen") this.seenBy.set(peer, { actor: peerActor, upTo: message.upTo, retired: message.retired });
  }

  /** The writers that may still move rights here, or whose moves are not all merged yet. */
  unsettled(writers: readonly Writer[]): PeerId[] {
    return this.unconfirmed(writers, (seen) => this.deps.mergedUpTo(seen.actor) >= seen.upTo);
  }

  /** The writers that have not yet said they see this replica retired. */
  unawareOfRetirement(writers: readonly Writer[]): PeerId[] {
    return this.unconfirmed(writers, (seen) => seen.retired);
  }

  /** The writers whose current incarnation has sent no drainSeen that `confirms`. */
  private unconfirmed(writers: readonly Writer[], confirms: (seen: DrainSeen) => boolean): PeerId[] {
    return writers
      .filter((writer) => {
        const seen = this.seenBy.get(writer.replicaId);
        return seen === undefined || seen.actor !== writer.actor || !confirms(seen);
      })
      .map((writer) => writer.replicaId);
  }
}
