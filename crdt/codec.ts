// Compact msgpackr encoding of each state, versioned by a leading format number.
// Decoding treats its input as untrusted (disk or peer): any shape, type or
// invariant that a correct replica could not have produced is a DecodeError.
import { type Actor, BoundedCounter } from "./boundedCounter.js";
import type { Generation } from "./generation.js";
import { ItemState } from "./itemState.js";
import { type OrderLine, OrderState } from "./orderState.js";
import { packr } from "./msgpack.js";
import { UserState } from "./userState.js";

const formatVersion = 1;
/** Longest id or actor accepted anywhere; the API enforces the same bound on ids. */
export const idLengthMax = 128;
/** Most lines one order may carry, so one state stays small. */
export const orderLinesMax = 1000;

export class DecodeError extends Error {}

type Flat = (string | number)[];

function flattenCounter(counter: BoundedCounter): [Flat, Flat, Flat] {
  const increments: Flat = [];
  for (const [actor, amount] of counter.increments) increments.push(actor, amount);
  const decrements: Flat = [];
  for (const [actor, amount] of counter.decrements) decrements.push(actor, amount);
  const transfers: Flat = [];
  for (const [from, row] of counter.transfers) for (const [to, amount] of row) transfers.push(from, to, amount);
  return [increments, decrements, transfers];
}

export function encodeItem(item: ItemState): Uint8Array {
  const { counter, actor } = item.generation;
  return packr.pack([formatVersion, counter, actor, item.price, ...flattenCounter(item.stock)]);
}

export function encodeUser(user: UserState): Uint8Array {
  const { counter, actor } = user.generation;
  return packr.pack([formatVersion, counter, actor, ...flattenCounter(user.credit)]);
}

export function encodeOrder(order: OrderState): Uint8Array {
  const { counter, actor } = order.generation;
  const lines: Flat = [];
  for (const [itemId, quantity] of order.lines) lines.push(itemId, quantity);
  return packr.pack([formatVersion, counter, actor, order.userId, lines, order.totalCost, order.version, ...flattenCounter(order.token)]);
}

export function decodeItem(bytes: Uint8Array): ItemState {
  const fields = unpackFields(bytes, 7);
  return new ItemState(readGeneration(fields), readAmount(fields[3], "price"), readCounter(fields, 4));
}

export function decodeUser(bytes: Uint8Array): UserState {
  const fields = unpackFields(bytes, 6);
  return new UserState(readGeneration(fields), readCounter(fields, 3));
}

export function decodeOrder(bytes: Uint8Array): OrderState {
  const fields = unpackFields(bytes, 10);
  const order = new OrderState(
    readGeneration(fields),
    readId(fields[3], "user id"),
    readLines(fields[4]),
    readAmount(fields[5], "total cost"),
    readAmount(fields[6], "version"),
    readCounter(fields, 7),
  );
  if (order.token.value() > 1 || order.token.value() < 0) throw new DecodeError("an order token's value must be 0 or 1");
  return order;
}

/** A record of `fields` after the format version, as every state is encoded. */
export function packFields(fields: readonly unknown[]): Uint8Array {
  return packr.pack([formatVersion, ...fields]);
}

/** The `count` fields (the format version first) of a record; a DecodeError if it is anything else. */
export function unpackFields(bytes: Uint8Array, count: number): unknown[] {
  let fields: unknown;
  try {
    fields = packr.unpack(bytes);
  } catch (error) {
    throw new DecodeError(`not msgpack: ${(error as Error).message}`);
  }
  if (!Array.isArray(fields) || fields.length !== count) throw new DecodeError(`expected an array of ${count} fields`);
  if (fields[0] !== formatVersion) {
    // Not String(fields[0]): a msgpackr record with a "toString" key would throw a TypeError.
    const version = typeof fields[0] === "number" ? String(fields[0]) : `of type ${typeof fields[0]}`;
    throw new DecodeError(`unknown format version ${version}`);
  }
  return fields;
}

function readGeneration(fields: unknown[]): Generation {
  const counter = readAmount(fields[1], "generation counter");
  const actor = fields[2];
  if (typeof actor !== "string" || actor.length > idLengthMax) throw new DecodeError("generation actor must be a short string");
  return { counter, actor };
}

function readCounter(fields: unknown[], start: number): BoundedCounter {
  const counter = new BoundedCounter();
  readPairs(fields[start], counter.increments, "increments");
  readPairs(fields[start + 1], counter.decrements, "decrements");
  const transfers = fields[start + 2];
  if (!Array.isArray(transfers) || transfers.length % 3 !== 0) throw new DecodeError("transfers must be triples");
  for (let index = 0; index < transfers.length; index += 3) {
    const from = readActor(transfers[index]);
    const to = readActor(transfers[index + 1]);
    let row = counter.transfers.get(from);
    if (row === undefined) {
      row = new Map();
      counter.transfers.set(from, row);
    }
    if (row.has(to)) throw new DecodeError(`transfer from ${from} to ${to} appears twice`);
    row.set(to, readAmount(transfers[index + 2], "transfer"));
  }
  const invalidity = counter.invalidity();
  if (invalidity !== null) throw new DecodeError(invalidity);
  return counter;
}

function readPairs(value: unknown, target: Map<Actor, number>, what: string): void {
  if (!Array.isArray(value) || value.length % 2 !== 0) throw new DecodeError(`${what} must be pairs`);
  for (let index = 0; index < value.length; index += 2) {
    const actor = readActor(value[index]);
    if (target.has(actor)) throw new DecodeError(`${what} of ${actor} appear twice`);
    target.set(actor, readAmount(value[index + 1], what));
  }
}

function readLines(value: unknown): OrderLine[] {
  if (!Array.isArray(value) || value.length % 2 !== 0 || value.length / 2 > orderLinesMax) {
    throw new DecodeError(`lines must be at most ${orderLinesMax} pairs`);
  }
  const lines: OrderLine[] = [];
  for (let index = 0; index < value.length; index += 2) {
    lines.push([readId(value[index], "item id"), readAmount(value[index + 1], "quantity")]);
  }
  return lines;
}

/**
 * Actors are few and appear in every state: one shared string per actor keeps
 * 100,000s of decoded states small and makes map lookups compare pointers.
 */
const internedActors = new Map<string, Actor>();
const internedActorsMax = 4096;

export function readActor(value: unknown): Actor {
  const actor = readId(value, "actor");
  const interned = internedActors.get(actor);
  if (interned !== undefined) return interned;
  if (internedActors.size < internedActorsMax) internedActors.set(actor, actor);
  return actor;
}

export function readId(value: unknown, what: string): string {
  if (typeof value !== "string" || value.length === 0 || value.length > idLengthMax) {
    throw new DecodeError(`${what} must be a string of 1..${idLengthMax} characters`);
  }
  return value;
}

export function readAmount(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new DecodeError(`${what} must be a safe non-negative integer`);
  }
  return value;
}
