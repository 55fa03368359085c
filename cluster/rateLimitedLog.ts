// Log lines that a remote can provoke at will (refused connections, links closed for
// a bad frame tag), with a cap: per kind of line, at most linesPerWindowMax lines per
// window, then one line with the count of those left out. Per kind, so that a flood of
// one kind (idle connections, say) does not hide another (a replica whose ticket fails).
// Pure: the clock is passed in; roll() at a steady pace (the transport's tick) reports
// a window that ended in silence. Kinds are the caller's few fixed names.
import type { LogFunction, LogLevel } from "./wsTransport.js";

interface KindCount {
  lines: number;
  suppressed: number;
}

export class RateLimitedLog {
  private windowStartMs = Number.NEGATIVE_INFINITY;
  private readonly counts = new Map<string, KindCount>();

  constructor(
    private readonly log: LogFunction,
    private readonly linesPerWindowMax: number,
    private readonly windowMs: number,
  ) {
    if (!Number.isInteger(linesPerWindowMax) || linesPerWindowMax < 1) throw new RangeError("linesPerWindowMax must be a positive integer");
    if (!(windowMs > 0)) throw new RangeError("windowMs must be positive");
  }

  write(kind: string, level: LogLevel, message: string, nowMs: number): void {
    this.roll(nowMs);
    let count = this.counts.get(kind);
    if (count === undefined) this.counts.set(kind, (count = { lines: 0, suppressed: 0 }));
    if (count.lines < this.linesPerWindowMax) {
      count.lines += 1;
      this.log(level, message);
    } else {
      count.suppressed += 1;
    }
  }

  /** Starts a new window if the current one is over, first saying how many lines of each kind it left out. */
  roll(nowMs: number): void {
    if (nowMs - this.windowStartMs < this.windowMs) return;
    for (const [kind, { suppressed }] of this.counts) {
      if (suppressed > 0) this.log("warn", `${suppressed} more ${kind} lines left out in the last ${Math.round(nowMs - this.windowStartMs)} ms`);
    }
    this.windowStartMs = nowMs;
    this.counts.clear();
  }
}
