// The key-value store a replica keeps its state in, as narrow as what the replica
// uses: LevelDB (the `level` package) in production, memory-level in simulation
// tests. Both are abstract-level databases and fit it as they are.

export interface DatabaseBatch {
  put(key: string, value: Uint8Array): unknown;
  del(key: string): unknown;
  /** `sync`: LevelDB fsyncs before the write resolves (memory-level ignores it). */
  write(options: { readonly sync: boolean }): Promise<void>;
}

export interface DatabaseIterator extends AsyncIterable<[string, Uint8Array]> {
  /** Up to `size` next entries; none once the end is reached. */
  nextv(size: number): Promise<[string, Uint8Array][]>;
  close(): Promise<void>;
}

/** A consistent, read-only view of the database as it was when it was taken. */
export interface DatabaseSnapshot {
  close(): Promise<void>;
}

export interface Database {
  open(): Promise<void>;
  close(): Promise<void>;
  get(key: string): Promise<Uint8Array | undefined>;
  /** Read at once, on this thread: cheap for LevelDB (its cache and table files), unlike a trip to its thread pool. */
  getSync(key: string): Uint8Array | undefined;
  getMany(keys: string[], options?: { readonly snapshot: DatabaseSnapshot }): Promise<(Uint8Array | undefined)[]>;
  /** Taken synchronously: reads through it see exactly the writes completed before. */
  snapshot(): DatabaseSnapshot;
  put(key: string, value: Uint8Array, options: { readonly sync: boolean }): Promise<void>;
  batch(): DatabaseBatch;
  /** Every entry in key order; `highWaterMarkBytes`: how much LevelDB reads ahead per trip to its thread pool. */
  iterator(options?: { readonly highWaterMarkBytes?: number }): DatabaseIterator;
  keys(options: { readonly limit: number }): AsyncIterable<string>;
}
