// Group commit: the changes of many requests go to LevelDB in one batch with one
// fsync, then all their replies go out. States are encoded at flush time, so a key
// changed a thousand times between two flushes is written once. All keys changed
// in one synchronous step land in the same batch (a flush starts on a later tick),
// which makes a checkout's item, user and order changes atomic on disk.
// Batches are numbered; the number is stored with each batch, and each durable
// batch is reported (with the bytes that reached the disk) before any of its
// waiters resume, so replication can send exactly what is durable.
import type { ChangeOrigin, StateKey } from "../crdt/shopState.js";
import type { Database } from "./database.js";
import { batchSeqKey, encodeBatchNumber } from "./storageLayout.js";

/** What an observer (metrics) learns of each batch written: no keys, just sizes and time. */
export interface BatchWritten {
  readonly keys: number;
  /** Written with an fsync (it held this replica's own changes, or a sync was asked for). */
  readonly synced: boolean;
  readonly writeMs: number;
}

export interface DurableBatch {
  readonly seq: number;
  /** Every key of the batch with the bytes written, local changes flagged. */
  readonly entries: readonly { readonly key: StateKey; readonly bytes: Uint8Array; readonly local: boolean }[];
}

export interface GroupCommitDeps {
  /** The bytes of a changed key at flush time: `received` (what a peer sent, if the state is exactly that), else encoded now. */
  encode(key: StateKey, received: Uint8Array | undefined): Uint8Array;
  /** Each batch once durable, before any of its waiters resume (replication sends it). */
  onDurable(batch: DurableBatch): void;
  /** A failed write leaves memory ahead of disk: the replica must stop. */
  onWriteFailure(error: unknown): void;
  /** Runs a callback on a later turn of the event loop (setImmediate; a simulated scheduler in tests). */
  defer(callback: () => void): void;
  /** Told of every batch once written (metrics). */
  observe?(batch: BatchWritten): void;
}

interface OpenBatch {
  /** key -> changed by a local operation (true wins over merged) */
  readonly keys: Map<StateKey, boolean>;
  /** Keys whose state is exactly what a peer sent: those bytes are written, not re-encoded. */
  readonly received: Map<StateKey, Uint8Array>;
  /** fsync this batch even if it holds merged states only. */
  forceSync: boolean;
  readonly durable: Promise<number>;
  resolve(seq: number): void;
}

export class GroupCommit {
  /** Keys changed since the last flush began; undefined when there are none. */
  private open: OpenBatch | undefined;
  private flushing: OpenBatch | undefined;
  /** Run when no batch is being written, before the next one starts. */
  private quietCallbacks: (() => void)[] = [];

  /** Number of the last batch fsynced (which makes every earlier one durable too). */
  private syncedSeq: number;

  /** `lastSeq`: the number of the last batch written (storageLayout's readBatchSeq). */
  constructor(
    private readonly db: Database,
    private lastSeq: number,
    private readonly deps: GroupCommitDeps,
  ) {
    this.syncedSeq = lastSeq;
  }

  /** Number of the last batch that is fsynced, with every batch before it. */
  get durableSeq(): number {
    return this.syncedSeq;
  }

  /**
   * Mark a key changed; its current state will be in the next batch. `bytes`: the
   * state is exactly these received bytes (until the key changes again).
   */
  markChanged(key: StateKey, origin: ChangeOrigin, bytes?: Uint8Array): void {
    const { keys, received } = this.openBatch();
    if (origin === "local") keys.set(key, true);
    else if (!keys.has(key)) keys.set(key, false);
    if (bytes !== undefined) received.set(key, bytes);
    else received.delete(key);
  }

  /** Resolves with a batch number once every change marked so far is durable. */
  durable(): Promise<number> {
    if (this.open !== undefined) return this.open.durable;
    if (this.flushing !== undefined) return this.flushing.durable;
    return Promise.resolve(this.lastSeq);
  }

  /**
   * Run `callback` synchronously at a moment when no batch is being written (now,
   * or right after the current write completes and is reported, before the next).
   */
  whenQuiet(callback: () => void): void {
    if (this.flushing === undefined) callback();
    else this.quietCallbacks.push(callback);
  }

  /** Resolves once every batch written so far, and every change marked so far, is fsynced. */
  syncAll(): Promise<number> {
    if (this.idle && this.syncedSeq === this.lastSeq) return Promise.resolve(this.lastSeq);
    const batch = this.openBatch();
    batch.forceSync = true;
    return batch.durable;
  }

  /** Nothing is waiting to be written. */
  get idle(): boolean {
    return this.open === undefined && this.flushing === undefined;
  }

  private openBatch(): OpenBatch {
    if (this.open !== undefined) return this.open;
    let resolve!: (seq: number) => void;
    const durable = new Promise<number>((done) => (resolve = done));
    const batch: OpenBatch = { keys: new Map(), received: new Map(), forceSync: false, durable, resolve };
    this.open = batch;
    // Let the requests that are already readable join this batch before it flushes.
    if (this.flushing === undefined) this.deps.defer(() => this.flush());
    return batch;
  }

  private flush(): void {
    const batch = this.open;
    if (batch === undefined || this.flushing !== undefined) return;
    this.open = undefined;
    this.flushing = batch;
    const seq = this.lastSeq + 1;
    const write = this.db.batch();
    const entries: { key: StateKey; bytes: Uint8Array; local: boolean }[] = [];
    let anyLocal = false;
    for (const [key, local] of batch.keys) {
      anyLocal ||= local;
      const bytes = this.deps.encode(key, batch.received.get(key));
      write.put(key, bytes);
      entries.push({ key, bytes, local });
    }
    write.put(batchSeqKey, encodeBatchNumber(seq));
    // Only this replica's own changes need an fsync before anyone hears of them. A
    // batch of merged states alone is durable at its senders, who resend it until a
    // synced cursor says it arrived; the log keeps batches in order, so a power loss
    // leaves a prefix of them, never a cursor ahead of its states.
    const sync = anyLocal || batch.forceSync;
    const startedMs = this.deps.observe === undefined ? 0 : performance.now();
    write.write({ sync }).then(
      () => {
        this.deps.observe?.({ keys: entries.length, synced: sync, writeMs: performance.now() - startedMs });
        this.lastSeq = seq;
        if (sync) this.syncedSeq = seq;
        this.flushing = undefined;
        this.deps.onDurable({ seq, entries });
        for (const callback of this.quietCallbacks.splice(0)) callback();
        batch.resolve(seq);
        if (this.open !== undefined) this.flush();
      },
      (error: unknown) => this.deps.onWriteFailure(error),
    );
  }
}
