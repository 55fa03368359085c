// "The rights of this actor were released": the operator's decision about an
// incarnation that lost its disk, or a member gone for good (Replica.release). It is
// replicated like a state, so every replica refuses later changes of that actor; two
// records of one actor (released twice) keep the earlier, by a total order.
import type { Actor } from "./boundedCounter.js";
import { DecodeError, idLengthMax, packFields, unpackFields } from "./codec.js";

export const releaseKeyPrefix = "r:";

export interface ReleaseRecord {
  /** The replica that released the rights (their heir: it wrote the transfers). */
  readonly by: Actor;
  readonly atMs: number;
}

export function encodeRelease(record: ReleaseRecord): Uint8Array {
  return packFields([record.by, record.atMs]);
}

export function decodeRelease(bytes: Uint8Array): ReleaseRecord {
  const fields = unpackFields(bytes, 3);
  const [, by, atMs] = fields;
  if (typeof by !== "string" || by.length === 0 || by.length > idLengthMax) throw new DecodeError(`by must be an actor of 1..${idLengthMax} characters`);
  if (typeof atMs !== "number" || !Number.isSafeInteger(atMs) || atMs < 0) throw new DecodeError("atMs must be a safe non-negative integer");
  return { by, atMs };
}

/** The earlier record (then the smaller releaser): commutative, associative, idempotent. */
export function mergeReleases(a: ReleaseRecord, b: ReleaseRecord): ReleaseRecord {
  if (a.atMs !== b.atMs) return a.atMs < b.atMs ? a : b;
  return a.by <= b.by ? a : b;
}
