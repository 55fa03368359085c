// Where a replica process is in its life, as GET /ready tells it: catching up with
// its peers at start, serving, or shutting down. While it catches up, the HTTP port
// already answers the operations routes; every other request waits here until the
// catch-up ends, so no client ever reads a stale state after a restart.
import type { PeerId } from "../cluster/transport.js";

export type Phase = "catching-up" | "serving" | "stopping";

export class Readiness {
  private current: Phase;
  /** Peers the catch-up at start gave up on (unreachable for the whole wait). */
  private notCaughtUpWith: readonly PeerId[] = [];
  private endCatchUp: () => void = () => {};
  /** Resolves when the catch-up at start has ended (at once for a replica that starts serving). */
  readonly caughtUp: Promise<void>;

  constructor(
    start: "catching-up" | "serving",
    /** Peers the catch-up waits for, and its longest wait: for the reason /ready gives. */
    private readonly catchUpPeers: readonly PeerId[] = [],
    private readonly catchUpMsMax = 0,
  ) {
    this.current = start;
    this.caughtUp = start === "serving" ? Promise.resolve() : new Promise<void>((resolve) => (this.endCatchUp = resolve));
  }

  /** A replica that needs no catch-up (tests, a cluster of one). */
  static serving(): Readiness {
    return new Readiness("serving");
  }

  get phase(): Phase {
    return this.current;
  }

  /** True once the catch-up ended: requests no longer wait. The one check on the hot path. */
  get caughtUpNow(): boolean {
    return this.current !== "catching-up";
  }

  /** The catch-up ended; `notCaughtUpWith` are the peers it gave up on. */
  catchUpEnded(notCaughtUpWith: readonly PeerId[]): void {
    if (this.current !== "catching-up") return;
    this.current = "serving";
    this.notCaughtUpWith = notCaughtUpWith;
    this.endCatchUp();
  }

  /** SIGTERM: in-flight requests finish, but load balancers should send no more. */
  stopping(): void {
    this.current = "stopping";
    this.endCatchUp();
  }

  /** Why this replica is not ready, or undefined if it is (retirement is the caller's to add). */
  notReadyReason(): string | undefined {
    if (this.current === "catching-up") {
      return `catching up with its peers (${this.catchUpPeers.join(", ")}) before it serves, for at most ${this.catchUpMsMax} ms`;
    }
    if (this.current === "stopping") return "shutting down: it finishes the requests in flight and takes no more";
    return undefined;
  }

  /** Peers the catch-up at start gave up on (it serves anyway, and catches up when they are back). */
  get gaveUpOn(): readonly PeerId[] {
    return this.notCaughtUpWith;
  }
}
