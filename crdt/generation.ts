// batch_init overwrites keys, which no counter merge can express. Each key's state
// carries the generation that made it: a newer generation replaces an older state
// whole; states of one generation merge. A merge never mixes two generations.
import type { Actor } from "./boundedCounter.js";

/** Lamport counter of the batch_init that made the state, tie-broken by its actor. */
export interface Generation {
  readonly counter: number;
  readonly actor: Actor;
}

/** The generation of keys made by `create`: older than any batch_init. */
export const generationZero: Generation = { counter: 0, actor: "" };

export function compareGenerations(a: Generation, b: Generation): number {
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1;
  if (a.actor === b.actor) return 0;
  return a.actor < b.actor ? -1 : 1;
}

export function sameGeneration(a: Generation, b: Generation): boolean {
  return a.counter === b.counter && a.actor === b.actor;
}

export interface GenerationalState<T> {
  readonly generation: Generation;
  /** Merge a state of the same generation into this one, in place; true if it changed. */
  mergeSameGeneration(other: T): boolean;
  /** True if merging `other` (of the same generation) into this state would give `other`. */
  coveredBy(other: T): boolean;
}

/**
 * The state to keep after receiving `incoming`: `local` merged in place, or
 * `incoming` itself (the caller hands it over) when it is of a newer generation;
 * and whether the kept state differs from `local`.
 */
export function mergeGenerational<T extends GenerationalState<T>>(local: T | undefined, incoming: T): { kept: T; changed: boolean } {
  if (local === undefined) return { kept: incoming, changed: true };
  const order = compareGenerations(local.generation, incoming.generation);
  if (order < 0) return { kept: incoming, changed: true };
  if (order > 0) return { kept: local, changed: false };
  // The common case on a live stream: the sender's state already holds all of ours.
  if (local.coveredBy(incoming)) return { kept: incoming, changed: !incoming.coveredBy(local) };
  return { kept: local, changed: local.mergeSameGeneration(incoming) };
}
