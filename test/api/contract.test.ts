// The HTTP contract of API.md, route by route, against a real replica process:
// status codes, content types, exact body shapes, and that every refusal (4xx)
// changes nothing. Bad input is a 400 with a message and never a 5xx (G1, G2, G4).
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HttpAnswer, type ReplicaProcess, ReplicaFleet, jsonOf } from "../support/replicaProcess.js";
import { type OrderView, ShopClient } from "../support/shopClient.js";

const max = Number.MAX_SAFE_INTEGER;

const fleet = new ReplicaFleet();
let shop: ShopClient;

beforeAll(async () => {
  shop = new ShopClient(await fleet.start());
});
afterAll(() => fleet.cleanup());

/** A refusal: this status, JSON, and exactly `{"error": "<non-empty message>"}`. */
function expectError(answer: HttpAnswer, status: number): string {
  expect(answer.status, answer.text).toBe(status);
  expect(answer.contentType).toMatch(/^application\/json/);
  const body = jsonOf(answer);
  expect(body).toEqual({ error: expect.any(String) });
  const message = (body as { error: string }).error;
  expect(message.length).toBeGreaterThan(0);
  return message;
}

/** A JSON success: 200, application/json, and the parsed body. */
function expectJson(answer: HttpAnswer): unknown {
  expect(answer.status, answer.text).toBe(200);
  expect(answer.contentType).toMatch(/^application\/json/);
  return jsonOf(answer);
}

/** A mutation's success: 200 with a short non-empty body. */
function expectDone(answer: HttpAnswer): void {
  expect(answer.status, answer.text).toBe(200);
  expect(answer.text.length).toBeGreaterThan(0);
}

describe("stock", () => {
  it("create answers {item_id} as JSON; the item starts with stock 0 at its price", async () => {
    const answer = await shop.post("/stock/item/create/7");
    const body = expectJson(answer);
    expect(body).toEqual({ item_id: expect.any(String) });
    const itemId = (body as { item_id: string }).item_id;
    expect(itemId.length).toBeGreaterThan(0);
    const found = await shop.get(`/stock/find/${itemId}`);
    expect(expectJson(found)).toEqual({ stock: 0, price: 7 });
  });

  it("create makes a new id every time, and price 0 is allowed", async () => {
    const ids = await Promise.all([shop.createItem(0), shop.createItem(0), shop.createItem(0)]);
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) expect(await shop.item(id)).toEqual({ stock: 0, price: 0 });
  });

  it("add raises the stock by exactly the amount, visible to the next find", async () => {
    const itemId = await shop.createItem(3);
    expectDone(await shop.post(`/stock/add/${itemId}/5`));
    expect(await shop.item(itemId)).toEqual({ stock: 5, price: 3 });
    expectDone(await shop.post(`/stock/add/${itemId}/0`));
    expectDone(await shop.post(`/stock/add/${itemId}/12`));
    expect(await shop.item(itemId)).toEqual({ stock: 17, price: 3 });
  });

  it("subtract lowers the stock, down to exactly 0", async () => {
    const itemId = await shop.stockedItem(3, 10);
    expectDone(await shop.post(`/stock/subtract/${itemId}/4`));
    expect(await shop.item(itemId)).toEqual({ stock: 6, price: 3 });
    expectDone(await shop.post(`/stock/subtract/${itemId}/6`));
    expect(await shop.item(itemId)).toEqual({ stock: 0, price: 3 });
  });

  it("subtract below 0 is a 400 and changes nothing", async () => {
    const itemId = await shop.stockedItem(3, 10);
    expect(expectError(await shop.post(`/stock/subtract/${itemId}/11`), 400)).toMatch(/stock/);
    expect(await shop.item(itemId)).toEqual({ stock: 10, price: 3 });
    expectError(await shop.post(`/stock/subtract/${itemId}/${max}`), 400);
    expect(await shop.item(itemId)).toEqual({ stock: 10, price: 3 });
  });

  it("an unknown item is a 404 on find, add and subtract", async () => {
    expectError(await shop.get("/stock/find/no-such-item"), 404);
    expectError(await shop.post("/stock/add/no-such-item/1"), 404);
    expectError(await shop.post("/stock/subtract/no-such-item/1"), 404);
    expectError(await shop.get("/stock/find/no-such-item"), 404);
  });
});

describe("payment", () => {
  it("create_user answers {user_id} as JSON; the user starts with credit 0", async () => {
    const body = expectJson(await shop.post("/payment/create_user"));
    expect(body).toEqual({ user_id: expect.any(String) });
    const userId = (body as { user_id: string }).user_id;
    expect(userId.length).toBeGreaterThan(0);
    expect(expectJson(await shop.get(`/payment/find_user/${userId}`))).toEqual({ user_id: userId, credit: 0 });
    expect(await shop.createUser()).not.toBe(userId);
  });

  it("add_funds and pay move the credit by exactly the amount, down to exactly 0", async () => {
    const userId = await shop.createUser();
    expectDone(await shop.post(`/payment/add_funds/${userId}/100`));
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 100 });
    expectDone(await shop.post(`/payment/pay/${userId}/30`));
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 70 });
    expectDone(await shop.post(`/payment/pay/${userId}/0`));
    expectDone(await shop.post(`/payment/pay/${userId}/70`));
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 0 });
  });

  it("pay beyond the credit is a 400 and changes nothing", async () => {
    const userId = await shop.fundedUser(50);
    expect(expectError(await shop.post(`/payment/pay/${userId}/51`), 400)).toMatch(/credit/);
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 50 });
    expectError(await shop.post(`/payment/pay/${userId}/${max}`), 400);
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 50 });
  });

  it("an unknown user is a 404 on find_user, add_funds and pay", async () => {
    expectError(await shop.get("/payment/find_user/no-such-user"), 404);
    expectError(await shop.post("/payment/add_funds/no-such-user/1"), 404);
    expectError(await shop.post("/payment/pay/no-such-user/1"), 404);
    expectError(await shop.get("/payment/find_user/no-such-user"), 404);
  });
});

describe("orders", () => {
  it("create answers {order_id} as JSON; the order starts empty and unpaid", async () => {
    const userId = await shop.createUser();
    const body = expectJson(await shop.post(`/orders/create/${userId}`));
    expect(body).toEqual({ order_id: expect.any(String) });
    const orderId = (body as { order_id: string }).order_id;
    expect(orderId.length).toBeGreaterThan(0);
    const found = expectJson(await shop.get(`/orders/find/${orderId}`));
    expect(found).toEqual({ order_id: orderId, paid: false, items: [], user_id: userId, total_cost: 0 });
    expect(await shop.createOrder(userId)).not.toBe(orderId);
  });

  it("create for an unknown user is a 404; find, addItem and checkout of an unknown order are 404", async () => {
    const itemId = await shop.createItem(1);
    expectError(await shop.post("/orders/create/no-such-user"), 404);
    expectError(await shop.get("/orders/find/no-such-order"), 404);
    expectError(await shop.post(`/orders/addItem/no-such-order/${itemId}/1`), 404);
    expectError(await shop.post("/orders/checkout/no-such-order"), 404);
  });

  it("addItem appends the line and adds quantity * price to total_cost", async () => {
    const userId = await shop.createUser();
    const cheap = await shop.createItem(3);
    const dear = await shop.createItem(40);
    const orderId = await shop.createOrder(userId);
    expectDone(await shop.post(`/orders/addItem/${orderId}/${cheap}/2`));
    expect(await shop.order(orderId)).toEqual({ order_id: orderId, paid: false, items: [[cheap, 2]], user_id: userId, total_cost: 6 });
    expectDone(await shop.post(`/orders/addItem/${orderId}/${dear}/1`));
    expectDone(await shop.post(`/orders/addItem/${orderId}/${cheap}/5`));
    const expected: OrderView = {
      order_id: orderId,
      paid: false,
      items: [
        [cheap, 2],
        [dear, 1],
        [cheap, 5],
      ],
      user_id: userId,
      total_cost: 6 + 40 + 15,
    };
    expect(await shop.order(orderId)).toEqual(expected);
  });

  it("addItem of an unknown item is a 400 and changes nothing", async () => {
    const userId = await shop.createUser();
    const itemId = await shop.createItem(3);
    const orderId = await shop.orderWith(userId, [[itemId, 1]]);
    const before = await shop.order(orderId);
    expect(expectError(await shop.post(`/orders/addItem/${orderId}/no-such-item/1`), 400)).toMatch(/no-such-item/);
    expect(await shop.order(orderId)).toEqual(before);
  });

  it("addItem to a paid order is a 400 and changes nothing", async () => {
    const userId = await shop.fundedUser(10);
    const itemId = await shop.stockedItem(2, 5);
    const orderId = await shop.orderWith(userId, [[itemId, 1]]);
    expectDone(await shop.post(`/orders/checkout/${orderId}`));
    const paid = await shop.order(orderId);
    expect(paid.paid).toBe(true);
    expectError(await shop.post(`/orders/addItem/${orderId}/${itemId}/1`), 400);
    expect(await shop.order(orderId)).toEqual(paid);
    expect(await shop.item(itemId)).toEqual({ stock: 4, price: 2 });
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 8 });
  });
});

describe("checkout", () => {
  it("takes each item's summed quantity and the total_cost, and marks the order paid", async () => {
    const userId = await shop.fundedUser(1000);
    const first = await shop.stockedItem(10, 20);
    const second = await shop.stockedItem(7, 3);
    const orderId = await shop.orderWith(userId, [
      [first, 2],
      [second, 3],
      [first, 4],
    ]);
    expectDone(await shop.post(`/orders/checkout/${orderId}`));
    expect(await shop.item(first)).toEqual({ stock: 14, price: 10 });
    expect(await shop.item(second)).toEqual({ stock: 0, price: 7 });
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 1000 - 81 });
    const order = await shop.order(orderId);
    expect(order).toEqual({
      order_id: orderId,
      paid: true,
      items: [
        [first, 2],
        [second, 3],
        [first, 4],
      ],
      user_id: userId,
      total_cost: 81,
    });
  });

  it("of an empty order succeeds and charges nothing", async () => {
    const userId = await shop.fundedUser(5);
    const orderId = await shop.createOrder(userId);
    expectDone(await shop.post(`/orders/checkout/${orderId}`));
    expect((await shop.order(orderId)).paid).toBe(true);
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 5 });
  });

  it("with too little stock of one item is a 400 naming it, and changes nothing", async () => {
    const userId = await shop.fundedUser(1000);
    const plenty = await shop.stockedItem(5, 50);
    const scarce = await shop.stockedItem(5, 2);
    const orderId = await shop.orderWith(userId, [
      [plenty, 4],
      [scarce, 3],
    ]);
    const message = expectError(await shop.post(`/orders/checkout/${orderId}`), 400);
    expect(message).toContain(scarce);
    expect(await shop.item(plenty)).toEqual({ stock: 50, price: 5 });
    expect(await shop.item(scarce)).toEqual({ stock: 2, price: 5 });
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 1000 });
    expect((await shop.order(orderId)).paid).toBe(false);
    // The refusal spent nothing: with the stock there, the same order goes through.
    await shop.ok(`/stock/add/${scarce}/1`);
    expectDone(await shop.post(`/orders/checkout/${orderId}`));
    expect(await shop.item(plenty)).toEqual({ stock: 46, price: 5 });
    expect(await shop.item(scarce)).toEqual({ stock: 0, price: 5 });
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 1000 - 35 });
  });

  it("sums the quantities of one item over its lines before checking the stock", async () => {
    const userId = await shop.fundedUser(1000);
    const itemId = await shop.stockedItem(1, 5);
    const orderId = await shop.orderWith(userId, [
      [itemId, 3],
      [itemId, 3],
    ]);
    expectError(await shop.post(`/orders/checkout/${orderId}`), 400);
    expect(await shop.item(itemId)).toEqual({ stock: 5, price: 1 });
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 1000 });
    expect((await shop.order(orderId)).paid).toBe(false);
  });

  it("with too little credit is a 400 naming it, and changes nothing", async () => {
    const userId = await shop.fundedUser(29);
    const first = await shop.stockedItem(10, 5);
    const second = await shop.stockedItem(20, 5);
    const orderId = await shop.orderWith(userId, [
      [first, 1],
      [second, 1],
    ]);
    expect(expectError(await shop.post(`/orders/checkout/${orderId}`), 400)).toMatch(/credit/);
    expect(await shop.item(first)).toEqual({ stock: 5, price: 10 });
    expect(await shop.item(second)).toEqual({ stock: 5, price: 20 });
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 29 });
    expect((await shop.order(orderId)).paid).toBe(false);
  });

  it("is idempotent: a second checkout answers 200 and charges nothing more", async () => {
    const userId = await shop.fundedUser(100);
    const itemId = await shop.stockedItem(15, 10);
    const orderId = await shop.orderWith(userId, [[itemId, 2]]);
    expectDone(await shop.post(`/orders/checkout/${orderId}`));
    expectDone(await shop.post(`/orders/checkout/${orderId}`));
    expectDone(await shop.post(`/orders/checkout/${orderId}`));
    expect(await shop.item(itemId)).toEqual({ stock: 8, price: 15 });
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 70 });
    expect((await shop.order(orderId)).paid).toBe(true);
  });

  it("20 concurrent checkouts of one order all answer 200 and charge once (G4)", async () => {
    const userId = await shop.fundedUser(1000);
    const itemId = await shop.stockedItem(9, 100);
    const orderId = await shop.orderWith(userId, [[itemId, 3]]);
    const answers = await Promise.all(Array.from({ length: 20 }, () => shop.post(`/orders/checkout/${orderId}`)));
    expect(answers.map((answer) => answer.status)).toEqual(Array.from({ length: 20 }, () => 200));
    expect(await shop.item(itemId)).toEqual({ stock: 97, price: 9 });
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 1000 - 27 });
    expect((await shop.order(orderId)).paid).toBe(true);
  });

  it("concurrent checkouts competing for scarce stock: exactly as many succeed as there is stock (G1)", async () => {
    const userId = await shop.fundedUser(1000);
    const itemId = await shop.stockedItem(4, 5);
    const orderIds: string[] = [];
    for (let index = 0; index < 12; index++) orderIds.push(await shop.orderWith(userId, [[itemId, 1]]));
    const answers = await Promise.all(orderIds.map((orderId) => shop.post(`/orders/checkout/${orderId}`)));
    const statuses = answers.map((answer) => answer.status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(5);
    expect(statuses.filter((status) => status === 400)).toHaveLength(7);
    expect(await shop.item(itemId)).toEqual({ stock: 0, price: 4 });
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 1000 - 5 * 4 });
    for (const [index, orderId] of orderIds.entries()) {
      expect((await shop.order(orderId)).paid).toBe(statuses[index] === 200);
    }
  });
});

describe("batch_init", () => {
  // A replica of its own, so that ids "0".."n-1" start out unused.
  let fresh: ShopClient;
  beforeAll(async () => {
    fresh = new ShopClient(await fleet.start());
  });

  it('stock batch_init makes items "0".."n-1" and answers {msg} as JSON', async () => {
    const body = expectJson(await fresh.post("/stock/batch_init/4/10/3"));
    expect(body).toEqual({ msg: expect.any(String) });
    for (const id of ["0", "1", "2", "3"]) expect(await fresh.item(id)).toEqual({ stock: 10, price: 3 });
    expectError(await fresh.get("/stock/find/4"), 404);
  });

  it("stock batch_init overwrites what was there", async () => {
    await fresh.ok("/stock/batch_init/4/10/3");
    await fresh.ok("/stock/subtract/1/6");
    await fresh.ok("/stock/add/2/6");
    expect(expectJson(await fresh.post("/stock/batch_init/3/7/2"))).toEqual({ msg: expect.any(String) });
    for (const id of ["0", "1", "2"]) expect(await fresh.item(id)).toEqual({ stock: 7, price: 2 });
  });

  it('payment batch_init makes users "0".."n-1" and overwrites what was there', async () => {
    expect(expectJson(await fresh.post("/payment/batch_init/3/50"))).toEqual({ msg: expect.any(String) });
    for (const id of ["0", "1", "2"]) expect(await fresh.user(id)).toEqual({ user_id: id, credit: 50 });
    expectError(await fresh.get("/payment/find_user/3"), 404);
    await fresh.ok("/payment/pay/0/20");
    await fresh.ok("/payment/add_funds/1/20");
    expect(expectJson(await fresh.post("/payment/batch_init/2/9"))).toEqual({ msg: expect.any(String) });
    for (const id of ["0", "1"]) expect(await fresh.user(id)).toEqual({ user_id: id, credit: 9 });
  });

  it("orders batch_init makes orders of 2 items of quantity 1, a user in range and total_cost 2 * item_price", async () => {
    const body = expectJson(await fresh.post("/orders/batch_init/30/4/3/11"));
    expect(body).toEqual({ msg: expect.any(String) });
    const itemIds = ["0", "1", "2", "3"];
    const userIds = ["0", "1", "2"];
    for (let index = 0; index < 30; index++) {
      const order = await fresh.order(String(index));
      expect(order).toEqual({
        order_id: String(index),
        paid: false,
        items: [
          [expect.any(String), 1],
          [expect.any(String), 1],
        ],
        user_id: expect.any(String),
        total_cost: 22,
      });
      for (const [itemId] of order.items) expect(itemIds).toContain(itemId);
      expect(userIds).toContain(order.user_id);
    }
    expectError(await fresh.get("/orders/find/30"), 404);
  });

  it("a batch_init order checks out against batch_init items and users, and is overwritten by the next batch_init", async () => {
    await fresh.ok("/stock/batch_init/2/10/5");
    await fresh.ok("/payment/batch_init/1/100");
    await fresh.ok("/orders/batch_init/1/2/1/5");
    const order = await fresh.order("0");
    expect(order.user_id).toBe("0");
    expectDone(await fresh.post("/orders/checkout/0"));
    const taken = new Map<string, number>();
    for (const [itemId, quantity] of order.items) taken.set(itemId, (taken.get(itemId) ?? 0) + quantity);
    for (const id of ["0", "1"]) expect(await fresh.item(id)).toEqual({ stock: 10 - (taken.get(id) ?? 0), price: 5 });
    expect(await fresh.user("0")).toEqual({ user_id: "0", credit: 90 });
    expect((await fresh.order("0")).paid).toBe(true);
    await fresh.ok("/orders/batch_init/1/2/1/8");
    expect(await fresh.order("0")).toMatchObject({ order_id: "0", paid: false, total_cost: 16 });
    // The overwritten order is unpaid, so it may be paid (once) again.
    expectDone(await fresh.post("/orders/checkout/0"));
    expect(await fresh.user("0")).toEqual({ user_id: "0", credit: 74 });
  });

  it("an order whose batch_init items or user do not exist is refused with a 4xx and changes nothing", async () => {
    await fresh.ok("/stock/batch_init/1/10/5");
    await fresh.ok("/payment/batch_init/1/100");
    // Items "0".."49" and users "0".."49": almost every order names one that does not exist.
    await fresh.ok("/orders/batch_init/1/50/50/5");
    const order = await fresh.order("0");
    const missing = order.user_id !== "0" || order.items.some(([itemId]) => itemId !== "0");
    const answer = await fresh.post("/orders/checkout/0");
    if (missing) {
      expect(answer.status).toBeGreaterThanOrEqual(400);
      expect(answer.status).toBeLessThan(500);
      expect((await fresh.order("0")).paid).toBe(false);
      expect(await fresh.item("0")).toEqual({ stock: 10, price: 5 });
      expect(await fresh.user("0")).toEqual({ user_id: "0", credit: 100 });
    } else {
      expectDone(answer);
    }
  });

  it("n = 0 is allowed; n beyond the batch limit, or orders without items or users, are a 400", async () => {
    expectJson(await fresh.post("/stock/batch_init/0/1/1"));
    expectJson(await fresh.post("/payment/batch_init/0/1"));
    expectJson(await fresh.post("/orders/batch_init/0/0/0/1"));
    await fresh.ok("/stock/batch_init/1/10/5");
    expectError(await fresh.post("/stock/batch_init/1000000000/1/1"), 400);
    expectError(await fresh.post("/payment/batch_init/1000000000/1"), 400);
    expectError(await fresh.post("/orders/batch_init/1000000000/1/1/1"), 400);
    expectError(await fresh.post("/orders/batch_init/1/0/1/1"), 400);
    expectError(await fresh.post("/orders/batch_init/1/1/0/1"), 400);
    expect(await fresh.item("0")).toEqual({ stock: 10, price: 5 });
  });
});

/** Amounts that are not a non-negative safe integer written in digits. */
const badAmounts = [
  "2.5",
  "-1",
  "abc",
  "1e3",
  "9007199254740992",
  "99999999999999999999",
  "0x10",
  "+1",
  " 1",
  "1 ",
  "Infinity",
  "NaN",
  "1_000",
  "١", // an Arabic-Indic digit one
  "",
];

interface AmountRoute {
  readonly name: string;
  /** The path with `amount` in the place under test. */
  readonly path: (amount: string) => string;
}

describe("bad amounts are a 400 with a message and change nothing", () => {
  let itemId: string;
  let userId: string;
  let orderId: string;

  /** Everything the routes below could touch. */
  async function snapshot(): Promise<unknown> {
    return {
      item: await shop.item(itemId),
      user: await shop.user(userId),
      order: await shop.order(orderId),
      batchItems: [await shop.item("0"), await shop.item("1")],
      batchUser: await shop.user("0"),
      batchOrder: await shop.order("0"),
    };
  }

  beforeAll(async () => {
    await shop.ok("/stock/batch_init/2/10/3");
    await shop.ok("/payment/batch_init/1/100");
    await shop.ok("/orders/batch_init/1/2/1/3");
    itemId = await shop.stockedItem(4, 20);
    userId = await shop.fundedUser(50);
    orderId = await shop.orderWith(userId, [[itemId, 1]]);
  });

  const routes: AmountRoute[] = [
    { name: "item create price", path: (amount) => `/stock/item/create/${amount}` },
    { name: "stock batch_init n", path: (amount) => `/stock/batch_init/${amount}/1/1` },
    { name: "stock batch_init starting_stock", path: (amount) => `/stock/batch_init/2/${amount}/1` },
    { name: "stock batch_init item_price", path: (amount) => `/stock/batch_init/2/1/${amount}` },
    { name: "stock add", path: (amount) => `/stock/add/${itemId}/${amount}` },
    { name: "stock subtract", path: (amount) => `/stock/subtract/${itemId}/${amount}` },
    { name: "payment batch_init n", path: (amount) => `/payment/batch_init/${amount}/1` },
    { name: "payment batch_init starting_money", path: (amount) => `/payment/batch_init/1/${amount}` },
    { name: "add_funds", path: (amount) => `/payment/add_funds/${userId}/${amount}` },
    { name: "pay", path: (amount) => `/payment/pay/${userId}/${amount}` },
    { name: "orders batch_init n", path: (amount) => `/orders/batch_init/${amount}/2/1/1` },
    { name: "orders batch_init n_items", path: (amount) => `/orders/batch_init/1/${amount}/1/1` },
    { name: "orders batch_init n_users", path: (amount) => `/orders/batch_init/1/2/${amount}/1` },
    { name: "orders batch_init item_price", path: (amount) => `/orders/batch_init/1/2/1/${amount}` },
    { name: "addItem quantity", path: (amount) => `/orders/addItem/${orderId}/${itemId}/${amount}` },
  ];

  it.each(routes)("$name", async (route) => {
    const before = await snapshot();
    for (const amount of badAmounts) {
      const answer = await shop.post(route.path(encodeURIComponent(amount)));
      const message = expectError(answer, 400);
      expect(message, `amount "${amount}"`).toMatch(/integer/);
    }
    expect(await snapshot()).toEqual(before);
  });
});

describe("sums that would pass Number.MAX_SAFE_INTEGER are a 400 and change nothing", () => {
  it("add_funds near the maximum twice", async () => {
    const userId = await shop.createUser();
    expectDone(await shop.post(`/payment/add_funds/${userId}/${max - 10}`));
    expect(expectError(await shop.post(`/payment/add_funds/${userId}/${max - 10}`), 400)).toContain(String(max));
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: max - 10 });
    expectDone(await shop.post(`/payment/add_funds/${userId}/10`));
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: max });
    expectError(await shop.post(`/payment/add_funds/${userId}/1`), 400);
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: max });
  });

  it("stock add near the maximum twice, and on a batch_init stock of the maximum", async () => {
    const itemId = await shop.createItem(1);
    expectDone(await shop.post(`/stock/add/${itemId}/${max - 1}`));
    expectError(await shop.post(`/stock/add/${itemId}/2`), 400);
    expect(await shop.item(itemId)).toEqual({ stock: max - 1, price: 1 });
    expectDone(await shop.post(`/stock/add/${itemId}/1`));
    expect(await shop.item(itemId)).toEqual({ stock: max, price: 1 });
    await shop.ok(`/stock/batch_init/1/${max}/1`);
    expectError(await shop.post("/stock/add/0/1"), 400);
    expect(await shop.item("0")).toEqual({ stock: max, price: 1 });
  });

  it("addItem whose quantity * price overflows", async () => {
    const userId = await shop.createUser();
    const dearest = await shop.createItem(max);
    const large = await shop.createItem(2 ** 27);
    const orderId = await shop.createOrder(userId);
    expectError(await shop.post(`/orders/addItem/${orderId}/${dearest}/2`), 400);
    expectError(await shop.post(`/orders/addItem/${orderId}/${large}/${2 ** 27}`), 400);
    expect(await shop.order(orderId)).toEqual({ order_id: orderId, paid: false, items: [], user_id: userId, total_cost: 0 });
  });

  it("addItem whose total_cost would pass the maximum", async () => {
    const userId = await shop.createUser();
    const dearest = await shop.createItem(max);
    const cheap = await shop.createItem(1);
    const orderId = await shop.orderWith(userId, [[dearest, 1]]);
    expectError(await shop.post(`/orders/addItem/${orderId}/${cheap}/1`), 400);
    const expected: OrderView = { order_id: orderId, paid: false, items: [[dearest, 1]], user_id: userId, total_cost: max };
    expect(await shop.order(orderId)).toEqual(expected);
  });

  it("orders batch_init whose 2 * item_price passes the maximum", async () => {
    await shop.ok("/orders/batch_init/1/1/1/5");
    const before = await shop.order("0");
    expectError(await shop.post(`/orders/batch_init/1/1/1/${max}`), 400);
    expect(await shop.order("0")).toEqual(before);
  });

  it("checkout whose summed quantity of one item passes the maximum", async () => {
    const userId = await shop.fundedUser(10);
    const free = await shop.stockedItem(0, max);
    const orderId = await shop.orderWith(userId, [
      [free, max],
      [free, max],
    ]);
    expectError(await shop.post(`/orders/checkout/${orderId}`), 400);
    expect(await shop.item(free)).toEqual({ stock: max, price: 0 });
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 10 });
    expect((await shop.order(orderId)).paid).toBe(false);
  });
});

describe("odd requests get a 4xx, never a 5xx", () => {
  it("an unknown route, or a known path with the wrong method, is a 404", async () => {
    expectError(await shop.get("/no/such/route"), 404);
    expectError(await shop.post("/stock/nope"), 404);
    expectError(await shop.get("/"), 404);
    expectError(await shop.get("/stock/add/x/1"), 404);
    expectError(await shop.post("/stock/find/x"), 404);
    expectError(await shop.get("/payment/create_user"), 404);
    expectError(await shop.post("/stock/find"), 404);
  });

  it("ids that name Object.prototype members are unknown ids, not crashes", async () => {
    for (const id of ["__proto__", "constructor", "toString", "hasOwnProperty", "prototype"]) {
      expectError(await shop.get(`/stock/find/${id}`), 404);
      expectError(await shop.post(`/stock/add/${id}/1`), 404);
      expectError(await shop.get(`/payment/find_user/${id}`), 404);
      expectError(await shop.post(`/payment/pay/${id}/1`), 404);
      expectError(await shop.get(`/orders/find/${id}`), 404);
      expectError(await shop.post(`/orders/checkout/${id}`), 404);
      expectError(await shop.post(`/orders/create/${id}`), 404);
    }
  });

  it("a very long id, an empty id or a malformed percent-encoding is a 4xx with an error", async () => {
    const paths = [
      `/stock/find/${"x".repeat(129)}`,
      `/stock/find/${"x".repeat(1000)}`,
      `/payment/find_user/${"y".repeat(300)}`,
      "/stock/find/",
      "/stock/find/%E0%A4%A",
      "/payment/find_user/%",
    ];
    for (const path of paths) {
      const answer = await shop.get(path);
      expect(answer.status, `${path}: ${answer.text}`).toBeGreaterThanOrEqual(400);
      expect(answer.status, `${path}: ${answer.text}`).toBeLessThan(500);
      expectError(answer, answer.status);
    }
  });

  it("a POST with an unexpected or garbage body still works as without one", async () => {
    const userId = await shop.createUser();
    const bodies: { headers: Record<string, string>; body: string | Buffer }[] = [
      { headers: { "content-type": "application/json" }, body: '{"amount": 1000, "user_id": "x"}' },
      { headers: { "content-type": "application/json" }, body: "{not json" },
      { headers: { "content-type": "application/json" }, body: "" },
      { headers: { "content-type": "text/plain" }, body: "hello" },
      { headers: { "content-type": "multipart/form-data; boundary=zzz" }, body: "--zzz\r\ngarbage" },
      { headers: { "content-type": "application/octet-stream" }, body: Buffer.from([0, 255, 1, 254, 13, 10]) },
      { headers: {}, body: "no content type at all" },
    ];
    for (const { headers, body } of bodies) {
      const answer = await shop.replica.post(`/payment/add_funds/${userId}/3`, { headers, body });
      expectDone(answer);
      const created = await shop.replica.post("/payment/create_user", { headers, body });
      expect(expectJson(created)).toEqual({ user_id: expect.any(String) });
    }
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 3 * bodies.length });
  });

  it("a body over the size limit is a 4xx and changes nothing", async () => {
    const userId = await shop.createUser();
    const answer = await shop.replica.post(`/payment/add_funds/${userId}/3`, {
      headers: { "content-type": "application/json" },
      body: "x".repeat(1024 * 1024),
    });
    expect(answer.status).toBeGreaterThanOrEqual(400);
    expect(answer.status).toBeLessThan(500);
    expect(await shop.user(userId)).toEqual({ user_id: userId, credit: 0 });
  });

  it("a request that is not HTTP at all gets a 400 and the replica keeps serving", async () => {
    const statusLine = await rawExchange(shop.replica, "GARBAGE\r\n\r\n");
    expect(statusLine).toMatch(/^HTTP\/1\.1 400/);
    expect(await shop.createUser()).toEqual(expect.any(String));
  });
});

/** Sends `text` on a raw TCP connection; resolves with the first line of the answer. */
function rawExchange(replica: ReplicaProcess, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(replica.port, "127.0.0.1", () => socket.end(text));
    let received = "";
    socket.setTimeout(10_000, () => socket.destroy(new Error("no answer to a raw request within 10 s")));
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    socket.on("error", reject);
    socket.on("close", () => resolve(received.split("\r\n")[0] ?? ""));
  });
}
