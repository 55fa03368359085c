// "The rights of this actor were released": the operator's decision about an
// incarnation that lost its disk, or a member gone for good (Replica.release). It is
// replicated like a state, so every replica refuses later changes of that actor; two
// records of one actor (released twice) keep the earlier, by a total order.
import type { Actor } from "./boundedCounter.js";
import { packFields, readAmount, readId, unpackFields } from "./codec.js";

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
  return { by: readId(by, "by"), atMs: readAmount(atMs, "atMs") };
}

/** The earlier record (then the smaller releaser): commutative, associative, idempotent. */
export function mergeReleases(a: ReleaseRecord, b: ReleaseRecord): ReleaseRecord {
  if (a.atMs !== b.atMs) return a.atMs < b.atMs ? a : b;
  return a.by <= b.by ? a : b;
}
