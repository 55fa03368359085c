// Checkouts handed to the replica that holds the order's token. Moving the token
// costs a durable, replicated grant before the checkout's own batch; the holder
// can instead decide the checkout itself, with the rights it has (or gathers),
// and answer over the link. The caller then reads the order paid in its own state:
// the holder answers only after the states that pay it were sent on the same
// ordered link, durable and acked by its up peers.
//
// A link that fails between the forward and the answer leaves the outcome unknown:
// the holder may have paid the order. The caller must not call that a refusal
// (a 4xx changes nothing); Replica.checkout says which outcomes it can prove.
//
// Who may forward: an up peer that is a member (or configured peer) and whose
// actor is an incarnation of its replica id, as for rights. The holder runs at most
// `inFlightMax` forwarded checkouts at a time; past that it refuses with a 409.
import type { Actor } from "../crdt/boundedCounter.js";
import type { Refusal } from "../crdt/shopState.js";
import type { Clock } from "./clock.js";
import { type ForwardedRefusal, type PeerMessage, refusalMessageLengthMax } from "./messages.js";
import { isActorOf } from "./peerIds.js";
import { PendingRequests } from "./pendingRequests.js";
import type { PeerId, Transport } from "./transport.js";

/** How a forwarded checkout ended, as far as the sender can tell. */
export type ForwardOutcome =
  | { readonly kind: "answered"; readonly refusal: ForwardedRefusal | null }
  /** The link was down: the holder never heard of it. */
  | { readonly kind: "not-sent" }
  /** The link went down, or no answer in time: the holder may or may not have paid the order. */
  | { readonly kind: "unknown"; readonly why: string };

export interface CheckoutForwarderDeps {
  readonly transport: Pick<Transport, "send">;
  readonly clock: Clock;
  /** Whether `peerId` may have checkouts run for it: a member (or configured peer). */
  mayForward(peerId: PeerId): boolean;
  /** Run a checkout here, without forwarding it again (Replica.checkout's local path). */
  checkoutHere(orderId: string): Promise<Refusal | null>;
  /** Most forwarded checkouts running here at once. */
  readonly inFlightMax: number;
  /** Where a forwarded checkout that failed is reported. */
  readonly log: (level: "info" | "warn", message: string) => void;
}

export class CheckoutForwarder {
  private readonly pending: PendingRequests<ForwardOutcome>;
  private inFlight = 0;

  constructor(private readonly deps: CheckoutForwarderDeps) {
    this.pending = new PendingRequests(deps.clock);
  }

  /** Ask `peerId` to check out `orderId`; its answer, or unknown after `waitMs` or once the link goes down. */
  forward(peerId: PeerId, orderId: string, waitMs: number): Promise<ForwardOutcome> {
    const requestId = this.pending.newId();
    if (!this.deps.transport.send(peerId, { type: "checkoutForward", requestId, orderId })) return Promise.resolve({ kind: "not-sent" });
    return this.pending.wait(requestId, peerId, waitMs, (why) => unknownOutcome(peerId, why));
  }

  receive(peerId: PeerId, peerActor: Actor, message: PeerMessage): void {
    if (message.type === "checkoutForward") this.runForwarded(peerId, peerActor, message.requestId, message.orderId);
    else if (message.type === "checkoutAnswer") this.pending.answered(peerId, message.requestId, { kind: "answered", refusal: message.refusal });
  }

  /** Forwards to `peerId` will get no answer: their outcome is unknown. */
  peerDown(peerId: PeerId): void {
    this.pending.peerDown(peerId, (why) => unknownOutcome(peerId, why));
  }

  private runForwarded(peerId: PeerId, peerActor: Actor, requestId: number, orderId: string): void {
    const answer = (refusal: Refusal | null) => {
      this.deps.transport.send(peerId, { type: "checkoutAnswer", requestId, refusal: refusal === null ? null : forwardedRefusal(refusal) });
    };
    if (!isActorOf(peerActor, peerId) || !this.deps.mayForward(peerId)) {
      answer({ reason: "rights-elsewhere", message: `replica ${peerId} is not a member: it cannot forward checkouts` });
      return;
    }
    if (this.inFlight >= this.deps.inFlightMax) {
      answer({ reason: "rights-elsewhere", message: `the holder of order ${orderId}'s token is running ${this.inFlight} forwarded checkouts: try again` });
      return;
    }
    this.inFlight += 1;
    // Nobody awaits this: a failure is logged and the sender's wait ends unknown.
    void this.deps
      .checkoutHere(orderId)
      .then(answer, (error: unknown) => {
        this.deps.log("warn", `checkout of order ${orderId} forwarded by ${peerId} failed: ${error instanceof Error ? error.message : String(error)}`);
      })
      .finally(() => (this.inFlight -= 1));
  }
}

function unknownOutcome(peerId: PeerId, why: "waited" | "link down"): ForwardOutcome {
  return { kind: "unknown", why: why === "waited" ? `${peerId} did not answer in time` : `the link to ${peerId} went down before its answer` };
}

function forwardedRefusal(refusal: Refusal): ForwardedRefusal {
  const message = refusal.message.length <= refusalMessageLengthMax ? refusal.message : `${refusal.message.slice(0, refusalMessageLengthMax - 1)}…`;
  return { reason: refusal.reason, message };
}
