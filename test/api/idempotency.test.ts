// Idempotency-Key on POST (docs/API.md): a repeat answers what the first answered
// and changes nothing, at the same replica, after a crash, and at another replica;
// the key sent with another request is a 422; without the header nothing changes.
import { afterAll, describe, expect, it } from "vitest";
import { LocalCluster } from "../support/localCluster.js";
import { type HttpAnswer, type ReplicaProcess, ReplicaFleet, jsonOf } from "../support/replicaProcess.js";
import { ShopClient } from "../support/shopClient.js";

const keyed = (replica: ReplicaProcess, path: string, key: string): Promise<HttpAnswer> => replica.post(path, { headers: { "Idempotency-Key": key } });
const answerOf = (answer: HttpAnswer) => ({ status: answer.status, text: answer.text });

describe("Idempotency-Key", () => {
  const fleet = new ReplicaFleet();
  afterAll(() => fleet.cleanup());

  it("a repeat answers the same and changes nothing; another request with the key is a 422", async () => {
    const replica = await fleet.start();
    const shop = new ShopClient(replica);
    const created = await keyed(replica, "/payment/create_user", "create-1");
    expect(created.status).toBe(200);
    expect(answerOf(await keyed(replica, "/payment/create_user", "create-1"))).toEqual(answerOf(created));
    const user = (jsonOf(created) as { user_id: string }).user_id;

    const first = await keyed(replica, `/payment/add_funds/${user}/50`, "funds-1");
    for (let repeat = 0; repeat < 3; repeat++) expect(answerOf(await keyed(replica, `/payment/add_funds/${user}/50`, "funds-1"))).toEqual(answerOf(first));
    expect((await shop.user(user)).credit).toBe(50);
    const reused = await keyed(replica, `/payment/add_funds/${user}/51`, "funds-1");
    expect(reused.status).toBe(422);
    expect((await shop.user(user)).credit).toBe(50);

    // A refusal is kept too: the repeat is refused again, though the funds are there now.
    const refused = await keyed(replica, `/payment/pay/${user}/80`, "pay-1");
    expect(refused.status).toBe(400);
    await shop.ok(`/payment/add_funds/${user}/100`);
    expect(answerOf(await keyed(replica, `/payment/pay/${user}/80`, "pay-1"))).toEqual(answerOf(refused));
    expect((await shop.user(user)).credit).toBe(150);

    // Without the header, every request counts; a bad key is a 400 that changes nothing.
    await shop.ok(`/payment/add_funds/${user}/1`);
    await shop.ok(`/payment/add_funds/${user}/1`);
    expect((await shop.user(user)).credit).toBe(152);
    expect((await keyed(replica, `/payment/add_funds/${user}/1`, "two words")).status).toBe(400);
    expect((await shop.user(user)).credit).toBe(152);
  });

  it("concurrent repeats at one replica apply once and all answer the same", async () => {
    const replica = await fleet.start();
    const shop = new ShopClient(replica);
    const user = await shop.fundedUser(0);
    const answers = await Promise.all(Array.from({ length: 8 }, () => keyed(replica, `/payment/add_funds/${user}/7`, "together")));
    expect(new Set(answers.map((answer) => `${answer.status} ${answer.text}`)).size).toBe(1);
    expect(answers[0]!.status).toBe(200);
    expect((await shop.user(user)).credit).toBe(7);
  });

  it("the record is durable with its change: a repeat after kill -9 and a restart changes nothing", async () => {
    const replica = await fleet.start();
    const item = await new ShopClient(replica).stockedItem(3, 10);
    const first = await keyed(replica, `/stock/subtract/${item}/4`, "take-4");
    expect(first.status).toBe(200);
    await replica.kill();
    const restarted = await fleet.start({ dataDir: replica.dataDir });
    expect(answerOf(await keyed(restarted, `/stock/subtract/${item}/4`, "take-4"))).toEqual(answerOf(first));
    expect((await new ShopClient(restarted).item(item)).stock).toBe(6);
  });

  it("is replicated with the change: a repeat at another replica answers the same and changes nothing", async () => {
    const cluster = await LocalCluster.start(fleet, 3);
    const [a, b, c] = [0, 1, 2].map((index) => cluster.member(index)) as [ReplicaProcess, ReplicaProcess, ReplicaProcess];
    const shop = new ShopClient(a);
    const item = await shop.stockedItem(2, 10);
    const user = await shop.fundedUser(100);
    const order = await shop.orderWith(user, [[item, 3]]);
    const created = await keyed(a, `/stock/item/create/9`, "new-item");
    const checkout = await keyed(a, `/orders/checkout/${order}`, "pay-order");
    const funds = await keyed(a, `/payment/add_funds/${user}/5`, "five");
    expect([created.status, checkout.status, funds.status]).toEqual([200, 200, 200]);
    for (const other of [b, c]) {
      expect(answerOf(await keyed(other, `/stock/item/create/9`, "new-item"))).toEqual(answerOf(created));
      expect(answerOf(await keyed(other, `/orders/checkout/${order}`, "pay-order"))).toEqual(answerOf(checkout));
      expect(answerOf(await keyed(other, `/payment/add_funds/${user}/5`, "five"))).toEqual(answerOf(funds));
      expect((await keyed(other, `/payment/add_funds/${user}/6`, "five")).status).toBe(422);
    }
    for (const reader of [a, b, c].map((replica) => new ShopClient(replica))) {
      expect(await reader.user(user)).toEqual({ user_id: user, credit: 100 - 6 + 5 });
      expect((await reader.item(item)).stock).toBe(7);
    }
  });
});
