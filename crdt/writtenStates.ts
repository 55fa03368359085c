// Where a replica's written states are read back from. A kept state whose
// encoding is written is not held in memory (crdt/keptStates.ts): its bytes are
// read again from here when the state is next read. The replica reads its own
// database (node/storedStates.ts); a ShopState with no database holds them here.

/** The encodings last written, by state key ("i:7"). */
export interface WrittenStates {
  /** The encoding last written for `key`, if any. */
  read(key: string): Uint8Array | undefined;
  /** `bytes` are now the encoding written for `key` (a durable batch, or a state read at load). */
  written(key: string, bytes: Uint8Array): void;
}

/** Written states held in memory, for a ShopState with no database (tests, the simulation's copies). */
export class WrittenStatesInMemory implements WrittenStates {
  private readonly encodings = new Map<string, Uint8Array>();

  read(key: string): Uint8Array | undefined {
    return this.encodings.get(key);
  }

  written(key: string, bytes: Uint8Array): void {
    // A copy: `bytes` may be a view into a large received frame.
    this.encodings.set(key, bytes.slice());
  }
}
