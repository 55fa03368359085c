// The codec: every state round-trips exactly, and decode treats its input as
// untrusted (disk or peer). Anything a correct replica could not have written is a
// DecodeError, never another exception and never a state that would break G1 once
// merged (forged rights, negative amounts) or G4 (an order token worth two payments).
import fc from "fast-check";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { type Actor, BoundedCounter } from "../../crdt/boundedCounter.js";
import { DecodeError, decodeItem, decodeOrder, decodeUser, encodeItem, encodeOrder, encodeUser, idLengthMax, orderLinesMax } from "../../crdt/codec.js";
import type { Generation } from "../../crdt/generation.js";
import { ItemState } from "../../crdt/itemState.js";
import { OrderState } from "../../crdt/orderState.js";
import { UserState } from "../../crdt/userState.js";
import { type CounterOp, type OrderOp, applyCounterOp, applyOrderOp, counterOpArb, orderOpArb } from "./arbitraries.js";

/** Packs forged field lists exactly as the codec would (plain msgpack, no records). */
const plainPackr = new Packr({ useRecords: false, mapsAsObjects: false, moreTypes: false });
/** Packs with msgpackr's records and extra types: input no replica of ours writes, but a decoder may meet. */
const recordsPackr = new Packr({ useRecords: true, moreTypes: true });

// ---- round trips

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

const idArb: fc.Arbitrary<string> = fc.oneof(
  fc.string({ minLength: 1, maxLength: idLengthMax }),
  fc.string({ unit: "binary", minLength: 1, maxLength: idLengthMax / 2 }),
  fc.constantFrom("a", "b", "0", "x".repeat(idLengthMax)),
);
const generationArb: fc.Arbitrary<Generation> = fc.record({
  counter: fc.oneof(fc.nat({ max: 5 }), fc.maxSafeNat()),
  actor: fc.oneof(fc.constant(""), idArb),
});
const actorsArb = fc.tuple(idArb, idArb, idArb, idArb);

function rename(op: CounterOp, actors: readonly Actor[]): CounterOp {
  const actor = actors[op.actor.charCodeAt(0) - 97]!;
  if (op.kind !== "transfer") return { ...op, actor };
  return { ...op, actor, to: actors[op.to.charCodeAt(0) - 97]! };
}

const counterArb: fc.Arbitrary<BoundedCounter> = fc.tuple(actorsArb, fc.array(counterOpArb, { maxLength: 30 })).map(([actors, ops]) => {
  const counter = new BoundedCounter();
  for (const op of ops) applyCounterOp(counter, rename(op, actors));
  return counter;
});

const itemArb = fc
  .tuple(generationArb, fc.oneof(fc.nat({ max: 100 }), fc.maxSafeNat()), counterArb)
  .map(([generation, price, stock]) => new ItemState(generation, price, stock));

const userArb = fc.tuple(generationArb, counterArb).map(([generation, credit]) => new UserState(generation, credit));

const orderArb = fc
  .tuple(generationArb, idArb, actorsArb, fc.array(idArb, { minLength: 1, maxLength: 3 }), fc.array(orderOpArb, { maxLength: 20 }))
  .map(([generation, userId, actors, itemIds, ops]) => {
    const actorOf = (actor: Actor): Actor => actors[actor.charCodeAt(0) - 97]!;
    const order = OrderState.create(generation, userId, actors[0]);
    for (const op of ops) {
      const renamed: OrderOp =
        op.kind === "addLine"
          ? { ...op, actor: actorOf(op.actor), itemId: itemIds[op.itemId.charCodeAt(1) % itemIds.length]! }
          : op.kind === "passToken"
            ? { ...op, actor: actorOf(op.actor), to: actorOf(op.to) }
            : { ...op, actor: actorOf(op.actor) };
      applyOrderOp(order, renamed);
    }
    return order;
  });

describe("codec round trips", () => {
  it("an item decodes to a state equal to the original, and re-encodes to the same bytes", () => {
    fc.assert(
      fc.property(itemArb, (item) => {
        const bytes = encodeItem(item);
        const decoded = decodeItem(bytes);
        expect(decoded.equals(item)).toBe(true);
        expect(hex(encodeItem(decoded))).toBe(hex(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it("a user decodes to a state equal to the original, and re-encodes to the same bytes", () => {
    fc.assert(
      fc.property(userArb, (user) => {
        const bytes = encodeUser(user);
        const decoded = decodeUser(bytes);
        expect(decoded.equals(user)).toBe(true);
        expect(hex(encodeUser(decoded))).toBe(hex(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it("an order decodes to a state equal to the original (paid or not), and re-encodes to the same bytes", () => {
    fc.assert(
      fc.property(orderArb, (order) => {
        const bytes = encodeOrder(order);
        const decoded = decodeOrder(bytes);
        expect(decoded.equals(order)).toBe(true);
        expect(decoded.paid).toBe(order.paid);
        expect(decoded.lines).toEqual(order.lines);
        expect(hex(encodeOrder(decoded))).toBe(hex(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it("the generation of batch_init and of create (counter 0, empty actor) both survive", () => {
    const fresh = new UserState({ counter: 0, actor: "" });
    expect(decodeUser(encodeUser(fresh)).generation).toEqual({ counter: 0, actor: "" });
    const item = new ItemState({ counter: 7, actor: "r1" }, 3);
    expect(decodeItem(encodeItem(item)).generation).toEqual({ counter: 7, actor: "r1" });
  });
});

// ---- forged inputs

type Fields = unknown[];
type Path = readonly number[];

/** A correct item: a holds 5 - 1 - 2 = 2, b holds 1 + 2 = 3. */
const itemFields = (): Fields => [1, 2, "g", 10, ["a", 5, "b", 1], ["a", 1], ["a", "b", 2]];
/** A correct user: a holds 7 - 2 - 1 = 4, c holds 1. */
const userFields = (): Fields => [1, 0, "", ["a", 7], ["a", 2], ["a", "c", 1]];
/** A correct unpaid order whose token was made at a and handed to b. */
const orderFields = (): Fields => [1, 1, "g", "u1", ["i1", 2, "i2", 1], 25, 2, ["a", 1], [], ["a", "b", 1]];

interface Kind {
  readonly name: string;
  readonly fields: () => Fields;
  /** Decode, then check the state could have come from a correct history; throws what decode throws. */
  readonly decodeChecked: (bytes: Uint8Array) => void;
  readonly numericPaths: readonly Path[];
  /** The offset of the counter's three lists. */
  readonly counterAt: number;
}

function checkCounter(counter: BoundedCounter): void {
  expect(counter.invalidity()).toBeNull();
  for (const actor of counter.actors()) expect(actor.length).toBeGreaterThan(0);
  for (const actor of counter.actors()) expect(actor.length).toBeLessThanOrEqual(idLengthMax);
}

function checkAmount(amount: number): void {
  expect(Number.isSafeInteger(amount) && amount >= 0).toBe(true);
}

function checkGeneration(generation: Generation): void {
  checkAmount(generation.counter);
  expect(typeof generation.actor).toBe("string");
  expect(generation.actor.length).toBeLessThanOrEqual(idLengthMax);
}

const kinds: readonly Kind[] = [
  {
    name: "item",
    fields: itemFields,
    decodeChecked: (bytes) => {
      const item = decodeItem(bytes);
      checkGeneration(item.generation);
      checkAmount(item.price);
      checkCounter(item.stock);
    },
    numericPaths: [[1], [3], [4, 1], [4, 3], [5, 1], [6, 2]],
    counterAt: 4,
  },
  {
    name: "user",
    fields: userFields,
    decodeChecked: (bytes) => {
      const user = decodeUser(bytes);
      checkGeneration(user.generation);
      checkCounter(user.credit);
    },
    numericPaths: [[1], [3, 1], [4, 1], [5, 2]],
    counterAt: 3,
  },
  {
    name: "order",
    fields: orderFields,
    decodeChecked: (bytes) => {
      const order = decodeOrder(bytes);
      checkGeneration(order.generation);
      expect(order.userId.length).toBeGreaterThan(0);
      expect(order.userId.length).toBeLessThanOrEqual(idLengthMax);
      expect(order.lines.length).toBeLessThanOrEqual(orderLinesMax);
      for (const [itemId, quantity] of order.lines) {
        expect(itemId.length).toBeGreaterThan(0);
        expect(itemId.length).toBeLessThanOrEqual(idLengthMax);
        checkAmount(quantity);
      }
      checkAmount(order.totalCost);
      checkAmount(order.version);
      checkCounter(order.token);
      expect(order.token.value()).toBeLessThanOrEqual(1);
    },
    numericPaths: [[1], [4, 1], [4, 3], [5], [6], [7, 1], [9, 2]],
    counterAt: 7,
  },
];

function withValue(fields: Fields, path: Path, value: unknown): Fields {
  const copy = structuredClone(fields);
  let parent: unknown[] = copy;
  for (const index of path.slice(0, -1)) parent = parent[index] as unknown[];
  parent[path[path.length - 1]!] = value;
  return copy;
}

/** Replace every string equal to `from` anywhere in the fields by `to`. */
function renamed(fields: Fields, from: string, to: string): Fields {
  return fields.map((field) => (Array.isArray(field) ? renamed(field, from, to) : field === from ? to : field));
}

function counterFields(kind: Kind, increments: Fields, decrements: Fields, transfers: Fields): Fields {
  const fields = kind.fields();
  fields[kind.counterAt] = increments;
  fields[kind.counterAt + 1] = decrements;
  fields[kind.counterAt + 2] = transfers;
  return fields;
}

function pack(fields: unknown): Uint8Array {
  return plainPackr.pack(fields);
}

function expectRejected(kind: Kind, bytes: Uint8Array): void {
  expect(() => kind.decodeChecked(bytes), `${kind.name} ${hex(bytes)}`).toThrow(DecodeError);
}

function expectAccepted(kind: Kind, fields: Fields): void {
  expect(() => kind.decodeChecked(pack(fields))).not.toThrow();
}

describe.each(kinds)("decode of forged $name states", (kind) => {
  it("accepts the correct baseline (so each rejection below is for its own reason)", () => {
    expectAccepted(kind, kind.fields());
  });

  it("rejects every truncation of a correct state, and trailing bytes", () => {
    const bytes = pack(kind.fields());
    for (let length = 0; length < bytes.length; length++) expectRejected(kind, bytes.subarray(0, length));
    expectRejected(kind, Uint8Array.from([...bytes, 0]));
  });

  it("rejects wrong field counts, a wrong format version and a top level that is not a list", () => {
    const fields = kind.fields();
    expectRejected(kind, pack(fields.slice(0, -1)));
    expectRejected(kind, pack([...fields, 0]));
    expectRejected(kind, pack([]));
    for (const version of [0, 2, "1", null]) expectRejected(kind, pack(withValue(fields, [0], version)));
    for (const topLevel of [1, "state", null, new Map([[0, 1]]), true]) expectRejected(kind, pack(topLevel));
  });

  it("rejects negative, fractional, unsafe and non-numeric numbers in every numeric field", () => {
    const bad: unknown[] = [-1, -0.5, 1.5, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2n ** 60n, -1n, "5", null, true, [1]];
    for (const path of kind.numericPaths) {
      for (const value of bad) expectRejected(kind, pack(withValue(kind.fields(), path, value)));
    }
  });

  it(`rejects ids longer than ${idLengthMax} characters and empty ids, accepts ${idLengthMax}`, () => {
    const fields = kind.fields();
    const ids = ["a", "b", "c", "u1", "i1"].filter((id) => JSON.stringify(fields).includes(`"${id}"`));
    expect(ids.length).toBeGreaterThanOrEqual(2);
    for (const id of ids) {
      expectAccepted(kind, renamed(fields, id, "x".repeat(idLengthMax)));
      expectRejected(kind, pack(renamed(fields, id, "x".repeat(idLengthMax + 1))));
      expectRejected(kind, pack(renamed(fields, id, "")));
      expectRejected(kind, pack(renamed(fields, id, 7 as unknown as string)));
    }
    // The generation's actor may be empty (generation zero) but not over-long.
    expectAccepted(kind, withValue(fields, [2], ""));
    expectAccepted(kind, withValue(fields, [2], "g".repeat(idLengthMax)));
    expectRejected(kind, pack(withValue(fields, [2], "g".repeat(idLengthMax + 1))));
    expectRejected(kind, pack(withValue(fields, [2], 3)));
  });

  it("rejects self-transfers, even of zero", () => {
    expectRejected(kind, pack(counterFields(kind, ["a", 1], [], ["a", "a", 1])));
    expectRejected(kind, pack(counterFields(kind, ["a", 1], [], ["a", "a", 0])));
  });

  it("G1: rejects forged states in which an actor's rights are negative", () => {
    // a hands on more than it holds
    expectRejected(kind, pack(counterFields(kind, ["a", 1], [], ["a", "b", 2])));
    // a decrements more than it holds
    expectRejected(kind, pack(counterFields(kind, ["a", 1], ["a", 2], [])));
    // the value is a correct-looking 0, but b spent what it never held
    expectRejected(kind, pack(counterFields(kind, ["a", 1], ["b", 1], [])));
    // b hands on what it never received
    expectRejected(kind, pack(counterFields(kind, ["a", 1], [], ["b", "c", 1])));
    // and the same shapes with enough rights are fine
    expectAccepted(kind, counterFields(kind, ["a", 1], ["b", 1], ["a", "b", 1]));
  });

  it("rejects repeated entries and lists that are not pairs or triples", () => {
    expectRejected(kind, pack(counterFields(kind, ["a", 1, "a", 1], [], [])));
    expectRejected(kind, pack(counterFields(kind, ["a", 1], ["a", 0, "a", 0], [])));
    expectRejected(kind, pack(counterFields(kind, ["a", 1], [], ["a", "b", 0, "a", "b", 0])));
    expectRejected(kind, pack(counterFields(kind, ["a"], [], [])));
    expectRejected(kind, pack(counterFields(kind, ["a", 1], ["a"], [])));
    expectRejected(kind, pack(counterFields(kind, ["a", 1], [], ["a", "b"])));
    expectRejected(kind, pack(counterFields(kind, new Map([["a", 1]]) as unknown as Fields, [], [])));
  });

  it("rejects a msgpackr record whose key shadows toString (it must not escape as a TypeError)", () => {
    const fields: unknown[] = kind.fields();
    fields[0] = { toString: 1 };
    expectRejected(kind, recordsPackr.pack(fields));
    const numeric = kind.fields();
    numeric[1] = { valueOf: 1, toString: 2 };
    expectRejected(kind, recordsPackr.pack(numeric));
  });

  it("a rejected record definition does not change how later input decodes", () => {
    expectRejected(kind, recordsPackr.pack([{ a: 1 }, ...kind.fields().slice(1)]));
    // 64 is the first byte msgpackr would read as a record reference if a definition stuck.
    const withPrice = withValue(kind.fields(), [1], 64);
    expectAccepted(kind, withPrice);
  });
});

describe("decode of forged orders", () => {
  const order = kinds[2]!;

  it("G4: rejects a token worth more than one payment", () => {
    expectRejected(order, pack(counterFields(order, ["a", 2], [], [])));
    expectRejected(order, pack(counterFields(order, ["a", 1, "b", 1], [], [])));
    expectRejected(order, pack(counterFields(order, ["a", 3], ["a", 1], [])));
    expectAccepted(order, counterFields(order, ["a", 1], [], []));
    expectAccepted(order, counterFields(order, ["a", 1], ["b", 1], ["a", "b", 1]));
    expect(decodeOrder(pack(counterFields(order, ["a", 1], ["b", 1], ["a", "b", 1]))).paid).toBe(true);
  });

  it(`rejects more than ${orderLinesMax} lines, and lines that are not pairs`, () => {
    const lines = (count: number): Fields => Array.from({ length: count }, (_, index) => [`i${index}`, 1]).flat();
    expectAccepted(order, withValue(orderFields(), [4], lines(orderLinesMax)));
    expectRejected(order, pack(withValue(orderFields(), [4], lines(orderLinesMax + 1))));
    expectRejected(order, pack(withValue(orderFields(), [4], ["i1", 2, "i2"])));
    expectRejected(order, pack(withValue(orderFields(), [4], "i1")));
  });

  it("rejects bytes of one kind decoded as another", () => {
    const user = kinds[1]!;
    const item = kinds[0]!;
    expectRejected(order, pack(itemFields()));
    expectRejected(item, pack(userFields()));
    expectRejected(user, pack(orderFields()));
    expectRejected(item, pack(orderFields()));
  });
});

// ---- fuzzing: any bytes either decode to a valid state or throw DecodeError

/** Values that stress a decoder: numbers at edges, long and empty strings, bigints, nested lists, records. */
const fuzzValueArb: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.integer({ min: -3, max: 70 }),
    fc.constantFrom(-1, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER, Number.NaN, Number.POSITIVE_INFINITY, -0, 0, 1),
    fc.double(),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
    fc.constantFrom("", "a", "b", "c", "g", "u1", "i1", "x".repeat(idLengthMax), "x".repeat(idLengthMax + 1)),
    fc.string({ maxLength: 8 }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.constantFrom("toString", "valueOf", "constructor", "length", "a"), tie("value"), { maxKeys: 2 }),
  ),
})).value;

type Mutation =
  | { readonly kind: "replace"; readonly pathSeed: number; readonly value: unknown }
  | { readonly kind: "remove"; readonly pathSeed: number }
  | { readonly kind: "insert"; readonly pathSeed: number; readonly value: unknown };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("replace" as const), pathSeed: fc.nat(), value: fuzzValueArb }),
  fc.record({ kind: fc.constant("remove" as const), pathSeed: fc.nat() }),
  fc.record({ kind: fc.constant("insert" as const), pathSeed: fc.nat(), value: fuzzValueArb }),
);

/** Every path to an element of the fields, nested lists included. */
function allPaths(fields: Fields, prefix: Path = []): Path[] {
  const paths: Path[] = [];
  fields.forEach((field, index) => {
    const path = [...prefix, index];
    paths.push(path);
    if (Array.isArray(field)) paths.push(...allPaths(field as Fields, path));
  });
  return paths;
}

function mutate(fields: Fields, mutation: Mutation): Fields {
  const paths = allPaths(fields);
  const path = paths[mutation.pathSeed % paths.length]!;
  if (mutation.kind === "replace") return withValue(fields, path, mutation.value);
  const copy = structuredClone(fields);
  let parent: unknown[] = copy;
  for (const index of path.slice(0, -1)) parent = parent[index] as unknown[];
  if (mutation.kind === "remove") parent.splice(path[path.length - 1]!, 1);
  else parent.splice(path[path.length - 1]!, 0, mutation.value);
  return copy;
}

/** Decode, and fail the property on anything but a valid state or a DecodeError. */
function decodeValidOrDecodeError(kind: Kind, bytes: Uint8Array): "accepted" | "rejected" {
  try {
    kind.decodeChecked(bytes);
    return "accepted";
  } catch (error) {
    if (error instanceof DecodeError) return "rejected";
    throw new Error(`decode of ${kind.name} ${hex(bytes)} threw ${String(error)}`);
  }
}

/** The bytes to decode: random, a fuzzed field list (plain or with records), or a corrupted correct state. */
const bytesArb = (kind: Kind): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.tuple(fc.array(mutationArb, { minLength: 1, maxLength: 3 }), fc.boolean()).map(([mutations, withRecords]) => {
      let fields = kind.fields();
      for (const mutation of mutations) fields = mutate(fields, mutation);
      try {
        return withRecords ? recordsPackr.pack(fields) : plainPackr.pack(fields);
      } catch {
        return plainPackr.pack(kind.fields().slice(1)); // a value msgpackr cannot pack: send a wrong field count instead
      }
    }),
    fc.tuple(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 })).map(([edits]) => {
      const bytes = Uint8Array.from(pack(kind.fields()));
      for (const [position, byte] of edits) bytes[position % bytes.length] = byte;
      return bytes;
    }),
  );

describe.each(kinds)("decode of arbitrary input as a $name", (kind) => {
  it("returns a state whose invalidity() is null, or throws DecodeError (never anything else)", () => {
    const outcomes = { accepted: 0, rejected: 0 };
    fc.assert(
      fc.property(bytesArb(kind), (bytes) => {
        outcomes[decodeValidOrDecodeError(kind, bytes)] += 1;
      }),
      { numRuns: 2000 },
    );
    // Both outcomes must occur, or the fuzzing only ever exercised one side.
    expect(outcomes.accepted).toBeGreaterThan(20);
    expect(outcomes.rejected).toBeGreaterThan(1000);
  });
});
