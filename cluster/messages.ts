// Messages between replicas, after a link is authenticated. Encoding lives here,
// apart from the logic that uses it: tiny, versioned, validated on decode. A frame
// that does not decode to a valid message is a protocol error: the link is closed.
import type { Actor } from "../crdt/boundedCounter.js";
import { DecodeError, idLengthMax, readAmount, readId } from "../crdt/codec.js";
import { packr } from "../crdt/msgpack.js";
import { type Need, type RefusalReason, type StateKey, refusalReasons } from "../crdt/shopState.js";

export const protocolVersion = 2;
/** Largest frame a replica sends or accepts (ws maxPayload). */
export const bytesPerFrameMax = 8 * 1024 * 1024;
/** Most states in one frame; bigger batches are split. */
export const statesPerFrameMax = 4096;
/** Most needs in one rights request. */
export const needsPerRequestMax = 1024;
/** Most peers a sync request can say it is caught up with. */
export const knownPeersPerRequestMax = 64;

export type StateEntry = readonly [key: StateKey, state: Uint8Array];
/** A replica incarnation and one of its batch numbers. */
export type ActorBatch = readonly [actor: Actor, batch: number];

export type PeerMessage =
  /**
   * Durable states. Live: the sender's own changes in its batch `batch` (on every
   * frame of it), with `seq` = `batch` on the last frame only (an ack covers the
   * whole batch). Anti-entropy: `seq` 0 and no `batch`.
   */
  | { readonly type: "states"; readonly seq: number; readonly entries: readonly StateEntry[]; readonly batch?: number }
  /** The receiver has durably merged the sender's batches up to `seq`. */
  | { readonly type: "ack"; readonly seq: number }
  /**
   * Anti-entropy: send me every state you changed after your batch `cursor`; with
   * `mergedOnly`, only those you last changed by merging (your own changes reached
   * me live on this same link). `known`: I have merged these replicas' own changes
   * up to these batches, so a state you hold as one of them sent it, I have.
   */
  | { readonly type: "syncRequest"; readonly cursor: number; readonly mergedOnly: boolean; readonly known?: readonly ActorBatch[] }
  /** Anti-entropy: all states changed after the cursor were sent (before this); you now have my batches up to `upTo`. */
  | { readonly type: "syncDone"; readonly upTo: number }
  /** Please hand me these rights (stock, credit or an order token, by state key). */
  | { readonly type: "rightsRequest"; readonly requestId: number; readonly needs: readonly Need[] }
  /** What was handed over; the states carrying the transfers were sent before this. */
  | { readonly type: "rightsGrant"; readonly requestId: number; readonly granted: readonly Need[] }
  /** An Automerge sync message of the membership document. */
  | { readonly type: "membership"; readonly sync: Uint8Array }
  /**
   * To a replica that leaves: the sender sees it draining (or, with `retired`,
   * retired) and moves no more rights to it; every right it did move there is in
   * its batches up to `upTo`.
   */
  | { readonly type: "drainSeen"; readonly upTo: number; readonly retired: boolean }
  /** Please check out this order: you hold its token (the sender does not). */
  | { readonly type: "checkoutForward"; readonly requestId: number; readonly orderId: string }
  /**
   * How a forwarded checkout ended: paid (`refusal` null; the states that pay it were
   * sent before this, and are durable and acked by the sender's up peers) or refused
   * (nothing changed).
   */
  | { readonly type: "checkoutAnswer"; readonly requestId: number; readonly refusal: ForwardedRefusal | null };

/** A refusal as it crosses a link: what the client is told. */
export interface ForwardedRefusal {
  readonly reason: RefusalReason;
  readonly message: string;
}

/** Longest refusal message a checkout answer carries. */
export const refusalMessageLengthMax = 2048;

export class ProtocolError extends Error {}

/** Each message type's fields on the wire (version and type code included); its index is its type code. */
const fieldCounts = {
  states: 5,
  ack: 3,
  syncRequest: 5,
  syncDone: 3,
  rightsRequest: 4,
  rightsGrant: 4,
  membership: 3,
  drainSeen: 4,
  checkoutForward: 4,
  checkoutAnswer: 4,
} as const satisfies Record<PeerMessage["type"], number>;
const typeCodes = Object.keys(fieldCounts) as readonly PeerMessage["type"][];

export function encodeMessage(message: PeerMessage): Uint8Array {
  const code = typeCodes.indexOf(message.type);
  switch (message.type) {
    case "states":
      return packr.pack([protocolVersion, code, message.seq, message.entries.flat(), message.batch ?? 0]);
    case "ack":
      return packr.pack([protocolVersion, code, message.seq]);
    case "syncRequest":
      return packr.pack([protocolVersion, code, message.cursor, message.mergedOnly, (message.known ?? []).flat()]);
    case "syncDone":
      return packr.pack([protocolVersion, code, message.upTo]);
    case "rightsRequest":
      return packr.pack([protocolVersion, code, message.requestId, message.needs.flat()]);
    case "rightsGrant":
      return packr.pack([protocolVersion, code, message.requestId, message.granted.flat()]);
    case "membership":
      return packr.pack([protocolVersion, code, message.sync]);
    case "drainSeen":
      return packr.pack([protocolVersion, code, message.upTo, message.retired]);
    case "checkoutForward":
      return packr.pack([protocolVersion, code, message.requestId, message.orderId]);
    case "checkoutAnswer":
      return packr.pack([protocolVersion, code, message.requestId, message.refusal === null ? null : [message.refusal.reason, message.refusal.message]]);
  }
}

/**
 * A frame is one or more encoded messages back to back (a link sends what it has
 * queued in one frame per turn of the event loop); all valid, or a ProtocolError.
 */
export function decodeFrame(bytes: Uint8Array): PeerMessage[] {
  let values: unknown[];
  try {
    values = packr.unpackMultiple(bytes) as unknown[];
  } catch (error) {
    throw new ProtocolError(`frame is not msgpack: ${(error as Error).message}`);
  }
  if (!Array.isArray(values) || values.length === 0) throw new ProtocolError("frame holds no message");
  return asProtocolError(() => values.map(readMessage));
}

/** Fields are read with the crdt readers: what they refuse is a protocol error of the link. */
export function asProtocolError<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof DecodeError) throw new ProtocolError(error.message);
    throw error;
  }
}

function readMessage(fields: unknown): PeerMessage {
  if (!Array.isArray(fields) || fields.length < 3) throw new ProtocolError("frame must be an array of at least 3 fields");
  if (fields[0] !== protocolVersion) throw new ProtocolError("unknown protocol version");
  const type = typeof fields[1] === "number" ? typeCodes[fields[1]] : undefined;
  if (type === undefined || fields.length !== fieldCounts[type]) throw new ProtocolError("unknown message type or wrong field count");
  switch (type) {
    case "states": {
      const batch = readCount(fields[4]);
      return { type, seq: readCount(fields[2]), entries: readEntries(fields[3]), ...(batch > 0 ? { batch } : {}) };
    }
    case "ack":
      return { type, seq: readCount(fields[2]) };
    case "syncRequest": {
      if (typeof fields[3] !== "boolean") throw new ProtocolError("mergedOnly must be a boolean");
      const known = readKnown(fields[4]);
      return { type, cursor: readCount(fields[2]), mergedOnly: fields[3], ...(known.length > 0 ? { known } : {}) };
    }
    case "syncDone":
      return { type, upTo: readCount(fields[2]) };
    case "rightsRequest":
      return { type, requestId: readCount(fields[2]), needs: readNeeds(fields[3]) };
    case "rightsGrant":
      return { type, requestId: readCount(fields[2]), granted: readNeeds(fields[3]) };
    case "membership":
      if (!(fields[2] instanceof Uint8Array)) throw new ProtocolError("membership sync must be bytes");
      return { type, sync: fields[2] };
    case "drainSeen":
      if (typeof fields[3] !== "boolean") throw new ProtocolError("retired must be a boolean");
      return { type, upTo: readCount(fields[2]), retired: fields[3] };
    case "checkoutForward":
      return { type, requestId: readCount(fields[2]), orderId: readId(fields[3], "an order id") };
    case "checkoutAnswer":
      return { type, requestId: readCount(fields[2]), refusal: readForwardedRefusal(fields[3]) };
  }
}

function readForwardedRefusal(value: unknown): ForwardedRefusal | null {
  if (value === null) return null;
  if (!Array.isArray(value) || value.length !== 2) throw new ProtocolError("a checkout answer's refusal must be null or [reason, message]");
  const [reason, message] = value as unknown[];
  const known = refusalReasons.find((candidate) => candidate === reason);
  if (known === undefined) throw new ProtocolError("unknown refusal reason");
  if (typeof message !== "string" || message.length > refusalMessageLengthMax) {
    throw new ProtocolError(`a refusal message must be a string of at most ${refusalMessageLengthMax} characters`);
  }
  return { reason: known, message };
}

function readCount(value: unknown): number {
  return readAmount(value, "a count");
}

/** A state: an item, user or order (`counters`), or also a batch_init, idempotency or release record. */
function readKey(value: unknown, counters = false): StateKey {
  if (typeof value !== "string" || !(counters ? /^[iuo]:/ : /^[iuobkr]:/).test(value) || value.length < 3 || value.length > idLengthMax + 2) {
    throw new ProtocolError(`a state key must be ${counters ? "i:, u: or o:" : "i:, u:, o:, b:, k: or r:"} followed by an id`);
  }
  return value;
}

function readEntries(value: unknown): StateEntry[] {
  return readPairs(value, statesPerFrameMax, "states", "key/state", (key, state) => {
    if (!(state instanceof Uint8Array)) throw new ProtocolError("a state must be bytes");
    return [readKey(key), state];
  });
}

function readKnown(value: unknown): ActorBatch[] {
  return readPairs(value, knownPeersPerRequestMax, "known", "actor/batch", (actor, batch) => [readId(actor, "an actor"), readCount(batch)]);
}

function readNeeds(value: unknown): Need[] {
  return readPairs(value, needsPerRequestMax, "needs", "key/amount", (key, amount) => [readKey(key, true), readCount(amount)]);
}

/** A flat list [a0, b0, a1, b1, ...] of at most `pairsMax` pairs, each read by `read`. */
function readPairs<T>(value: unknown, pairsMax: number, what: string, pair: string, read: (first: unknown, second: unknown) => T): T[] {
  if (!Array.isArray(value) || value.length % 2 !== 0 || value.length / 2 > pairsMax) {
    throw new ProtocolError(`${what} must be at most ${pairsMax} ${pair} pairs`);
  }
  const pairs: T[] = [];
  for (let index = 0; index < value.length; index += 2) pairs.push(read(value[index], value[index + 1]));
  return pairs;
}
