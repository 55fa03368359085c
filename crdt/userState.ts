import { BoundedCounter } from "./boundedCounter.js";
import { type Generation, type GenerationalState, sameGeneration } from "./generation.js";

/** A payment user: a bounded credit counter. */
export class UserState implements GenerationalState<UserState> {
  constructor(
    readonly generation: Generation,
    readonly credit: BoundedCounter = new BoundedCounter(),
  ) {}

  mergeSameGeneration(other: UserState): boolean {
    return this.credit.merge(other.credit);
  }

  coveredBy(other: UserState): boolean {
    return this.credit.coveredBy(other.credit);
  }

  /** What a peer's state of our generation claims that no peer may write, or null (users have only their counter). */
  forgedAgainst(_local: UserState): string | null {
    return null;
  }

  /** The counter whose rights this state carries. */
  counter(): BoundedCounter {
    return this.credit;
  }

  clone(): UserState {
    return new UserState(this.generation, this.credit.clone());
  }

  equals(other: UserState): boolean {
    return sameGeneration(this.generation, other.generation) && this.credit.equals(other.credit);
  }
}
