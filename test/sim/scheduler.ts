// Virtual time for a simulation: one queue of events, run in time order (ties in
// the order they were scheduled). After each event the scheduler lets every
// promise the event settled run to completion (one setImmediate: Node drains all
// microtasks first), so the real code's async steps between two events happen
// inside the first one, and the next event sees their result. Nothing in a
// simulated replica uses a real timer, so the order of everything is the seed's.
import type { Clock } from "../../cluster/clock.js";

/** A process whose events stop running once it dies (a crashed replica). */
export interface Life {
  alive: boolean;
}

interface ScheduledEvent {
  readonly at: number;
  readonly order: number;
  readonly run: () => void;
  readonly life: Life | undefined;
  cancelled: boolean;
}

const immortal: Life = { alive: true };

/** Resolves once every pending microtask (and those they queue) has run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class Scheduler {
  private nowMs = 0;
  private nextOrder = 0;
  private readonly heap: ScheduledEvent[] = [];
  eventsRun = 0;

  get now(): number {
    return this.nowMs;
  }

  get pending(): number {
    return this.heap.length;
  }

  /** Run `run` in `delayMs` of virtual time, unless `life` has died by then; returns a cancel. */
  after(delayMs: number, run: () => void, life: Life = immortal): () => void {
    const event: ScheduledEvent = { at: this.nowMs + Math.max(0, delayMs), order: this.nextOrder++, run, life, cancelled: false };
    this.push(event);
    return () => {
      event.cancelled = true;
    };
  }

  /** A Clock whose timers belong to `life`. */
  clock(life: Life = immortal): Clock {
    return { now: () => this.nowMs, after: (delayMs, callback) => this.after(delayMs, callback, life) };
  }

  /**
   * Run events in time order until none is left before `untilMs`, settling after
   * each and calling `afterEach`; the clock then stands at `untilMs`.
   */
  async runUntil(untilMs: number, afterEach: () => void): Promise<void> {
    // What the caller set going before this call schedules its events first.
    await settle();
    for (;;) {
      const next = this.heap[0];
      if (next === undefined || next.at > untilMs) break;
      this.pop();
      if (next.cancelled || !(next.life ?? immortal).alive) continue;
      this.nowMs = next.at;
      this.eventsRun += 1;
      next.run();
      await settle();
      afterEach();
    }
    this.nowMs = Math.max(this.nowMs, untilMs);
  }

  private push(event: ScheduledEvent): void {
    const heap = this.heap;
    heap.push(event);
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(event, heap[parent]!)) break;
      heap[index] = heap[parent]!;
      index = parent;
    }
    heap[index] = event;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && before(heap[right]!, heap[left]!) ? right : left;
      if (!before(heap[child]!, last)) break;
      heap[index] = heap[child]!;
      index = child;
    }
    heap[index] = last;
  }
}

function before(a: ScheduledEvent, b: ScheduledEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}
