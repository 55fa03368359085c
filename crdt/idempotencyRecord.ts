// What a request sent with an Idempotency-Key decided, kept so that a repeat of it
// answers the same and changes nothing: the request's fingerprint (method and
// path), the decision (done, or the refusal), and the ids it drew (a create's new
// id). Replicated like a state; two replicas that recorded one key differently (the
// same key sent to both at once) agree on the earlier record, by a total order.
import type { Actor } from "./boundedCounter.js";
import { DecodeError, packFields, readAmount, readId, unpackFields } from "./codec.js";
import type { RefusalReason } from "./shopState.js";

export const idempotencyKeyPrefix = "k:";
/** Longest fingerprint kept: a method, a space and a path within the API's bounds. */
const fingerprintLengthMax = 1024;
const messageLengthMax = 2048;
/** No request draws more ids than this (a create draws one). */
const idsPerRecordMax = 4;
const refusalReasons: readonly RefusalReason[] = ["not-found", "bad-reference", "insufficient", "paid", "overflow", "rights-elsewhere"];

export interface IdempotencyRecord {
  readonly fingerprint: string;
  /** null: the request was done; else the refusal it was answered with. */
  readonly refusal: { readonly reason: RefusalReason; readonly message: string } | null;
  readonly ids: readonly string[];
  /** Wall-clock time at the recording replica, for expiry and the merge order. */
  readonly recordedAtMs: number;
  readonly actor: Actor;
}

export function encodeRecord(record: IdempotencyRecord): Uint8Array {
  const refusal = record.refusal === null ? [] : [record.refusal.reason, record.refusal.message];
  return packFields([record.fingerprint, refusal, [...record.ids], record.recordedAtMs, record.actor]);
}

export function decodeRecord(bytes: Uint8Array): IdempotencyRecord {
  const fields = unpackFields(bytes, 6);
  const [, fingerprint, refusal, ids, recordedAtMs, actor] = fields;
  return {
    fingerprint: readText(fingerprint, "fingerprint", fingerprintLengthMax),
    refusal: readRefusal(refusal),
    ids: readIds(ids),
    recordedAtMs: readAmount(recordedAtMs, "a time"),
    actor: readId(actor, "actor"),
  };
}

/** The record both replicas keep: the earlier one (then the smaller actor, then fingerprint): commutative, associative, idempotent. */
export function mergeRecords(a: IdempotencyRecord, b: IdempotencyRecord): IdempotencyRecord {
  if (a.recordedAtMs !== b.recordedAtMs) return a.recordedAtMs < b.recordedAtMs ? a : b;
  if (a.actor !== b.actor) return a.actor < b.actor ? a : b;
  if (a.fingerprint !== b.fingerprint) return a.fingerprint < b.fingerprint ? a : b;
  return encodedOrder(a) <= encodedOrder(b) ? a : b;
}

/** Ties of time, actor and fingerprint (one actor recording one key twice cannot happen): compare the bytes. */
function encodedOrder(record: IdempotencyRecord): string {
  return Buffer.from(encodeRecord(record)).toString("hex");
}

/** Free text of its own bound (ids and actors: readId). */
function readText(value: unknown, what: string, lengthMax: number): string {
  if (typeof value !== "string" || value.length === 0 || value.length > lengthMax)
    throw new DecodeError(`${what} must be a string of 1..${lengthMax} characters`);
  return value;
}

function readRefusal(value: unknown): IdempotencyRecord["refusal"] {
  if (!Array.isArray(value)) throw new DecodeError("a refusal must be a list");
  if (value.length === 0) return null;
  const [reason, message] = value as unknown[];
  if (value.length !== 2 || !refusalReasons.includes(reason as RefusalReason)) throw new DecodeError("a refusal must be [reason, message]");
  return { reason: reason as RefusalReason, message: readText(message, "refusal message", messageLengthMax) };
}

function readIds(value: unknown): string[] {
  if (!Array.isArray(value) || value.length > idsPerRecordMax) throw new DecodeError(`ids must be a list of at most ${idsPerRecordMax}`);
  return value.map((id) => readId(id, "id"));
}
