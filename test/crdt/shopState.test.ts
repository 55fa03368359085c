// Unit tests of ShopState, the shop's operations on one replica: checkout is all or
// nothing and charges an order once (G2, G4), refusals change and report nothing
// (G2: "a 4xx changed nothing"), batch_init generations overwrite and are not undone
// by older states arriving later (G3), and onChange reports exactly what changed.
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { DecodeError } from "../../crdt/codec.js";
import { ForgedStateError, ShopState, type StateKey, isRefusal } from "../../crdt/shopState.js";

interface Harness {
  readonly shop: ShopState;
  /** Keys reported through onChange, in order; tests clear it between steps. */
  readonly changes: StateKey[];
}

function makeShop(actor = "r1"): Harness {
  const changes: StateKey[] = [];
  const shop = new ShopState(actor, (key) => changes.push(key));
  return { shop, changes };
}

/** Batch records, and every key's state (computed ones too: keeping one changes nothing). */
function allKeys(shop: ShopState): StateKey[] {
  const batchKeys = [...shop.keptKeys()].filter((key) => key.startsWith("b:"));
  const ids = (kind: string, entries: Iterable<[string, unknown]>) => [...entries].map(([id]) => `${kind}:${id}`);
  return [...batchKeys, ...ids("i", shop.itemEntries()), ...ids("u", shop.userEntries()), ...ids("o", shop.orderEntries())].sort();
}

/** Every state of the shop, encoded: equal fingerprints mean nothing changed. */
function fingerprint(shop: ShopState): Map<StateKey, string> {
  return new Map(allKeys(shop).map((key) => [key, Buffer.from(shop.encode(key)).toString("hex")]));
}

function stock(shop: ShopState, id: string): number {
  const item = shop.findItem(id);
  if (isRefusal(item)) throw new Error(item.message);
  return item.stock;
}

function credit(shop: ShopState, id: string): number {
  const user = shop.findUser(id);
  if (isRefusal(user)) throw new Error(user.message);
  return user.credit;
}

function paid(shop: ShopState, id: string): boolean {
  const order = shop.findOrder(id);
  if (isRefusal(order)) throw new Error(order.message);
  return order.paid;
}

/** Items A (price 10, stock 5) and B (price 3, stock 1), user U with 100, empty order O of U. */
function stockedShop(): Harness {
  const harness = makeShop();
  const { shop } = harness;
  shop.createItem("A", 10);
  expect(shop.addStock("A", 5)).toBeNull();
  shop.createItem("B", 3);
  expect(shop.addStock("B", 1)).toBeNull();
  shop.createUser("U");
  expect(shop.addFunds("U", 100)).toBeNull();
  expect(shop.createOrder("O", "U")).toBeNull();
  harness.changes.length = 0;
  return harness;
}

function add(shop: ShopState, orderId: string, itemId: string, quantity: number): void {
  expect(shop.addItem(orderId, itemId, quantity)).toBeNull();
}

/** Runs `operation`, expects it refused for `reason`, and expects no state changed and no change reported. */
function expectRefusedWithoutChange(harness: Harness, operation: () => unknown, reason: string): string {
  const before = fingerprint(harness.shop);
  harness.changes.length = 0;
  const result = operation();
  expect(result).toMatchObject({ reason });
  expect(harness.changes).toEqual([]);
  expect(fingerprint(harness.shop)).toEqual(before);
  return (result as { message: string }).message;
}

const sorted = (keys: readonly StateKey[]): StateKey[] => [...keys].sort();

describe("ShopState checkout", () => {
  it("takes every item's stock, the user's credit and the order token, and reports exactly those keys once each", () => {
    const harness = stockedShop();
    const { shop, changes } = harness;
    add(shop, "O", "A", 2);
    add(shop, "O", "B", 1);
    add(shop, "O", "A", 1);
    changes.length = 0;
    expect(shop.checkout("O")).toBeNull();
    expect(stock(shop, "A")).toBe(2);
    expect(stock(shop, "B")).toBe(0);
    expect(credit(shop, "U")).toBe(100 - 33);
    expect(paid(shop, "O")).toBe(true);
    expect(sorted(changes)).toEqual(["i:A", "i:B", "o:O", "u:U"]);
  });

  it("G2: is all or nothing when one item of several lacks stock, and names that item only", () => {
    const harness = stockedShop();
    add(harness.shop, "O", "A", 2);
    add(harness.shop, "O", "B", 3);
    const message = expectRefusedWithoutChange(harness, () => harness.shop.checkout("O"), "insufficient");
    expect(message).toContain("stock of item B (needs 3, has 1)");
    expect(message).not.toContain("item A");
    expect(message).not.toContain("credit");
    expect(paid(harness.shop, "O")).toBe(false);
  });

  it("G2: is all or nothing when credit is short, and names the credit", () => {
    const harness = stockedShop();
    const { shop } = harness;
    shop.createUser("P");
    expect(shop.addFunds("P", 12)).toBeNull();
    expect(shop.createOrder("Q", "P")).toBeNull();
    add(shop, "Q", "A", 1);
    add(shop, "Q", "B", 1);
    const message = expectRefusedWithoutChange(harness, () => shop.checkout("Q"), "insufficient");
    expect(message).toContain("credit of user P (needs 13, has 12)");
    expect(message).not.toContain("stock");
    expect(shop.addFunds("P", 1)).toBeNull();
    expect(shop.checkout("Q")).toBeNull();
    expect(credit(shop, "P")).toBe(0);
  });

  it("names every missing right when several are short", () => {
    const harness = stockedShop();
    const { shop } = harness;
    shop.createUser("P");
    expect(shop.createOrder("Q", "P")).toBeNull();
    add(shop, "Q", "A", 6);
    add(shop, "Q", "B", 2);
    const message = expectRefusedWithoutChange(harness, () => shop.checkout("Q"), "insufficient");
    expect(message).toContain("stock of item A (needs 6, has 5)");
    expect(message).toContain("stock of item B (needs 2, has 1)");
    expect(message).toContain("credit of user P (needs 66, has 0)");
  });

  it("sums the quantities of an item that appears on several lines", () => {
    const harness = stockedShop();
    const { shop, changes } = harness;
    add(shop, "O", "A", 3);
    add(shop, "O", "A", 3);
    // Each line alone (3) fits the stock of 5; together (6) they do not.
    const message = expectRefusedWithoutChange(harness, () => shop.checkout("O"), "insufficient");
    expect(message).toContain("stock of item A (needs 6, has 5)");
    expect(shop.addStock("A", 1)).toBeNull();
    changes.length = 0;
    expect(shop.checkout("O")).toBeNull();
    expect(stock(shop, "A")).toBe(0);
    expect(credit(shop, "U")).toBe(40);
    expect(sorted(changes)).toEqual(["i:A", "o:O", "u:U"]);
  });

  it("G4: is idempotent on a paid order: answered as done, no second charge, nothing reported", () => {
    const harness = stockedShop();
    const { shop, changes } = harness;
    add(shop, "O", "A", 1);
    expect(shop.checkout("O")).toBeNull();
    expect(shop.addFunds("U", 50)).toBeNull();
    expect(shop.addStock("A", 10)).toBeNull();
    const before = fingerprint(shop);
    changes.length = 0;
    expect(shop.checkout("O")).toBeNull();
    expect(shop.checkout("O")).toBeNull();
    expect(changes).toEqual([]);
    expect(fingerprint(shop)).toEqual(before);
    expect(credit(shop, "U")).toBe(140);
    expect(stock(shop, "A")).toBe(14);
  });

  it("an empty order checks out for nothing, once", () => {
    const { shop, changes } = stockedShop();
    expect(shop.checkout("O")).toBeNull();
    expect(paid(shop, "O")).toBe(true);
    expect(credit(shop, "U")).toBe(100);
    expect(sorted(changes)).toEqual(["o:O", "u:U"]);
  });

  it("refuses an unknown order, and an order whose token another replica holds", () => {
    const harness = stockedShop();
    const { shop } = harness;
    add(shop, "O", "A", 1);
    expectRefusedWithoutChange(harness, () => shop.checkout("nope"), "not-found");

    const other = makeShop("r2");
    for (const key of allKeys(shop)) other.shop.mergeEncoded(key, shop.encode(key));
    expect(other.shop.findOrder("O")).toMatchObject({ items: [["A", 1]], total_cost: 10 });
    expectRefusedWithoutChange(other, () => other.shop.checkout("O"), "rights-elsewhere");
    expectRefusedWithoutChange(other, () => other.shop.addItem("O", "A", 1), "rights-elsewhere");
    // What the replica must be handed: the order's token, and the stock and credit the first one holds.
    expect(other.shop.checkout("O")).toMatchObject({
      missing: [
        ["i:A", 1],
        ["u:U", 10],
        ["o:O", 1],
      ],
    });
    expect(other.shop.addItem("O", "A", 1)).toMatchObject({ missing: [["o:O", 1]] });
  });

  it("G4: a replica that learns the order was paid answers a retry as done, without charging", () => {
    const { shop } = stockedShop();
    add(shop, "O", "A", 2);
    const other = makeShop("r2");
    for (const key of allKeys(shop)) other.shop.mergeEncoded(key, shop.encode(key));
    // The other replica holds rights of its own: it could pay, if the token let it.
    expect(other.shop.addFunds("U", 100)).toBeNull();
    expect(other.shop.addStock("A", 10)).toBeNull();
    expect(shop.checkout("O")).toBeNull();
    for (const key of ["i:A", "u:U", "o:O"]) other.shop.mergeEncoded(key, shop.encode(key));
    other.changes.length = 0;
    expect(other.shop.checkout("O")).toBeNull();
    expect(other.changes).toEqual([]);
    expect(credit(other.shop, "U")).toBe(200 - 20);
    expect(stock(other.shop, "A")).toBe(15 - 2);
  });

  it("refuses an order whose lines name an item this replica does not know", () => {
    const harness = makeShop();
    const { shop } = harness;
    shop.batchInitUsers(1, 100);
    shop.batchInitOrders(1, 5, 1, 10, (n) => n - 1); // user 0, two of the items 0..4, none of which exists
    const message = expectRefusedWithoutChange(harness, () => shop.checkout("0"), "bad-reference");
    expect(message).toMatch(/item [0-4] of order 0 does not exist/);
  });
});

describe("ShopState: where new rights go (spreadActors)", () => {
  it("splits new stock over this replica and its peers; a new order's token stays here", () => {
    const { shop } = makeShop("r1");
    shop.spreadActors = ["r1", "r2", "r3"];
    shop.createItem("A", 1);
    expect(shop.addStock("A", 9)).toBeNull();
    expect(["r1", "r2", "r3"].map((actor) => shop.item("A")!.stock.rights(actor))).toEqual([3, 3, 3]);
    shop.createUser("U");
    expect(shop.createOrder("O", "U")).toBeNull();
    expect(shop.order("O")!.token.rights("r1")).toBe(1);
  });

  it("a leaving replica (not among spreadActors) keeps no new rights: stock, credit and a new order's token go to peers", () => {
    const { shop } = makeShop("r1");
    shop.spreadActors = ["r2", "r3"];
    shop.createItem("A", 1);
    expect(shop.addStock("A", 9)).toBeNull();
    shop.createUser("U");
    expect(shop.addFunds("U", 4)).toBeNull();
    expect(shop.createOrder("O", "U")).toBeNull();
    expect(shop.item("A")!.stock.rights("r1")).toBe(0);
    expect(shop.user("U")!.credit.rights("r1")).toBe(0);
    expect(shop.order("O")!.token.rights("r1")).toBe(0);
    expect(shop.order("O")!.token.rights("r2")).toBe(1);
    expect(stock(shop, "A")).toBe(9);
    expect(credit(shop, "U")).toBe(4);
  });
});

describe("ShopState addItem", () => {
  it("appends a line, adds its cost, bumps the version and reports the order only", () => {
    const { shop, changes } = stockedShop();
    expect(shop.addItem("O", "A", 2)).toBeNull();
    expect(shop.addItem("O", "B", 1)).toBeNull();
    expect(shop.findOrder("O")).toEqual({
      order_id: "O",
      paid: false,
      items: [
        ["A", 2],
        ["B", 1],
      ],
      user_id: "U",
      total_cost: 23,
    });
    expect(shop.order("O")!.version).toBe(2);
    expect(changes).toEqual(["o:O", "o:O"]);
  });

  it("is refused on a paid order, on an unknown item and on an unknown order, changing nothing", () => {
    const harness = stockedShop();
    const { shop } = harness;
    expectRefusedWithoutChange(harness, () => shop.addItem("O", "nope", 1), "bad-reference");
    expectRefusedWithoutChange(harness, () => shop.addItem("nope", "A", 1), "not-found");
    add(shop, "O", "A", 1);
    expect(shop.checkout("O")).toBeNull();
    const message = expectRefusedWithoutChange(harness, () => shop.addItem("O", "A", 1), "paid");
    expect(message).toContain("order O");
    expect(shop.findOrder("O")).toMatchObject({ items: [["A", 1]], total_cost: 10 });
  });

  it("refuses a total cost past the largest safe integer", () => {
    const harness = makeShop();
    const { shop } = harness;
    shop.createItem("X", Number.MAX_SAFE_INTEGER);
    shop.createUser("U");
    expect(shop.createOrder("O", "U")).toBeNull();
    add(shop, "O", "X", 1);
    expectRefusedWithoutChange(harness, () => shop.addItem("O", "X", 1), "overflow");
  });
});

describe("ShopState refusals change and report nothing (G2)", () => {
  it("for every refused operation", () => {
    const harness = stockedShop();
    const { shop } = harness;
    expectRefusedWithoutChange(harness, () => shop.subtractStock("A", 6), "insufficient");
    expectRefusedWithoutChange(harness, () => shop.subtractStock("nope", 1), "not-found");
    expectRefusedWithoutChange(harness, () => shop.addStock("nope", 1), "not-found");
    expectRefusedWithoutChange(harness, () => shop.addStock("A", Number.MAX_SAFE_INTEGER), "overflow");
    expectRefusedWithoutChange(harness, () => shop.pay("U", 101), "insufficient");
    expectRefusedWithoutChange(harness, () => shop.pay("nope", 1), "not-found");
    expectRefusedWithoutChange(harness, () => shop.addFunds("nope", 1), "not-found");
    expectRefusedWithoutChange(harness, () => shop.createOrder("Z", "nope"), "not-found");
    expect(shop.order("Z")).toBeUndefined();
    expectRefusedWithoutChange(harness, () => shop.findItem("nope"), "not-found");
  });

  it("and the accepted counterparts report their key once", () => {
    const { shop, changes } = stockedShop();
    expect(shop.subtractStock("A", 5)).toBeNull();
    expect(shop.pay("U", 100)).toBeNull();
    expect(shop.addStock("B", 2)).toBeNull();
    expect(shop.addFunds("U", 1)).toBeNull();
    expect(changes).toEqual(["i:A", "u:U", "i:B", "u:U"]);
    expect(stock(shop, "A")).toBe(0);
    expect(credit(shop, "U")).toBe(1);
  });
});

describe("ShopState: written states held as their encoding (settle)", () => {
  it("settles a state only if nothing changed it after its batch took it: a merge that came meanwhile stays", () => {
    const a = makeShop("r1");
    const b = makeShop("r2");
    a.shop.createItem("A", 1);
    expect(a.shop.addStock("A", 5)).toBeNull();
    const first = a.shop.encodeToWrite("i:A", undefined); // a batch takes it
    b.shop.mergeEncoded("i:A", first);
    b.shop.spreadActors = ["r2"];
    expect(b.shop.addStock("A", 3)).toBeNull();
    const newer = b.shop.encode("i:A");
    expect(a.shop.mergeEncoded("i:A", newer)).toBe(true); // arrives while that batch is written
    a.shop.settle([{ key: "i:A", bytes: first }]);
    expect(a.shop.findItem("A")).toEqual({ stock: 8, price: 1 });
    a.shop.settle([{ key: "i:A", bytes: a.shop.encodeToWrite("i:A", newer) }]); // the next batch
    expect(a.shop.findItem("A")).toEqual({ stock: 8, price: 1 });
    // Settled, it still changes as any state does.
    expect(a.shop.subtractStock("A", 5)).toBeNull();
    expect(a.shop.findItem("A")).toEqual({ stock: 3, price: 1 });
  });
});

describe("ShopState batch_init and generations (G3)", () => {
  it("batchInitItems overwrites earlier keys with a newer generation, and reports each key", () => {
    const { shop, changes } = makeShop();
    shop.createItem("0", 99);
    expect(shop.addStock("0", 7)).toBeNull();
    changes.length = 0;
    shop.batchInitItems(3, 50, 4);
    expect(changes).toEqual(["b:i"]); // one record, not a state per key
    expect(shop.findItem("0")).toEqual({ stock: 50, price: 4 });
    expect(shop.findItem("2")).toEqual({ stock: 50, price: 4 });
    const first = shop.item("0")!.generation;
    expect(first.counter).toBeGreaterThan(0);
    shop.batchInitItems(2, 9, 1);
    expect(shop.findItem("0")).toEqual({ stock: 9, price: 1 });
    expect(shop.findItem("1")).toEqual({ stock: 9, price: 1 });
    expect(shop.item("0")!.generation.counter).toBeGreaterThan(first.counter);
    // Keys past the new count are left as they were.
    expect(shop.findItem("2")).toEqual({ stock: 50, price: 4 });
  });

  it("batchInitUsers overwrites earlier keys with a newer generation", () => {
    const { shop, changes } = makeShop();
    shop.createUser("1");
    expect(shop.addFunds("1", 5)).toBeNull();
    shop.batchInitUsers(2, 30);
    expect(credit(shop, "1")).toBe(30);
    shop.batchInitUsers(2, 8);
    expect(credit(shop, "0")).toBe(8);
    expect(credit(shop, "1")).toBe(8);
    expect(changes.slice(-2)).toEqual(["b:u", "b:u"]);
  });

  it("batchInitOrders overwrites earlier keys with unpaid two-line orders held by this replica", () => {
    const { shop } = makeShop();
    shop.createUser("U");
    expect(shop.createOrder("0", "U")).toBeNull();
    shop.batchInitOrders(200, 5, 3, 7, (n) => n - 12345);
    const orders = Array.from({ length: 200 }, (_, index) => shop.findOrder(String(index)));
    for (const order of orders) {
      expect(order).toMatchObject({ paid: false, total_cost: 14 });
      if (isRefusal(order)) continue;
      expect(order.items.map(([, quantity]) => quantity)).toEqual([1, 1]);
      expect(order.items.every(([item]) => ["0", "1", "2", "3", "4"].includes(item))).toBe(true);
    }
    // Lines are drawn, not fixed: every item and user appears.
    expect(new Set(orders.flatMap((order) => (isRefusal(order) ? [] : order.items.map(([item]) => item)))).size).toBe(5);
    expect(new Set(orders.map((order) => (isRefusal(order) ? "" : order.user_id)))).toEqual(new Set(["0", "1", "2"]));
    expect(shop.order("0")!.holdsToken("r1")).toBe(true);
    expect(shop.order("0")!.generation.counter).toBeGreaterThan(0);
    // Any replica that has the record computes the same orders.
    const peer = makeShop("r2");
    peer.shop.mergeEncoded("b:o", shop.encode("b:o"));
    for (const [index, order] of orders.entries()) expect(peer.shop.findOrder(String(index))).toEqual(order);
  });

  it("mergeEncoded of an older generation does not overwrite a newer one; a newer one overwrites", () => {
    const a = makeShop("ra");
    const b = makeShop("rb");
    a.shop.batchInitItems(1, 10, 5);
    const older = a.shop.encode("i:0");
    b.shop.batchInitItems(1, 20, 6);
    b.shop.batchInitItems(1, 30, 7); // generation 2 at rb: newer than generation 1 at ra
    a.shop.mergeEncoded("i:0", b.shop.encode("i:0"));
    expect(a.shop.findItem("0")).toEqual({ stock: 30, price: 7 });
    a.shop.mergeEncoded("i:0", older);
    expect(a.shop.findItem("0")).toEqual({ stock: 30, price: 7 });
    b.shop.mergeEncoded("i:0", older);
    expect(b.shop.findItem("0")).toEqual({ stock: 30, price: 7 });
    expect(a.shop.encode("i:0")).toEqual(b.shop.encode("i:0"));
  });

  it("a state made by create (generation zero) does not undo a batch_init", () => {
    const creator = makeShop("ra");
    creator.shop.createUser("0");
    expect(creator.shop.addFunds("0", 1000)).toBeNull();
    const { shop } = makeShop("rb");
    shop.batchInitUsers(1, 3);
    shop.mergeEncoded("u:0", creator.shop.encode("u:0"));
    expect(credit(shop, "0")).toBe(3);
  });

  it("states of one generation merge: increments made at two replicas both count", () => {
    const a = makeShop("ra");
    a.shop.batchInitItems(1, 10, 5);
    const b = makeShop("rb");
    b.shop.mergeEncoded("i:0", a.shop.encode("i:0"));
    expect(b.shop.addStock("0", 4)).toBeNull();
    expect(a.shop.subtractStock("0", 3)).toBeNull();
    a.shop.mergeEncoded("i:0", b.shop.encode("i:0"));
    b.shop.mergeEncoded("i:0", a.shop.encode("i:0"));
    expect(stock(a.shop, "0")).toBe(11);
    expect(stock(b.shop, "0")).toBe(11);
  });

  it("a replica's next batch_init is newer than any generation it has received (Lamport)", () => {
    const a = makeShop("ra");
    const b = makeShop("rb");
    for (let round = 0; round < 3; round++) b.shop.batchInitUsers(1, 1);
    a.shop.mergeEncoded("u:0", b.shop.encode("u:0"));
    a.shop.batchInitUsers(1, 77);
    b.shop.mergeEncoded("u:0", a.shop.encode("u:0"));
    expect(credit(b.shop, "0")).toBe(77);
    expect(a.shop.user("0")!.generation.counter).toBe(4);
  });

  it("mergeEncoded reports the key it merged, and rejects an unknown kind of key", () => {
    const source = stockedShop();
    const target = makeShop("r2");
    target.shop.mergeEncoded("u:U", source.shop.encode("u:U"));
    expect(target.changes).toEqual(["u:U"]);
    expect(credit(target.shop, "U")).toBe(100);
    expect(() => target.shop.mergeEncoded("x:U", source.shop.encode("u:U"))).toThrow(RangeError);
    expect(target.changes).toEqual(["u:U"]);
  });

  it("G1: mergeEncoded of forged or mismatched bytes throws DecodeError and changes and reports nothing", () => {
    const harness = stockedShop();
    const { shop } = harness;
    // A user whose actor "f" decremented 50 it never held.
    const forged = new Packr({ useRecords: false, mapsAsObjects: false }).pack([1, 0, "", ["r1", 100], ["f", 50], []]);
    const before = fingerprint(shop);
    harness.changes.length = 0;
    expect(() => shop.mergeEncoded("u:U", forged)).toThrow(DecodeError);
    expect(() => shop.mergeEncoded("u:U", shop.encode("i:A"))).toThrow(DecodeError);
    expect(() => shop.mergeEncoded("o:O", shop.encode("o:O").subarray(0, 5))).toThrow(DecodeError);
    expect(harness.changes).toEqual([]);
    expect(fingerprint(shop)).toEqual(before);
    expect(credit(shop, "U")).toBe(100);
  });

  it("G1/G2: a peer's state holding more of this replica's own row than it wrote is refused as forged", () => {
    const { shop } = stockedShop();
    const peer = makeShop("r2");
    for (const key of allKeys(shop)) peer.shop.mergeEncoded(key, shop.encode(key));
    // The peer raises r1's own increment of user U's credit: only r1 may write that row.
    const forgedUser = peer.shop.user("U")!;
    forgedUser.credit.increments.set("r1", forgedUser.credit.increments.get("r1")! + 1000);
    expect(() => shop.mergeEncoded("u:U", peer.shop.encode("u:U"))).toThrow(ForgedStateError);
    // A decrement or a hand-over by r1 that r1 never made is refused the same way.
    const forgedItem = peer.shop.item("A")!;
    forgedItem.stock.transfers.set("r1", new Map([["r2", 3]]));
    expect(() => shop.mergeEncoded("i:A", peer.shop.encode("i:A"))).toThrow(ForgedStateError);
    expect(credit(shop, "U")).toBe(100);
    // The same rows read back from r1's own disk are its own, not forged.
    const restarted = makeShop("r1");
    for (const key of allKeys(shop)) restarted.shop.mergeEncoded(key, shop.encode(key), "disk");
    expect(credit(restarted.shop, "U")).toBe(100);
  });

  it("G1: two states that are each valid but not together (a peer that told two histories of its own row) are not both taken", () => {
    const harness = stockedShop();
    const { shop } = harness;
    // Peer "p" was handed 4 of r1's stock of A; it then claims to have handed those 4 to r2, and, to r1, to r3.
    expect(shop.item("A")!.stock.transfer("r1", "p", 4)).toBeNull();
    const granted = shop.encode("i:A");
    const handedTo = (to: string): Uint8Array => {
      const peer = makeShop("p");
      peer.shop.mergeEncoded("i:A", granted);
      peer.shop.item("A")!.stock.transfers.set("p", new Map([[to, 4]]));
      return peer.shop.encode("i:A");
    };
    expect(shop.mergeEncoded("i:A", handedTo("r2"))).toBe(true);
    const before = fingerprint(shop);
    harness.changes.length = 0;
    expect(() => shop.mergeEncoded("i:A", handedTo("r3"))).toThrow(/merged with ours would be invalid: rights of p are negative/);
    expect(harness.changes).toEqual([]);
    expect(fingerprint(shop)).toEqual(before);
    // What this replica keeps, it would load again.
    const restarted = makeShop("r1");
    expect(() => restarted.shop.mergeEncoded("i:A", shop.encode("i:A"), "disk")).not.toThrow();
    expect(stock(restarted.shop, "A")).toBe(5);
  });

  it("G4: a peer cannot change an item's price, nor the lines of an order whose token this replica holds", () => {
    const { shop } = stockedShop();
    add(shop, "O", "A", 1);
    const peer = makeShop("r2");
    for (const key of allKeys(shop)) peer.shop.mergeEncoded(key, shop.encode(key));
    peer.shop.item("A")!.price = 1000;
    expect(() => shop.mergeEncoded("i:A", peer.shop.encode("i:A"))).toThrow(ForgedStateError);
    const order = peer.shop.order("O")!;
    order.lines = [];
    order.totalCost = 0;
    order.version += 1;
    expect(() => shop.mergeEncoded("o:O", peer.shop.encode("o:O"))).toThrow(ForgedStateError);
    expect(shop.findItem("A")).toMatchObject({ price: 10 });
    expect(shop.findOrder("O")).toMatchObject({ total_cost: 10, items: [["A", 1]] });
    // Once the token has moved on, newer lines from its holder are legitimate.
    expect(shop.grantRights("r2", [["o:O", 1]], (_key, rights) => rights)).toEqual([["o:O", 1]]);
    const holder = makeShop("r2");
    for (const key of allKeys(shop)) holder.shop.mergeEncoded(key, shop.encode(key));
    expect(holder.shop.addItem("O", "B", 1)).toBeNull();
    expect(shop.mergeEncoded("o:O", holder.shop.encode("o:O"))).toBe(true);
    expect(shop.findOrder("O")).toMatchObject({ total_cost: 13 });
  });

  it("a batch_init made later by the wall clock wins, even where the earlier one was never seen", () => {
    const early = makeShop("rb");
    const late = makeShop("ra");
    early.shop.batchInitUsers(1, 5, 1_000);
    late.shop.batchInitUsers(1, 7, 2_000);
    early.shop.mergeEncoded("u:0", late.shop.encode("u:0"));
    late.shop.mergeEncoded("u:0", early.shop.encode("u:0"));
    expect(credit(early.shop, "0")).toBe(7);
    expect(credit(late.shop, "0")).toBe(7);
  });
});

describe("ShopState against a peer that holds the cluster secret (issue 8)", () => {
  const r1 = "r1/a";
  const r2 = "r2/b";
  /** Members r1..r4; generations up to 1,000,000 + the skew. */
  const members = { actorAdmitted: (actor: string) => /^r[1-4]\//.test(actor), generationCounterMax: () => 1_000_000 };
  const userBytes = (fields: unknown[]): Uint8Array => new Packr({ useRecords: false, mapsAsObjects: false, moreTypes: false }).pack(fields);

  it("G1/G2: new rows of an actor that is not a member's are refused; rows already held, and any incarnation of a member, are taken", () => {
    const { shop } = makeShop(r1);
    shop.peerStatePolicy = members;
    shop.createUser("U");
    expect(shop.addFunds("U", 5)).toBeNull();
    // ghost2/x "adds" a million and hands it to r1: value from nobody.
    const forged = userBytes([1, 0, "", ["r1/a", 5, "ghost2/x", 1_000_000], [], ["ghost2/x", "r1/a", 1_000_000]]);
    expect(() => shop.mergeEncoded("u:U", forged)).toThrow(ForgedStateError);
    expect(() => shop.mergeEncoded("u:U", forged)).toThrow(/ghost2\/x, which is not a member's actor/);
    expect(shop.pay("U", 999_999)).toMatchObject({ reason: "insufficient" });
    expect(credit(shop, "U")).toBe(5);
    // A new incarnation of a member (back on an empty disk), relayed by another peer: taken.
    const relayed = userBytes([1, 0, "", ["r1/a", 5, "r3/new", 7], [], []]);
    expect(shop.mergeEncoded("u:U", relayed)).toBe(true);
    expect(credit(shop, "U")).toBe(12);
    // Rows of an actor this replica holds already (admitted when they came): a relay of them merges.
    const open = makeShop("r2/b");
    open.shop.mergeEncoded("u:U", userBytes([1, 0, "", ["old/gone", 3], [], []]));
    open.shop.peerStatePolicy = members;
    expect(open.shop.mergeEncoded("u:U", userBytes([1, 0, "", ["old/gone", 3, "r1/a", 1], [], []]))).toBe(true);
    expect(() => open.shop.mergeEncoded("u:U", userBytes([1, 0, "", ["old/gone", 4, "r1/a", 1], [], []]))).toThrow(ForgedStateError);
  });

  it("a peer's generation counter past our clock plus the skew is refused (and 2^50 without a clock); none past a safe integer is ever minted", () => {
    const { shop } = makeShop(r1);
    const poisoned = userBytes([1, Number.MAX_SAFE_INTEGER, "r4/rogue", ["r4/rogue", 1], [], []]);
    expect(() => shop.mergeEncoded("u:0", poisoned)).toThrow(/generation counter 9007199254740991, past 1125899906842624/);
    shop.peerStatePolicy = members;
    expect(() => shop.mergeEncoded("u:0", userBytes([1, 1_000_001, "r4/rogue", ["r4/rogue", 1], [], []]))).toThrow(ForgedStateError);
    expect(shop.mergeEncoded("u:0", userBytes([1, 1_000_000, "r4/rogue", ["r4/rogue", 1], [], []]))).toBe(true);
    expect(shop.batchInitUsers(1, 5, 0)).toBeNull();
    expect(shop.user("0")!.generation.counter).toBe(1_000_001);
    // A state from before this check, on this replica's own disk: the next batch_init is refused, not minted unsafe.
    const damaged = makeShop(r1);
    damaged.shop.mergeEncoded("u:0", poisoned, "disk");
    expect(damaged.shop.batchInitUsers(1, 5, Date.now())).toMatchObject({ reason: "overflow" });
    expect(damaged.shop.batchInitItems(1, 5, 1, Date.now())).toMatchObject({ reason: "overflow" });
    expect(damaged.shop.batchInitOrders(1, 1, 1, 1, () => 0, Date.now())).toMatchObject({ reason: "overflow" });
    expect(damaged.shop.user("0")!.generation.counter).toBe(Number.MAX_SAFE_INTEGER);
  });

  it("a grant gives what is asked plus at most 2^32, so a huge balance moved back and forth does not fill a row in a few moves", () => {
    const a = makeShop(r1);
    const b = makeShop(r2);
    a.shop.createUser("U");
    a.shop.spreadActors = [r1, r2];
    expect(a.shop.addFunds("U", 2e15)).toBeNull();
    b.shop.mergeEncoded("u:U", a.shop.encode("u:U"));
    const all = (_key: string, rights: number) => rights;
    for (let move = 0; move < 50; move++) {
      const [donor, taker] = move % 2 === 0 ? [a, b] : [b, a];
      const granted = donor.shop.grantRights(taker.shop.actor, [["u:U", 1]], all);
      // Before: half of the spare, 5e14 and up; a row passed 2^53 within 20 moves.
      expect(granted).toEqual([["u:U", 2 ** 32]]);
      taker.shop.mergeEncoded("u:U", donor.shop.encode("u:U"));
    }
    const counter = a.shop.user("U")!.credit;
    expect(counter.transfers.get(r1)!.get(r2)).toBe(1e15 + 25 * 2 ** 32);
    expect(counter.value()).toBe(2e15);
    // A large ask still gets what it asks.
    expect(a.shop.grantRights(r2, [["u:U", 1e15]], all)).toEqual([["u:U", 1e15]]);
  });

  it("add_funds with a row that has no room left keeps those rights here instead of failing (no 500); balances stay exact past 2^53 of history", () => {
    const { shop } = makeShop(r1);
    const full = Number.MAX_SAFE_INTEGER - 2;
    // r1 and r2 each added 100, then handed `full` to each other: r1's row to r2 has room for 2 more.
    shop.mergeEncoded("u:U", userBytes([1, 0, "", [r1, 100, r2, 100], [], [r1, r2, full, r2, r1, full]]), "disk");
    shop.spreadActors = [r1, r2];
    // A state read is a copy once written (crdt/keptStates.ts): read it again after each change.
    const credit = () => shop.user("U")!.credit;
    expect([credit().rights(r1), credit().rights(r2), credit().value()]).toEqual([100, 100, 200]);
    expect(shop.addFunds("U", 10)).toBeNull();
    expect([credit().rights(r1), credit().rights(r2), credit().value()]).toEqual([108, 102, 210]);
    expect(credit().transfers.get(r1)!.get(r2)).toBe(Number.MAX_SAFE_INTEGER);
    expect(shop.addFunds("U", 10)).toBeNull();
    expect([credit().rights(r1), credit().rights(r2), credit().value()]).toEqual([118, 102, 220]);
    expect(shop.grantRights(r2, [["u:U", 50]], (_key, rights) => rights)).toEqual([]);
    expect(shop.pay("U", 118)).toBeNull();
    expect(credit().invalidity()).toBeNull();
  });
});
