// The states of one kind (items, users or orders) as a replica holds them: the
// states it keeps (made by create, or changed since their batch_init) and the
// batch records every other key of the kind is computed from (crdt/batchRecord.ts).
// A kept state is held decoded while it may change; once its encoding is written
// (settle), it is held as that encoding alone, a latin1 string of a few dozen
// bytes instead of a few hundred in Maps, and decoded again when next read.
import type { Actor, BoundedCounter } from "./boundedCounter.js";
import type { BatchRecord, BatchRecords } from "./batchRecord.js";
import { type Generation, compareGenerations } from "./generation.js";

interface KeptState {
  readonly generation: Generation;
  counter(): BoundedCounter;
}

/** A written state, as its encoding. */
class Settled {
  constructor(
    readonly generation: Generation,
    readonly encoded: string,
  ) {}
}

export class KeptStates<T extends KeptState> {
  private readonly stored = new Map<string, T | Settled>();

  constructor(
    readonly batches: BatchRecords,
    private readonly make: (record: BatchRecord, index: number) => T,
    private readonly decode: (bytes: Uint8Array) => T,
  ) {}

  /** The state of `id` now: the kept one unless a newer batch record covers the key. Not to be changed. */
  current(id: string): T | undefined {
    const entry = this.stored.get(id);
    // The common case, first: a state at least as new as every record of its kind.
    const newest = this.batches.newest;
    if (newest === undefined || (entry !== undefined && compareGenerations(entry.generation, newest) >= 0)) return this.open(entry);
    const record = this.batches.recordFor(id);
    if (record === undefined || (entry !== undefined && compareGenerations(entry.generation, record.generation) >= 0)) return this.open(entry);
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

  /** Keep `state` for `id` as its encoding `bytes` at once (read from disk: nothing will change it before it is read again). */
  keepSettled(id: string, state: T, bytes: Uint8Array): void {
    this.stored.set(id, new Settled(state.generation, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1")));
  }

  /** `bytes`, the encoding of `id`'s kept state, are written and nothing changed it since: hold those alone. */
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
    for (const [id, entry] of this.stored) if (this.isCurrent(id, entry)) yield [id, this.open(entry)!];
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
    for (const [id, entry] of this.stored) if (this.isCurrent(id, entry) && this.open(entry)!.counter().rights(actor) > 0) yield id;
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

  private open(entry: T | Settled | undefined): T | undefined {
    return entry instanceof Settled ? this.decode(Buffer.from(entry.encoded, "latin1")) : entry;
  }
}
