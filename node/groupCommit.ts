// Group commit: the changes of many requests go to LevelDB in one batch with one
// fsync, then all their replies go out. States are encoded at flush time, so a key
// changed a thousand times between two flushes is written once. All keys changed
// in one synchronous step land in the same batch (a flush starts on a later tick),
// which makes a checkout's item, user and order changes atomic on disk.
// Batches are numbered; the number is stored with each batch, and each durable
// batch is reported (with the bytes that reached the disk) before any of its
// waiters resume, so replication can send exactly what is durable.
import { pack, unpack } from "msgpackr";
import type { ChangeOrigin, StateKey } from "../crdt/shopState.js";
import type { Database } from "./database.js";

export const batchSeqKey = "~seq";

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

  private constructor(
    private readonly db: Database,
    private readonly encode: (key: StateKey) => Uint8Array,
    private readonly onDurable: (batch: DurableBatch) => void,
    /** A failed write leaves memory ahead of disk: the replica must stop. */
    private readonly onWriteFailure: (error: unknown) => void,
    /** Runs a callback on a later turn of the event loop (setImmediate; a simulated scheduler in tests). */
    private readonly defer: (callback: () => void) => void,
    /** Number of the last batch written. */
    private lastSeq: number,
    /** Told of every batch once written (metrics); optional. */
    private readonly observe?: (batch: BatchWritten) => void,
  ) {
    this.syncedSeq = lastSeq;
  }

  /** Number of the last batch fsynced (which makes every earlier one durable too). */
  private syncedSeq: number;

  static async open(
    db: Database,
    encode: (key: StateKey) => Uint8Array,
    onDurable: (batch: DurableBatch) => void,
    onWriteFailure: (error: unknown) => void,
    defer: (callback: () => void) => void,
    observe?: (batch: BatchWritten) => void,
  ): Promise<GroupCommit> {
    const stored = await db.get(batchSeqKey);
    const lastSeq = stored === undefined ? 0 : (unpack(stored) as number);
    if (!Number.isSafeInteger(lastSeq) || lastSeq < 0) throw new Error(`stored batch number ${String(lastSeq)} is invalid`);
    return new GroupCommit(db, encode, onDurable, onWriteFailure, defer, lastSeq, observe);
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
    if (this.flushing === undefined) this.defer(() => this.flush());
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
      const bytes = batch.received.get(key) ?? this.encode(key);
      write.put(key, bytes);
      entries.push({ key, bytes, local });
    }
    write.put(batchSeqKey, pack(seq));
    // Only this replica's own changes need an fsync before anyone hears of them. A
    // batch of merged states alone is durable at its senders, who resend it until a
    // synced cursor says it arrived; the log keeps batches in order, so a power loss
    // leaves a prefix of them, never a cursor ahead of its states.
    const sync = anyLocal || batch.forceSync;
    const startedMs = this.observe === undefined ? 0 : performance.now();
    write.write({ sync }).then(
      () => {
        this.observe?.({ keys: entries.length, synced: sync, writeMs: performance.now() - startedMs });
        this.lastSeq = seq;
        if (sync) this.syncedSeq = seq;
        this.flushing = undefined;
        this.onDurable({ seq, entries });
        for (const callback of this.quietCallbacks.splice(0)) callback();
        batch.resolve(seq);
        if (this.open !== undefined) this.flush();
      },
      (error: unknown) => this.onWriteFailure(error),
    );
  }
}
