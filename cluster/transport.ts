// The narrow interface between replication logic and the network. The real
// implementation is WebSockets (wsTransport.ts); tests plug in a simulated one.
// A transport delivers only authenticated peers' valid messages, in order per link.
import type { Actor } from "../crdt/boundedCounter.js";
import type { PeerMessage } from "./messages.js";

/** A replica's configured id (not its incarnation). */
export type PeerId = string;

export interface PeerAddress {
  readonly replicaId: PeerId;
  /** host:port of the peer's replication port */
  readonly address: string;
}

export interface TransportEvents {
  /** A link to `peer` is authenticated and open; `actor` is its current incarnation. */
  peerUp(peer: PeerId, actor: Actor): void;
  /** The link to `peer` closed (it will be retried). */
  peerDown(peer: PeerId): void;
  /** A valid message from an up peer, in the order it was sent. */
  message(peer: PeerId, message: PeerMessage): void;
}

export interface Transport {
  /** Start listening and dialing; events go to `events` from now on. */
  start(events: TransportEvents): Promise<void>;
  /** Queue `message` on the link to `peer`; false (and nothing sent) if it is not up. */
  send(peer: PeerId, message: PeerMessage): boolean;
  /** Close every link and stop listening. */
  close(): Promise<void>;
}
