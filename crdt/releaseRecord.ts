// "The rights of this actor were released": the operator's decision about an
// incarnation that lost its disk, or a member gone for good (Replica.release). It is
// replicated like a state, so every replica refuses later changes of that actor; two
// records of one actor (released twice) keep the earlier, by a total order.
import { Packr } from "msgpackr";
import type { Actor } from "./boundedCounter.js";
import { DecodeError, idLengthMax } from "./codec.js";

export const releaseKeyPrefix = "r:";
const formatVersion = 1;

export interface ReleaseRecord {
  /** The replica that released the rights (their heir: it wrote the transfers). */
  readonly by: Actor;
  readonly atMs: number;
}

const packr = new Packr({ useRecords: false, mapsAsObjects: false, moreTypes: false });

export function encodeRelease(record: ReleaseRecord): Uint8Array {
  return packr.pack([formatVersion, record.by, record.atMs]);
}

export function decodeRelease(bytes: Uint8Array): ReleaseRecord {
  let fields: unknown;
  try {
    fields = packr.unpack(bytes);
  } catch (error) {
    throw new DecodeError(`a release record must be msgpack: ${(error as Error).message}`);
  }
  if (!Array.isArray(fields) || fields.length !== 3 || fields[0] !== formatVersion) throw new DecodeError("a release record must be [1, by, atMs]");
  const [, by, atMs] = fields as unknown[];
  if (typeof by !== "string" || by.length === 0 || by.length > idLengthMax) throw new DecodeError(`by must be an actor of 1..${idLengthMax} characters`);
  if (typeof atMs !== "number" || !Number.isSafeInteger(atMs) || atMs < 0) throw new DecodeError("atMs must be a safe non-negative integer");
  return { by, atMs };
}

/** The earlier record (then the smaller releaser): commutative, associative, idempotent. */
export function mergeReleases(a: ReleaseRecord, b: ReleaseRecord): ReleaseRecord {
  if (a.atMs !== b.atMs) return a.atMs < b.atMs ? a : b;
  return a.by <= b.by ? a : b;
}
