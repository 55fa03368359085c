// The states of one kind (items, users or orders) as a replica holds them: the
// states it keeps (made by create, or changed since their batch_init) and the
// batch records every other key of the kind is computed from (crdt/batchRecord.ts).
// A kept state is held decoded while it may change; once its encoding is written
// (settle), only its generation stays in memory, and its bytes are read back from
// where they were written (crdt/writtenStates.ts) and decoded when it is next read:
// a replica's memory holds a Map entry for such a key, not the state.
import type { Actor, BoundedCounter } from "./boundedCounter.js";
import type { BatchRecord, BatchRecords } from "./batchRecord.js";
import { type Generation, compareGenerations, sameGeneration } from "./generation.js";
import type { WrittenStates } from "./writtenStates.js";

interface KeptState {
  readonly generation: Generation;
  counter(): BoundedCounter;
}

/** A written state: its generation alone, one object shared by the states of that generation. */
class Settled {
  constructor(readonly generation: Generation) {}
}

/** How many generations' Settled objects are shared; states of any further one get their own. */
const sharedSettledMax = 16;

export class KeptStates<T extends KeptState> {
  private readonly stored = new Map<string, T | Settled>();
  private readonly sharedSettled: Settled[] = [];

  constructor(
    readonly batches: BatchRecords,
    private readonly make: (record: BatchRecord, index: number) => T,
    private readonly decode: (bytes: Uint8Array) => T,
    private readonly written: WrittenStates,
  ) {}

  /** The state of `id` now: the kept one unless a newer batch record covers the key. Not to be changed. */
  current(id: string): T | undefined {
    const entry = this.stored.get(id);
    // The common case, first: a state at least as new as every record of its kind.
    const newest = this.batches.newest;
    if (newest === undefined || (entry !== undefined && compareGenerations(entry.generation, newest) >= 0)) return this.open(id, entry);
    const record = this.batches.recordFor(id);
    if (record === undefined || (entry !== undefined && compareGenerations(entry.generation, record.generation) >= 0)) return this.open(id, entry);
    return this.make(record, Number(id));
  }

  /** The state of `id` now, kept (decoded) from here on so that changes made to it stay. */
  toChange(id: string): T | undefined {
    const state = this.current(id);
    if (state !== undefined && this.stored.get(id) !== state) this.stored.set(id, state);
    return state;
  }

  /** Keep `state` for `id` (one the caller made or merged). */
  keep(id: string, state: T): void {
    this.stored.set(id, state);
  }

  /** Keep `state` for `id` as written at once: `bytes`, its encoding, were read from where they are written. */
  keepSettled(id: string, state: T, bytes: Uint8Array): void {
    this.written.written(this.keyOf(id), bytes);
    this.stored.set(id, this.settledAt(state.generation));
  }

  /** `bytes`, the encoding of `id`'s kept state, are written and nothing changed it since: hold its generation alone. */
  settle(id: string, bytes: Uint8Array): void {
    const entry = this.stored.get(id);
    if (entry === undefined || entry instanceof Settled) return;
    this.keepSettled(id, entry, bytes);
  }

  /** A state was ever kept for `id` (create refuses to make it twice). */
  has(id: string): boolean {
    return this.stored.has(id);
  }

  /**
   * The state to merge a stored one into, at load: a stored state of its record's
   * generation or later holds all the record gives (it was made from it and rows only
   * grow), so the computed state is not built for it; that keeps a restart from
   * building one per kept key.
   */
  currentAtLoad(id: string, incoming: T): T | undefined {
    if (this.stored.has(id)) return this.current(id);
    const record = this.batches.recordFor(id);
    return record === undefined || compareGenerations(record.generation, incoming.generation) <= 0 ? undefined : this.make(record, Number(id));
  }

  /** Every key's state now, kept ones first, then the computed ones. */
  *entries(): Generator<[string, T]> {
    for (const [id, entry] of this.stored) if (this.isCurrent(id, entry)) yield [id, this.open(id, entry)!];
    for (const [record, first, end] of this.batches.ranges()) {
      for (let index = first; index < end; index++) {
        const entry = this.stored.get(String(index));
        if (entry === undefined || compareGenerations(entry.generation, record.generation) < 0) yield [String(index), this.make(record, index)];
      }
    }
  }

  /** Ids whose state is kept (not computed). */
  *keptIds(): Generator<string> {
    for (const [id, entry] of this.stored) if (this.isCurrent(id, entry)) yield id;
  }

  /** How many keys exist, computed ones included. */
  count(): number {
    let count = this.batches.keyCount();
    for (const id of this.stored.keys()) if (this.batches.recordFor(id) === undefined) count += 1;
    return count;
  }

  /**
   * Ids whose counter gives `actor` rights: kept states first, then keys never
   * changed (a record that names neither the actor as maker nor among its spread
   * actors gives it none, and is skipped whole).
   */
  *idsHolding(actor: Actor): Generator<string> {
    for (const [id, entry] of this.stored) if (this.isCurrent(id, entry) && this.open(id, entry)!.counter().rights(actor) > 0) yield id;
    for (const [record, first, end] of this.batches.ranges()) {
      if (record.generation.actor !== actor && !record.spreadActors.includes(actor)) continue;
      for (let index = first; index < end; index++) {
        const entry = this.stored.get(String(index));
        if (entry !== undefined && compareGenerations(entry.generation, record.generation) >= 0) continue;
        if (this.make(record, index).counter().rights(actor) > 0) yield String(index);
      }
    }
  }

  private isCurrent(id: string, entry: T | Settled): boolean {
    const record = this.batches.recordFor(id);
    return record === undefined || compareGenerations(entry.generation, record.generation) >= 0;
  }

  private open(id: string, entry: T | Settled | undefined): T | undefined {
    if (!(entry instanceof Settled)) return entry;
    const key = this.keyOf(id);
    const bytes = this.written.read(key);
    if (bytes === undefined) throw new Error(`state ${key} was written, and is not where it was written`);
    return this.decode(bytes);
  }

  /** The Settled of `generation`: shared while few generations are in use (most keys have one of a few). */
  private settledAt(generation: Generation): Settled {
    for (const settled of this.sharedSettled) if (sameGeneration(settled.generation, generation)) return settled;
    const settled = new Settled(generation);
    if (this.sharedSettled.length < sharedSettledMax) this.sharedSettled.push(settled);
    return settled;
  }

  private keyOf(id: string): string {
    return `${this.batches.kind}:${id}`;
  }
}
