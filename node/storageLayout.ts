// Every key a replica keeps in LevelDB, and how its value is encoded and decoded.
// What comes back from disk is checked as carefully as what a peer sends: a bad
// record is a DecodeError (set aside, or a clear refusal to start), never a TypeError.
//
// | key                       | value                                              | replicated |
// |---------------------------|----------------------------------------------------|------------|
// | `<kind>:<id>`             | a shop state; crdt/shopState.ts names the kinds    | yes        |
// | `b:<kind>`                | a kind's batch_init records (crdt/batchRecord.ts)  | yes        |
// | `k:<Idempotency-Key>`     | an idempotency record (crdt/idempotencyRecord.ts)  | yes        |
// | `r:<actor>`               | a released actor (crdt/releaseRecord.ts)           | yes        |
// | `~identity`               | this folder's replica id and incarnation           | no         |
// | `~seq`                    | the number of the last batch written               | no         |
// | `~membership`             | the membership document (cluster/membership.ts)    | gossiped   |
// | `~cursor:<actor>`         | that incarnation's batches merged here, up to this | no         |
// | `~set-aside:<key>`        | the bytes of a stored record that did not decode   | no         |
import type { Actor } from "../crdt/boundedCounter.js";
import { DecodeError, readAmount, readId } from "../crdt/codec.js";
import { idempotencyKeyPrefix } from "../crdt/idempotencyRecord.js";
import { packr } from "../crdt/msgpack.js";
import { releaseKeyPrefix } from "../crdt/releaseRecord.js";
import type { ShopState, StateKey } from "../crdt/shopState.js";
import type { Database } from "./database.js";
import type { IdempotencyStore } from "./idempotency.js";
import type { Identity } from "./identity.js";
import type { ReleasedActors } from "./releasedActors.js";

export const identityKey = "~identity";
export const batchSeqKey = "~seq";
export const membershipKey = "~membership";
export const cursorKeyPrefix = "~cursor:";
export const setAsideKeyPrefix = "~set-aside:";
/** Keys of this replica alone start with it; every other key is a replicated state. */
const localKeyPrefix = "~";

export type KeyFamily = "shop" | "idempotency" | "release" | "identity" | "batchSeq" | "membership" | "cursor" | "setAside";

/** A key whose state replicates (every one but this replica's own `~` keys). */
export function isReplicatedKey(key: string): boolean {
  return !key.startsWith(localKeyPrefix);
}

/** The family of `key`; undefined for a local key no version wrote. */
export function familyOf(key: string): KeyFamily | undefined {
  if (isReplicatedKey(key)) {
    if (key.startsWith(idempotencyKeyPrefix)) return "idempotency";
    if (key.startsWith(releaseKeyPrefix)) return "release";
    return "shop";
  }
  if (key === identityKey) return "identity";
  if (key === batchSeqKey) return "batchSeq";
  if (key === membershipKey) return "membership";
  if (key.startsWith(cursorKeyPrefix)) return "cursor";
  if (key.startsWith(setAsideKeyPrefix)) return "setAside";
  return undefined;
}

export function cursorKey(actor: Actor): string {
  return `${cursorKeyPrefix}${actor}`;
}

export function setAsideKey(key: string): string {
  return `${setAsideKeyPrefix}${key}`;
}

/** A batch number: `~seq`, and each cursor. */
export function encodeBatchNumber(batch: number): Uint8Array {
  return packr.pack(batch);
}

export function decodeBatchNumber(bytes: Uint8Array, what: string): number {
  return readAmount(unpackValue(bytes, what), what);
}

/** The number of the last batch written, 0 in a new folder. */
export async function readBatchSeq(db: Database): Promise<number> {
  return (await readStartRecord(db, batchSeqKey, (bytes) => decodeBatchNumber(bytes, "the batch number"))) ?? 0;
}

/**
 * A local record a replica needs to start (undefined if absent). One that does not
 * decode stops the start: a guess could reuse batch numbers or an incarnation.
 */
export async function readStartRecord<T>(db: Database, key: string, decode: (bytes: Uint8Array) => T): Promise<T | undefined> {
  const stored = await db.get(key);
  if (stored === undefined) return undefined;
  try {
    return decode(stored);
  } catch (error) {
    if (error instanceof DecodeError) throw new Error(`stored ${key} does not decode (${error.message}): refusing to start on a damaged folder`);
    throw error;
  }
}

export function encodeIdentity(identity: Identity): Uint8Array {
  return packr.pack({ replicaId: identity.replicaId, incarnation: identity.incarnation });
}

export function decodeIdentity(bytes: Uint8Array): Identity {
  const fields = unpackValue(bytes, "an identity");
  if (!(fields instanceof Map) || fields.size !== 2) throw new DecodeError("an identity must be a map of replicaId and incarnation");
  return { replicaId: readId(fields.get("replicaId"), "replicaId"), incarnation: readId(fields.get("incarnation"), "incarnation") };
}

/** The in-memory holders of the replicated families, each merging and encoding its own keys. */
export interface ReplicatedStores {
  readonly shop: Pick<ShopState, "mergeEncoded" | "encodeToWrite">;
  readonly idempotency: Pick<IdempotencyStore, "mergeEncoded" | "encode">;
  readonly released: Pick<ReleasedActors, "mergeEncoded" | "encode">;
}

/** What group commit writes: the replicated states, and the local keys that change while a replica runs. */
export interface StoredValues extends ReplicatedStores {
  membership(): Uint8Array;
  /** Up to which batch of `actor` every state it changed is merged here: its cursor. */
  mergedUpTo(actor: Actor): number;
}

/** Merge a replicated state read from disk or received from a peer; true if it changed (a DecodeError if it does not decode). */
export function mergeReplicated(stores: ReplicatedStores, key: StateKey, bytes: Uint8Array, from: "peer" | "disk"): boolean {
  switch (familyOf(key)) {
    case "shop":
      return stores.shop.mergeEncoded(key, bytes, from);
    case "idempotency":
      return stores.idempotency.mergeEncoded(key, bytes);
    case "release":
      return stores.released.mergeEncoded(key, bytes);
    default:
      throw new DecodeError(`${key} is not a replicated state`);
  }
}

/** The bytes to write for a key marked changed (`received`: a peer's bytes that are exactly its state). */
export function encodeStored(values: StoredValues, key: string, received: Uint8Array | undefined): Uint8Array {
  switch (familyOf(key)) {
    case "shop":
      return values.shop.encodeToWrite(key, received);
    case "idempotency":
      return values.idempotency.encode(key);
    case "release":
      return values.released.encode(key);
    case "membership":
      return values.membership();
    case "cursor":
      return encodeBatchNumber(values.mergedUpTo(key.slice(cursorKeyPrefix.length)));
    default:
      throw new RangeError(`group commit does not write ${key}`);
  }
}

function unpackValue(bytes: Uint8Array, what: string): unknown {
  try {
    return packr.unpack(bytes);
  } catch (error) {
    throw new DecodeError(`${what} must be msgpack: ${(error as Error).message}`);
  }
}
