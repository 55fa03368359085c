// Requests sent to peers that wait for an answer naming their request id (rights
// requests, forwarded checkouts). Each wait ends once: with the answer, after its
// wait, or when its peer's link goes down (no answer can come on a new link).
import type { Clock } from "./clock.js";
import type { PeerId } from "./transport.js";

interface Pending<T> {
  readonly peerId: PeerId;
  done(answer: T): void;
}

export class PendingRequests<T> {
  private nextRequestId = 1;
  private readonly pending = new Map<number, Pending<T>>();

  constructor(private readonly clock: Clock) {}

  /** The id of the next request, to send before `wait`. */
  newId(): number {
    return this.nextRequestId++;
  }

  /** The answer to request `requestId` of `peerId`, or `unanswered(why)` after `waitMs` or once its link is down. */
  wait(requestId: number, peerId: PeerId, waitMs: number, unanswered: (why: "waited" | "link down") => T): Promise<T> {
    return new Promise<T>((resolve) => {
      const cancelTimer = this.clock.after(waitMs, () => {
        this.pending.delete(requestId);
        resolve(unanswered("waited"));
      });
      this.pending.set(requestId, {
        peerId,
        done: (answer) => {
          cancelTimer();
          resolve(answer);
        },
      });
    });
  }

  /** `peerId` answered request `requestId` (an answer from another peer, or to no waiting request, is ignored). */
  answered(peerId: PeerId, requestId: number, answer: T): void {
    const request = this.pending.get(requestId);
    if (request === undefined || request.peerId !== peerId) return;
    this.pending.delete(requestId);
    request.done(answer);
  }

  /** Requests to `peerId` will get no answer. */
  peerDown(peerId: PeerId, unanswered: (why: "waited" | "link down") => T): void {
    for (const [requestId, request] of this.pending) {
      if (request.peerId !== peerId) continue;
      this.pending.delete(requestId);
      request.done(unanswered("link down"));
    }
  }
}
