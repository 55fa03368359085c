// A written state is not held in memory: the replica reads it back from LevelDB
// when it is next read (crdt/keptStates.ts, node/storedStates.ts). Each test
// changes a record under the shop's feet: a state held in memory would not show it.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Level } from "level";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type StateKey, ShopState } from "../../crdt/shopState.js";
import { writtenStatesIn } from "../../node/storedStates.js";

let folder: string;
let db: Level<string, Uint8Array>;

beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), "written-states-"));
  db = new Level<string, Uint8Array>(folder, { keyEncoding: "utf8", valueEncoding: "view" });
  await db.open();
});

afterEach(async () => {
  await db.close();
  await rm(folder, { recursive: true, force: true });
});

/** What group commit does with changed keys: encode, write, then settle what did not change since. */
async function writeBatch(shop: ShopState, keys: readonly StateKey[]): Promise<Map<StateKey, Uint8Array>> {
  const written = keys.map((key) => ({ key, bytes: shop.encodeToWrite(key, undefined) }));
  const batch = db.batch();
  for (const { key, bytes } of written) batch.put(key, bytes);
  await batch.write({ sync: true });
  shop.settle(written);
  return new Map(written.map(({ key, bytes }) => [key, bytes]));
}

function shopOnDatabase(): { shop: ShopState; changed: Set<StateKey> } {
  const changed = new Set<StateKey>();
  return { shop: new ShopState("r1", (key) => changed.add(key), writtenStatesIn(db)), changed };
}

describe("written states, read back from LevelDB", () => {
  it("a settled state is read from its record; once changed again it is held until its next batch", async () => {
    const { shop } = shopOnDatabase();
    shop.createItem("A", 3);
    expect(shop.addStock("A", 10)).toBeNull();
    const written = await writeBatch(shop, ["i:A"]);
    expect(shop.findItem("A")).toEqual({ stock: 10, price: 3 });

    // The same item with 5 more units, written under the shop's feet: it reads the record.
    const other = new ShopState("r1", () => {});
    other.mergeEncoded("i:A", written.get("i:A")!, "disk");
    expect(other.addStock("A", 5)).toBeNull();
    await db.put("i:A", other.encode("i:A"), { sync: true });
    expect(shop.findItem("A")).toEqual({ stock: 15, price: 3 });

    // Changed again, it is held decoded: the record no longer decides what it reads.
    expect(shop.subtractStock("A", 4)).toBeNull();
    await db.put("i:A", written.get("i:A")!, { sync: true });
    expect(shop.findItem("A")).toEqual({ stock: 11, price: 3 });
    await writeBatch(shop, ["i:A"]);
    expect(shop.findItem("A")).toEqual({ stock: 11, price: 3 });
  });

  it("a repeated or refused checkout keeps none of the written states it read", async () => {
    const { shop, changed } = shopOnDatabase();
    shop.createItem("A", 5);
    expect(shop.addStock("A", 10)).toBeNull();
    shop.createUser("U");
    expect(shop.addFunds("U", 12)).toBeNull();
    for (const order of ["paid", "short"]) expect(shop.createOrder(order, "U")).toBeNull();
    expect(shop.addItem("paid", "A", 2)).toBeNull();
    expect(shop.addItem("short", "A", 1)).toBeNull();
    expect(shop.addItem("short", "A", 1)).toBeNull();
    const beforeCheckout = await writeBatch(shop, [...changed]);
    changed.clear();

    expect(shop.checkout("paid")).toBeNull();
    expect([...changed].sort()).toEqual(["i:A", "o:paid", "u:U"]);
    await writeBatch(shop, [...changed]);
    changed.clear();
    expect(shop.checkout("paid")).toBeNull(); // paid already: done again, nothing changes
    expect(shop.checkout("short")).toMatchObject({ reason: "insufficient" }); // 10 asked, 2 left
    expect(changed.size).toBe(0);

    // Old records put back: the shop reads them, so it held none of the states the checkouts read.
    for (const key of ["o:paid", "u:U", "i:A"]) await db.put(key, beforeCheckout.get(key)!, { sync: true });
    expect(shop.findOrder("paid")).toMatchObject({ paid: false });
    expect(shop.findUser("U")).toEqual({ user_id: "U", credit: 12 });
    expect(shop.findItem("A")).toEqual({ stock: 10, price: 5 });
  });

  it("a settled state whose record is gone is an error that names it, not a state that vanished", async () => {
    const { shop } = shopOnDatabase();
    shop.createUser("U");
    await writeBatch(shop, ["u:U"]);
    await db.del("u:U");
    expect(() => shop.findUser("U")).toThrow("state u:U was written, and is not where it was written");
  });
});
