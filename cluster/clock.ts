// Time as the cluster logic sees it: real here, virtual in simulation tests.
export interface Clock {
  now(): number;
  /** Run `callback` after `delayMs`; returns a function that cancels it. */
  after(delayMs: number, callback: () => void): () => void;
}

export const realClock: Clock = {
  now: () => performance.now(),
  after(delayMs, callback) {
    const timer = setTimeout(callback, delayMs);
    return () => clearTimeout(timer);
  },
};
