// Group commit: the changes of many requests go to LevelDB in one batch with one
// fsync, then all their replies go out. States are encoded at flush time, so a key
// changed a thousand times between two flushes is written once. All keys changed
// in one synchronous step land in the same batch (a flush starts on a later tick),
// which makes a checkout's item, user and order changes atomic on disk.
import type { Level } from "level";
import type { StateKey } from "../crdt/shopState.js";

interface Batch {
  readonly keys: Set<StateKey>;
  readonly durable: Promise<void>;
  resolve(): void;
}

export class GroupCommit {
  /** Keys changed since the last flush began; undefined when there are none. */
  private open: Batch | undefined;
  private flushing: Batch | undefined;

  constructor(
    private readonly db: Level<string, Uint8Array>,
    private readonly encode: (key: StateKey) => Uint8Array,
    /** A failed write leaves memory ahead of disk: the replica must stop. */
    private readonly onWriteFailure: (error: unknown) => void,
  ) {}

  /** Mark a key changed; its current state will be in the next batch. */
  markChanged(key: StateKey): void {
    this.openBatch().keys.add(key);
  }

  /** Resolves once every change marked so far is durable. */
  durable(): Promise<void> {
    if (this.open !== undefined) return this.open.durable;
    if (this.flushing !== undefined) return this.flushing.durable;
    return Promise.resolve();
  }

  /** Nothing is waiting to be written. */
  get idle(): boolean {
    return this.open === undefined && this.flushing === undefined;
  }

  private openBatch(): Batch {
    if (this.open !== undefined) return this.open;
    let resolve!: () => void;
    const durable = new Promise<void>((done) => (resolve = done));
    const batch: Batch = { keys: new Set(), durable, resolve };
    this.open = batch;
    // Let the requests that are already readable join this batch before it flushes.
    if (this.flushing === undefined) setImmediate(() => this.flush());
    return batch;
  }

  private flush(): void {
    const batch = this.open;
    if (batch === undefined || this.flushing !== undefined) return;
    this.open = undefined;
    this.flushing = batch;
    const write = this.db.batch();
    for (const key of batch.keys) write.put(key, this.encode(key));
    write.write({ sync: true }).then(
      () => {
        this.flushing = undefined;
        batch.resolve();
        if (this.open !== undefined) this.flush();
      },
      (error: unknown) => this.onWriteFailure(error),
    );
  }
}
