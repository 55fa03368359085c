// A 2xx is durable before it is sent (G2): crash a real replica with SIGKILL right
// after (or while) its answers arrive, restart it on the same folder, and every
// acknowledged write must be there, nothing more. Also the identity rule: the same
// folder keeps its incarnation, an empty folder takes a new one (Riak KV679).
import { rm } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { type HttpAnswer, type ReplicaProcess, ReplicaFleet } from "../support/replicaProcess.js";
import { type OrderView, ShopClient } from "../support/shopClient.js";
import { randomSource } from "../harness/random.js";

const fleet = new ReplicaFleet();
afterEach(() => fleet.cleanup());

const seed = Number(process.env["TEST_SEED"] ?? 20240601);

type Operation =
  | { kind: "add"; itemId: string; amount: number }
  | { kind: "subtract"; itemId: string; amount: number }
  | { kind: "add_funds"; userId: string; amount: number }
  | { kind: "pay"; userId: string; amount: number }
  | { kind: "checkout"; orderId: string }
  | { kind: "addItem"; orderId: string; itemId: string; quantity: number }
  | { kind: "create_item"; price: number }
  | { kind: "create_user" };

function pathOf(operation: Operation): string {
  switch (operation.kind) {
    case "add":
      return `/stock/add/${operation.itemId}/${operation.amount}`;
    case "subtract":
      return `/stock/subtract/${operation.itemId}/${operation.amount}`;
    case "add_funds":
      return `/payment/add_funds/${operation.userId}/${operation.amount}`;
    case "pay":
      return `/payment/pay/${operation.userId}/${operation.amount}`;
    case "checkout":
      return `/orders/checkout/${operation.orderId}`;
    case "addItem":
      return `/orders/addItem/${operation.orderId}/${operation.itemId}/${operation.quantity}`;
    case "create_item":
      return `/stock/item/create/${operation.price}`;
    case "create_user":
      return "/payment/create_user";
  }
}

interface Shop {
  stock: Map<string, number>;
  prices: Map<string, number>;
  credit: Map<string, number>;
  orders: Map<string, OrderView>;
}

const itemCount = 6;
const userCount = 5;
const checkoutOrderCount = 40;
const openOrderCount = 8;
const operationCount = 400;

/** Items "0".."5", users "0".."4", orders to check out and orders to add lines to. */
async function setUp(shop: ShopClient, random: (n: number) => number): Promise<Shop> {
  await shop.ok(`/stock/batch_init/${itemCount}/30/2`);
  await shop.ok(`/payment/batch_init/${userCount}/150`);
  const model: Shop = { stock: new Map(), prices: new Map(), credit: new Map(), orders: new Map() };
  for (let index = 0; index < itemCount; index++) model.stock.set(String(index), 30);
  for (let index = 0; index < itemCount; index++) model.prices.set(String(index), 2);
  for (let index = 0; index < userCount; index++) model.credit.set(String(index), 150);
  const orderIds = await Promise.all(
    Array.from({ length: checkoutOrderCount + openOrderCount }, async () => {
      const lines = Array.from({ length: 1 + random(3) }, () => [String(random(itemCount)), 1 + random(3)] as const);
      return shop.orderWith(String(random(userCount)), lines);
    }),
  );
  for (const orderId of orderIds) model.orders.set(orderId, await shop.order(orderId));
  return model;
}

function randomOperation(random: (n: number) => number, orderIds: readonly string[]): Operation {
  const itemId = String(random(itemCount));
  const userId = String(random(userCount));
  const roll = random(100);
  if (roll < 18) return { kind: "add", itemId, amount: 1 + random(5) };
  if (roll < 36) return { kind: "subtract", itemId, amount: 1 + random(10) };
  if (roll < 50) return { kind: "add_funds", userId, amount: 1 + random(30) };
  if (roll < 64) return { kind: "pay", userId, amount: 1 + random(60) };
  if (roll < 86) return { kind: "checkout", orderId: orderIds[random(checkoutOrderCount)] ?? "" };
  if (roll < 94) return { kind: "addItem", orderId: orderIds[checkoutOrderCount + random(openOrderCount)] ?? "", itemId, quantity: 1 + random(4) };
  if (roll < 97) return { kind: "create_item", price: random(50) };
  return { kind: "create_user" };
}

/** Applies one acknowledged operation to the model; checkouts charge once per order. */
function applyAcknowledged(model: Shop, operation: Operation, answer: HttpAnswer): void {
  const change = (values: Map<string, number>, id: string, delta: number): void => {
    values.set(id, (values.get(id) ?? Number.NaN) + delta);
  };
  switch (operation.kind) {
    case "add":
      return change(model.stock, operation.itemId, operation.amount);
    case "subtract":
      return change(model.stock, operation.itemId, -operation.amount);
    case "add_funds":
      return change(model.credit, operation.userId, operation.amount);
    case "pay":
      return change(model.credit, operation.userId, -operation.amount);
    case "checkout": {
      const order = model.orders.get(operation.orderId);
      if (order === undefined || order.paid) return;
      order.paid = true;
      for (const [itemId, quantity] of order.items) change(model.stock, itemId, -quantity);
      return change(model.credit, order.user_id, -order.total_cost);
    }
    case "addItem": {
      const order = model.orders.get(operation.orderId);
      if (order === undefined) throw new Error(`no order ${operation.orderId} in the model`);
      order.items.push([operation.itemId, operation.quantity]);
      order.total_cost += operation.quantity * (model.prices.get(operation.itemId) ?? Number.NaN);
      return;
    }
    case "create_item": {
      const { item_id: itemId } = JSON.parse(answer.text) as { item_id: string };
      model.stock.set(itemId, 0);
      model.prices.set(itemId, operation.price);
      return;
    }
    case "create_user": {
      const { user_id: userId } = JSON.parse(answer.text) as { user_id: string };
      model.credit.set(userId, 0);
      return;
    }
  }
}

/** Everything the model knows about, read back from the replica. */
async function readBack(shop: ShopClient, model: Shop): Promise<Shop> {
  const read: Shop = { stock: new Map(), prices: new Map(), credit: new Map(), orders: new Map() };
  for (const itemId of model.stock.keys()) {
    const item = await shop.item(itemId);
    read.stock.set(itemId, item.stock);
    read.prices.set(itemId, item.price);
  }
  for (const userId of model.credit.keys()) read.credit.set(userId, (await shop.user(userId)).credit);
  for (const orderId of model.orders.keys()) read.orders.set(orderId, await shop.order(orderId));
  return read;
}

/** Order lines of concurrent addItems may land in any order: compare them sorted. */
function comparable(shop: Shop): object {
  const orders = [...shop.orders.values()].map((order) => ({ ...order, items: [...order.items].sort() }));
  return { stock: Object.fromEntries(shop.stock), prices: Object.fromEntries(shop.prices), credit: Object.fromEntries(shop.credit), orders };
}

/** The replica's SIGKILL status: it died of the kill, not of anything else. */
async function expectKilled(replica: ReplicaProcess): Promise<void> {
  expect(await replica.kill()).toEqual({ code: null, signal: "SIGKILL" });
}

describe(`crash durability (seed ${seed})`, () => {
  it("every write acknowledged before a SIGKILL is there after a restart, and nothing else", async () => {
    const random = randomSource(seed);
    const replica = await fleet.start();
    const shop = new ShopClient(replica);
    const model = await setUp(shop, random);
    const orderIds = [...model.orders.keys()];
    const operations = Array.from({ length: operationCount }, () => randomOperation(random, orderIds));

    // All in flight at once; the kill goes out in the same tick as the last answer.
    let outstanding = operations.length;
    const answers = await Promise.all(
      operations.map(async (operation) => {
        const answer = await replica.post(pathOf(operation));
        outstanding -= 1;
        if (outstanding === 0) replica.killNow();
        return answer;
      }),
    );
    await expectKilled(replica);

    const statuses = new Map<number, number>();
    for (const [index, answer] of answers.entries()) {
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      const operation = operations[index];
      if (operation === undefined) throw new Error("an answer without an operation");
      if (answer.status === 200) applyAcknowledged(model, operation, answer);
      else expect(answer.status, `${pathOf(operation)}: ${answer.text}`).toBe(400);
    }
    // The mix must exercise both outcomes, or the exact check below proves little.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(operationCount / 4);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(operationCount / 20);
    expect([...model.orders.values()].filter((order) => order.paid).length).toBeGreaterThan(0);

    const restarted = await fleet.start({ dataDir: replica.dataDir });
    expect(restarted.incarnation).toBe(replica.incarnation);
    const read = await readBack(new ShopClient(restarted), model);
    expect(comparable(read)).toEqual(comparable(model));
    for (const value of [...read.stock.values(), ...read.credit.values()]) expect(value).toBeGreaterThanOrEqual(0);
  });

  it("a SIGKILL while writes are in flight keeps every acknowledged one and invents none", async () => {
    // Each item gets the adds 2^0 .. 2^51 once: the stock after the crash says
    // exactly which adds were applied, so each acknowledged one must be among them.
    const bitCount = 52;
    const itemIds = ["0", "1", "2", "3"];
    const replica = await fleet.start();
    const shop = new ShopClient(replica);
    await shop.ok(`/stock/batch_init/${itemIds.length}/0/1`);
    const random = randomSource(seed + 1);
    const pending = itemIds.flatMap((itemId) => Array.from({ length: bitCount }, (_, bit) => ({ itemId, bit })));
    for (let index = pending.length - 1; index > 0; index--) {
      const other = random(index + 1);
      [pending[index], pending[other]] = [pending[other]!, pending[index]!];
    }
    const total = pending.length;
    const acknowledged: { itemId: string; bit: number }[] = [];
    const inFlightMax = 24;
    const killAfterAcknowledged = Math.floor(total / 2);
    let lost = 0;

    // A steady stream of adds; the kill goes out when half of them are acknowledged.
    const send = async (): Promise<void> => {
      for (let next = pending.shift(); next !== undefined && replica.running; next = pending.shift()) {
        const add = next;
        const answer = await replica.post(`/stock/add/${add.itemId}/${2 ** add.bit}`).catch(() => null);
        if (answer === null) {
          lost += 1;
          continue;
        }
        expect(answer.status, answer.text).toBe(200);
        acknowledged.push(add);
        if (acknowledged.length === killAfterAcknowledged) replica.killNow();
      }
    };
    await Promise.all(Array.from({ length: inFlightMax }, send));
    await expectKilled(replica);
    expect(acknowledged.length).toBeGreaterThanOrEqual(killAfterAcknowledged);
    expect(acknowledged.length).toBeLessThan(total);
    expect(lost).toBeGreaterThan(0);

    const restarted = new ShopClient(await fleet.start({ dataDir: replica.dataDir }));
    for (const itemId of itemIds) {
      const { stock } = await restarted.item(itemId);
      expect(Number.isSafeInteger(stock) && stock >= 0 && stock < 2 ** bitCount).toBe(true);
      const applied = new Set<number>();
      for (let bit = 0; bit < bitCount; bit++) if (Math.floor(stock / 2 ** bit) % 2 === 1) applied.add(bit);
      const acknowledgedBits = acknowledged.filter((add) => add.itemId === itemId).map((add) => add.bit);
      for (const bit of acknowledgedBits) expect(applied.has(bit), `item ${itemId}: acknowledged add 2^${bit}`).toBe(true);
    }
  });
});

describe("batch_init across crashes", () => {
  it("a batch_init after a restart still overwrites the keys, and the overwrite survives the next crash", async () => {
    const first = await fleet.start();
    const shop = new ShopClient(first);
    await shop.ok("/stock/batch_init/3/10/4");
    await shop.ok("/payment/batch_init/1/100");
    await shop.ok("/orders/batch_init/2/3/1/4");
    await shop.ok("/stock/subtract/0/3");
    await shop.ok("/payment/add_funds/0/5");
    await shop.ok("/orders/checkout/0");
    await first.kill();

    const second = await fleet.start({ dataDir: first.dataDir });
    const afterRestart = new ShopClient(second);
    expect((await afterRestart.order("0")).paid).toBe(true);
    expect(await afterRestart.user("0")).toEqual({ user_id: "0", credit: 100 + 5 - 8 });
    await afterRestart.ok("/stock/batch_init/3/7/2");
    await afterRestart.ok("/payment/batch_init/2/50");
    await afterRestart.ok("/orders/batch_init/2/3/2/2");
    await second.kill();

    const third = new ShopClient(await fleet.start({ dataDir: first.dataDir }));
    for (const id of ["0", "1", "2"]) expect(await third.item(id)).toEqual({ stock: 7, price: 2 });
    for (const id of ["0", "1"]) expect(await third.user(id)).toEqual({ user_id: id, credit: 50 });
    for (const id of ["0", "1"]) expect(await third.order(id)).toMatchObject({ order_id: id, paid: false, total_cost: 4 });
  });
});

describe("replica identity", () => {
  it("a restart on the same folder keeps the incarnation and the data; a clean stop exits 0", async () => {
    const first = await fleet.start();
    expect(first.incarnation).toMatch(/^[0-9a-f]{8,}$/);
    const itemId = await new ShopClient(first).stockedItem(5, 9);
    expect(await first.stop()).toEqual({ code: 0, signal: null });
    const second = await fleet.start({ dataDir: first.dataDir });
    expect(second.incarnation).toBe(first.incarnation);
    expect(await new ShopClient(second).item(itemId)).toEqual({ stock: 9, price: 5 });
  });

  it("a start on an empty folder takes a new incarnation, also where a lost folder was", async () => {
    const first = await fleet.start();
    const other = await fleet.start();
    expect(other.incarnation).not.toBe(first.incarnation);
    const itemId = await new ShopClient(first).createItem(1);
    await first.kill();
    await rm(first.dataDir, { recursive: true, force: true });
    const reborn = await fleet.start({ dataDir: first.dataDir });
    expect(reborn.incarnation).toMatch(/^[0-9a-f]{8,}$/);
    expect(reborn.incarnation).not.toBe(first.incarnation);
    expect(reborn.incarnation).not.toBe(other.incarnation);
    expect((await new ShopClient(reborn).get(`/stock/find/${itemId}`)).status).toBe(404);
  });
});
