import { BoundedCounter } from "./boundedCounter.js";
import { type Generation, type GenerationalState, sameGeneration } from "./generation.js";

/** A stock item: a price fixed at creation and a bounded stock counter. */
export class ItemState implements GenerationalState<ItemState> {
  constructor(
    readonly generation: Generation,
    public price: number,
    readonly stock: BoundedCounter = new BoundedCounter(),
  ) {}

  mergeSameGeneration(other: ItemState): boolean {
    // The price never changes within a generation; max keeps the merge a lattice.
    const priceRose = other.price > this.price;
    if (priceRose) this.price = other.price;
    return this.stock.merge(other.stock) || priceRose;
  }

  coveredBy(other: ItemState): boolean {
    return this.price <= other.price && this.stock.coveredBy(other.stock);
  }

  /** What a peer's state of our generation claims that no peer may write, or null. */
  forgedAgainst(local: ItemState): string | null {
    return this.price === local.price ? null : `price ${this.price} differs from the price ${local.price} it was created with`;
  }

  /** The counter whose rights this state carries. */
  counter(): BoundedCounter {
    return this.stock;
  }

  clone(): ItemState {
    return new ItemState(this.generation, this.price, this.stock.clone());
  }

  equals(other: ItemState): boolean {
    return sameGeneration(this.generation, other.generation) && this.price === other.price && this.stock.equals(other.stock);
  }
}
