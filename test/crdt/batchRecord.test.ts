// batch_init records (crdt/batchRecord.ts): their merge is a join (union, then the
// records no key reads any more dropped), a key reads the newest record covering it,
// decoding treats bytes as untrusted, and a peer's record is checked as a state is.
import fc from "fast-check";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { type BatchRecord, BatchRecords, batchRecordsMax, decodeBatchRecords, encodeBatchRecords } from "../../crdt/batchRecord.js";
import { DecodeError } from "../../crdt/codec.js";
import { ForgedStateError, ShopState } from "../../crdt/shopState.js";

const makers = ["r1/a", "r2/b", "r3/c"];

/** A record of kind "i"; equal generations carry equal contents, as they do between correct replicas. */
const recordArb: fc.Arbitrary<BatchRecord> = fc
  .record({ counter: fc.integer({ min: 1, max: 12 }), maker: fc.constantFrom(...makers) })
  .map(({ counter, maker }) => ({
    generation: { counter, actor: maker },
    count: ((counter * 37 + makers.indexOf(maker) * 11) % 60) + 1, // a function of the generation
    spreadActors: makers,
    amount: counter,
    price: 2,
    itemCount: 0,
    userCount: 0,
    seed: 0,
  }));
const recordsArb = fc.array(recordArb, { maxLength: 8 });

function merged(...lists: BatchRecord[][]): BatchRecords {
  const records = new BatchRecords("i");
  for (const list of lists) records.merge(list);
  return records;
}

const describeAll = (records: BatchRecords) => records.all.map((record) => `${record.generation.counter}/${record.generation.actor}:${record.count}`);

describe("BatchRecords", () => {
  it("merge is commutative, associative and idempotent", () => {
    fc.assert(
      fc.property(recordsArb, recordsArb, recordsArb, (a, b, c) => {
        expect(describeAll(merged(a, b))).toEqual(describeAll(merged(b, a)));
        expect(describeAll(merged(a, b, c))).toEqual(describeAll(merged(a, [...b, ...c])));
        expect(describeAll(merged(a, a))).toEqual(describeAll(merged(a)));
      }),
    );
  });

  it("a key reads the newest record that covers it, as a search of every record would find", () => {
    fc.assert(
      fc.property(recordsArb, fc.nat({ max: 120 }), (list, index) => {
        const records = merged(list);
        const newest = [...list]
          .filter((record) => record.count > index)
          .sort((x, y) => y.generation.counter - x.generation.counter || (y.generation.actor < x.generation.actor ? -1 : 1))[0];
        expect(records.recordFor(String(index))?.generation).toEqual(newest?.generation);
        // Only the canonical decimal form names a key.
        expect(records.recordFor(`0${index}`)).toBeUndefined();
        expect(records.recordFor(`${index}.0`)).toBeUndefined();
      }),
    );
  });

  it("refuses a record that contradicts ours of the same generation, and changes nothing", () => {
    const records = merged([
      { generation: { counter: 1, actor: "r1/a" }, count: 5, spreadActors: makers, amount: 3, price: 1, itemCount: 0, userCount: 0, seed: 0 },
    ]);
    const before = describeAll(records);
    expect(() => records.merge([{ ...records.all[0]!, amount: 4 }])).toThrow(DecodeError);
    expect(describeAll(records)).toEqual(before);
  });

  it("keeps at most batchRecordsMax records: one more is a DecodeError (a batch_init, an overflow refusal); one of the largest n replaces them all", () => {
    const many = Array.from({ length: batchRecordsMax }, (_, index) => ({
      generation: { counter: batchRecordsMax - index, actor: "r1/a" },
      count: index + 2,
      spreadActors: makers,
      amount: 1,
      price: 1,
      itemCount: 0,
      userCount: 0,
      seed: 0,
    }));
    const records = merged(many);
    expect(records.all.length).toBe(batchRecordsMax);
    expect(() => records.merge([{ ...many[0]!, generation: { counter: 0, actor: "r0" }, count: batchRecordsMax + 2 }])).toThrow(DecodeError);
    const shop = new ShopState("r1/a", () => {});
    shop.mergeEncoded("b:i", encodeBatchRecords(records), "disk");
    // A newer record of n keys drops every record of n keys or fewer: only one under all of them has no room.
    expect(shop.batchInitItems(1, 1, 1)?.reason).toBe("overflow");
    expect(shop.batchInitItems(batchRecordsMax + 1, 1, 1)).toBeNull();
    expect(shop.batches.i.all.length).toBe(1);
  });
});

describe("batch records codec", () => {
  it("round-trips, and any other bytes are a DecodeError, never another exception", () => {
    fc.assert(
      fc.property(recordsArb, (list) => {
        const records = merged(list);
        expect(decodeBatchRecords("i", encodeBatchRecords(records))).toEqual(records.all);
      }),
    );
    const packr = new Packr({ useRecords: false, mapsAsObjects: false, moreTypes: false });
    const valid = [1, 0, "r1/a", 5, ["r1/a"], 3, 2, 0, 0, 0];
    const forged: unknown[] = [
      [1, "i", [[1, "r1/a", 5, [], 3, 2, 0, 0, 0]]], // spread over nobody
      [1, "i", [[1, "r1/a", 5, ["r1/a", "r1/a"], 3, 2, 0, 0, 0]]], // twice the same actor
      [1, "i", [[1, "r1/a", 2_000_000, ["r1/a"], 3, 2, 0, 0, 0]]], // past batchCountMax
      [1, "i", [[1, "r1/a", 5, ["r1/a"], -3, 2, 0, 0, 0]]], // negative amount
      [1, "i", [[1, "r1/a", 5, ["r1/a"], 3, 2, 4, 4, 9]]], // order fields on items
      [1, "o", [[1, "r1/a", 5, ["r1/a"], 0, 2, 0, 3, 9]]], // orders over no items (and kind o read as i)
      [1, "i", [valid.slice(1, 9)]], // 8 fields
      [1, "i", "records"],
      [2, "i", []],
    ];
    for (const fields of forged) expect(() => decodeBatchRecords("i", packr.pack(fields)), JSON.stringify(fields)).toThrow(DecodeError);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decodeBatchRecords("i", bytes);
        } catch (error) {
          expect(error).toBeInstanceOf(DecodeError);
        }
      }),
    );
  });
});

describe("a peer's batch record", () => {
  const shopOf = (actor: string) => {
    const shop = new ShopState(actor, () => {});
    shop.spreadActors = makers;
    return shop;
  };

  it("is refused when it claims to be the receiver's own, comes from a released or unadmitted actor, or runs ahead of the clock", () => {
    const maker = shopOf("r2/b");
    maker.batchInitItems(10, 5, 1, 1_000);
    const bytes = maker.encode("b:i");
    const forgedOwn = shopOf("r2/b");
    expect(() => forgedOwn.mergeEncoded("b:i", bytes)).toThrow(ForgedStateError);
    const releasing = shopOf("r1/a");
    releasing.peerStatePolicy = { actorAdmitted: () => true, generationCounterMax: () => 2 ** 50, released: (actor) => actor === "r2/b" };
    expect(() => releasing.mergeEncoded("b:i", bytes)).toThrow(ForgedStateError);
    const strict = shopOf("r1/a");
    strict.peerStatePolicy = { actorAdmitted: (actor) => actor !== "r2/b", generationCounterMax: () => 2 ** 50 };
    expect(() => strict.mergeEncoded("b:i", bytes)).toThrow(ForgedStateError);
    const behind = shopOf("r1/a");
    behind.peerStatePolicy = { actorAdmitted: () => true, generationCounterMax: () => 999 };
    expect(() => behind.mergeEncoded("b:i", bytes)).toThrow(ForgedStateError);
    for (const shop of [forgedOwn, releasing, strict, behind]) expect(shop.findItem("0")).toMatchObject({ reason: "not-found" });
    const receiver = shopOf("r1/a");
    expect(receiver.mergeEncoded("b:i", bytes)).toBe(true);
    expect(receiver.findItem("9")).toEqual({ stock: 5, price: 1 });
  });

  it("of the receiver's own, already answered by a newer record of its own, is taken silently (a peer had not heard of the newer one)", () => {
    const own = shopOf("r1/a");
    own.batchInitItems(3, 5, 1);
    const older = own.encode("b:i");
    own.batchInitItems(3, 7, 1);
    expect(own.mergeEncoded("b:i", older)).toBe(false);
    expect(own.findItem("2")).toEqual({ stock: 7, price: 1 });
  });
});
