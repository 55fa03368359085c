// Idempotency records (crdt/idempotencyRecord.ts): the codec round-trips and refuses
// anything else with a DecodeError; the merge is a join (commutative, associative,
// idempotent), so replicas that recorded one key differently converge (G3).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DecodeError } from "../../crdt/codec.js";
import { type IdempotencyRecord, decodeRecord, encodeRecord, mergeRecords } from "../../crdt/idempotencyRecord.js";

const recordArb: fc.Arbitrary<IdempotencyRecord> = fc.record({
  fingerprint: fc.constantFrom("POST /payment/add_funds/u/5", "POST /stock/item/create/3", "POST /orders/checkout/o"),
  refusal: fc.option(
    fc.record({ reason: fc.constantFrom("insufficient" as const, "not-found" as const, "paid" as const), message: fc.string({ minLength: 1, maxLength: 20 }) }),
    { nil: null },
  ),
  ids: fc.array(fc.uuid(), { maxLength: 2 }),
  recordedAtMs: fc.integer({ min: 0, max: 5 }),
  actor: fc.constantFrom("r1/a", "r2/b", "r3/c"),
});

describe("idempotency records", () => {
  it("round-trip through the codec", () => {
    fc.assert(
      fc.property(recordArb, (record) => {
        expect(decodeRecord(encodeRecord(record))).toEqual(record);
      }),
      { numRuns: 300 },
    );
  });

  it("merge is commutative, associative and idempotent", () => {
    fc.assert(
      fc.property(recordArb, recordArb, recordArb, (a, b, c) => {
        expect(mergeRecords(a, b)).toEqual(mergeRecords(b, a));
        expect(mergeRecords(mergeRecords(a, b), c)).toEqual(mergeRecords(a, mergeRecords(b, c)));
        expect(mergeRecords(a, a)).toEqual(a);
      }),
      { numRuns: 1000 },
    );
  });

  it("refuse bytes that are not a record with a DecodeError, nothing else", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        try {
          decodeRecord(bytes);
        } catch (error) {
          expect(error).toBeInstanceOf(DecodeError);
        }
      }),
      { numRuns: 2000 },
    );
    const valid = encodeRecord({ fingerprint: "POST /x", refusal: null, ids: [], recordedAtMs: 1, actor: "r1/a" });
    expect(() => decodeRecord(valid.subarray(0, valid.length - 1))).toThrow(DecodeError);
  });
});
