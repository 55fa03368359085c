// Idempotency-Key (docs/API.md): a POST sent again with the same key answers as the
// first did and changes nothing. The first request's decision is recorded in the
// same group-commit batch as its change, so no crash keeps one without the other,
// and replicated with it. A repeat re-runs its route in replay: Replica.mutate
// returns the recorded decision without changing anything, and newId() gives back
// the ids drawn the first time, so the answer is the same, body included. The
// guard is passed explicitly, not through AsyncLocalStorage: on Node 20 that would
// put a hook on every promise of every request once one key was seen.
import { randomUUID } from "node:crypto";
import type { Actor } from "../crdt/boundedCounter.js";
import { type IdempotencyRecord, decodeRecord, encodeRecord, idempotencyKeyPrefix, mergeRecords } from "../crdt/idempotencyRecord.js";
import type { Refusal, StateKey } from "../crdt/shopState.js";
import { mergeRecord, recordAt } from "./recordMap.js";

/** A request in progress that carries an Idempotency-Key (made by the API, passed to mutate and newId). */
export interface RequestGuard {
  readonly key: string;
  /** Method and path: a key reused for another request is refused. */
  readonly fingerprint: string;
  /** A repeat: what the first request decided. */
  replay: IdempotencyRecord | undefined;
  /** How many of the replayed ids were handed out. */
  idsReplayed: number;
  /** Ids this request drew (the first time), in order. */
  readonly drawnIds: string[];
}

/** A new opaque id (a uuid); in a replayed request, the one the first run drew. */
export function newId(guard?: RequestGuard): string {
  if (guard?.replay !== undefined) {
    const id = guard.replay.ids[guard.idsReplayed++];
    if (id !== undefined) return id;
  }
  const id = randomUUID();
  guard?.drawnIds.push(id);
  return id;
}

/** A refusal that may go away by itself (rights held elsewhere, a leaving replica) is not kept: a retry runs again. */
export function isRecordable(refusal: Refusal | null): boolean {
  return refusal === null || (refusal.reason !== "rights-elsewhere" && refusal.reason !== "leaving");
}

export interface IdempotencyStoreDeps {
  readonly actor: Actor;
  nowMs(): number;
  /** The record of this state key changed: write it in the open group-commit batch. */
  markChanged(stateKey: StateKey): void;
  /** Records older than this are forgotten. */
  readonly windowMs: number;
  /** At most this many records are kept; the oldest go first. */
  readonly recordsMax: number;
}

export class IdempotencyStore {
  /** By key, oldest first (as recorded or merged here). */
  private readonly records = new Map<string, IdempotencyRecord>();
  /** Requests with a key running here now: a second one waits for the first. */
  private readonly running = new Map<string, Promise<void>>();

  constructor(private readonly deps: IdempotencyStoreDeps) {}

  /** Wait until no other request with `key` runs here, then hold it until the returned release is called. */
  async hold(key: string): Promise<() => void> {
    for (let other = this.running.get(key); other !== undefined; other = this.running.get(key)) await other;
    let release!: () => void;
    this.running.set(key, new Promise<void>((resolve) => (release = resolve)));
    return () => {
      this.running.delete(key);
      release();
    };
  }

  lookup(key: string): IdempotencyRecord | undefined {
    const record = this.records.get(key);
    return record === undefined || this.expired(record) ? undefined : record;
  }

  /** Keep what the guarded request decided; call it in the same synchronous step as its change. */
  record(guard: RequestGuard, refusal: Refusal | null): void {
    if (this.records.has(guard.key)) return;
    const record: IdempotencyRecord = {
      fingerprint: guard.fingerprint,
      refusal: refusal === null ? null : { reason: refusal.reason, message: refusal.message },
      ids: guard.drawnIds.slice(),
      recordedAtMs: Math.floor(this.deps.nowMs()),
      actor: this.deps.actor,
    };
    this.records.set(guard.key, record);
    this.deps.markChanged(`${idempotencyKeyPrefix}${guard.key}`);
  }

  /** A record from a peer or the disk; true if this replica's record changed (DecodeError if it does not decode). */
  mergeEncoded(stateKey: StateKey, bytes: Uint8Array): boolean {
    const incoming = decodeRecord(bytes);
    if (this.expired(incoming)) return false;
    return mergeRecord(this.records, stateKey.slice(idempotencyKeyPrefix.length), incoming, mergeRecords);
  }

  encode(stateKey: StateKey): Uint8Array {
    return encodeRecord(recordAt(this.records, stateKey.slice(idempotencyKeyPrefix.length), "idempotency"));
  }

  /** Forget records past the window, and the oldest beyond the bound; their state keys, to delete from disk. */
  expire(): StateKey[] {
    const gone: StateKey[] = [];
    for (const [key, record] of this.records) {
      if (!this.expired(record) && this.records.size - gone.length <= this.deps.recordsMax) continue;
      if (this.running.has(key)) continue;
      gone.push(`${idempotencyKeyPrefix}${key}`);
    }
    for (const stateKey of gone) this.records.delete(stateKey.slice(idempotencyKeyPrefix.length));
    return gone;
  }

  get size(): number {
    return this.records.size;
  }

  private expired(record: IdempotencyRecord): boolean {
    return record.recordedAtMs + this.deps.windowMs < this.deps.nowMs();
  }
}
