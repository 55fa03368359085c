// The store of idempotency records forgets them after their window, and the oldest
// first past its bound, so it stays small; a record from a peer past the window is
// not taken in again; two records of one key merge to the same one everywhere.
import { describe, expect, it } from "vitest";
import { encodeRecord } from "../../crdt/idempotencyRecord.js";
import { IdempotencyStore, type RequestGuard, isRecordable } from "../../node/idempotency.js";

function setUp(recordsMax = 10) {
  let nowMs = 1_000;
  const marked: string[] = [];
  const store = new IdempotencyStore({ actor: "r1/a", nowMs: () => nowMs, markChanged: (key) => marked.push(key), windowMs: 100, recordsMax });
  const guard = (key: string): RequestGuard => ({ key, fingerprint: `POST /${key}`, replay: undefined, idsReplayed: 0, drawnIds: [] });
  return { store, marked, guard, advance: (ms: number) => (nowMs += ms) };
}

describe("the idempotency store", () => {
  it("keeps outcomes and lasting refusals, never one that may go away by itself (rights elsewhere, a leaving replica)", () => {
    expect(isRecordable(null)).toBe(true);
    expect(isRecordable({ reason: "insufficient", message: "not enough stock" })).toBe(true);
    expect(isRecordable({ reason: "rights-elsewhere", message: "held by other replicas" })).toBe(false);
    expect(isRecordable({ reason: "leaving", message: "this replica is leaving" })).toBe(false);
  });

  it("forgets records past the window, on disk too", () => {
    const { store, marked, guard, advance } = setUp();
    store.record(guard("a"), null);
    advance(60);
    store.record(guard("b"), null);
    expect(marked).toEqual(["k:a", "k:b"]);
    advance(50);
    expect(store.lookup("a")).toBeUndefined();
    expect(store.lookup("b")?.fingerprint).toBe("POST /b");
    expect(store.expire()).toEqual(["k:a"]);
    expect(store.size).toBe(1);
  });

  it("keeps at most its bound, dropping the oldest", () => {
    const { store, guard } = setUp(3);
    for (const key of ["a", "b", "c", "d", "e"]) store.record(guard(key), null);
    expect(store.expire()).toEqual(["k:a", "k:b"]);
    expect(["c", "d", "e"].map((key) => store.lookup(key)?.fingerprint)).toEqual(["POST /c", "POST /d", "POST /e"]);
  });

  it("merges a peer's record of the same key to the earlier one, and ignores one past the window", () => {
    const { store, guard } = setUp();
    store.record(guard("a"), null);
    const earlier = { fingerprint: "POST /other", refusal: null, ids: [], recordedAtMs: 999, actor: "r2/b" };
    expect(store.mergeEncoded("k:a", encodeRecord(earlier))).toBe(true);
    expect(store.lookup("a")?.fingerprint).toBe("POST /other");
    expect(store.mergeEncoded("k:a", encodeRecord({ ...earlier, recordedAtMs: 1_000, fingerprint: "POST /a" }))).toBe(false);
    expect(store.mergeEncoded("k:old", encodeRecord({ ...earlier, recordedAtMs: 100 }))).toBe(false);
    expect(store.lookup("old")).toBeUndefined();
  });
});
