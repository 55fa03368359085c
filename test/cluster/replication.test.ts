// Several real replica processes behaving, to a client, like one correct shop:
// read-your-writes through any replica (G6), one charge per order (G4), rights
// that move between replicas without spurious refusals, and a restarted replica
// that catches up (G3).
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { LocalCluster, clusterView, waitFor } from "../support/localCluster.js";
import { checkoutsForwarded, checkoutsRunForPeers, metricOf, rightsRequestsSent } from "../support/metrics.js";
import { ReplicaFleet, jsonOf } from "../support/replicaProcess.js";
import { ShopClient } from "../support/shopClient.js";

describe("a 3-replica cluster", () => {
  const fleet = new ReplicaFleet();
  let cluster: LocalCluster;
  let clients: ShopClient[];

  beforeAll(async () => {
    cluster = await LocalCluster.start(fleet, 3);
    clients = cluster.members.map((member) => new ShopClient(member.process));
  });
  afterAll(() => fleet.cleanup());

  const client = (index: number): ShopClient => clients[index % clients.length]!;

  it("G6: a write answered by A is visible at once at B and C", async () => {
    for (let round = 0; round < 20; round++) {
      const writer = client(round);
      const item = await writer.stockedItem(3, 10 + round);
      const user = await writer.fundedUser(100 + round);
      const order = await writer.orderWith(user, [[item, 2]]);
      for (const reader of clients) {
        expect(await reader.item(item)).toEqual({ stock: 10 + round, price: 3 });
        expect(await reader.user(user)).toEqual({ user_id: user, credit: 100 + round });
        expect(await reader.order(order)).toMatchObject({ items: [[item, 2]], total_cost: 6, paid: false });
      }
    }
  });

  it("moves rights: a checkout succeeds wherever it lands while the total suffices, and fails once it does not", async () => {
    const item = await client(0).stockedItem(1, 6);
    const users = [];
    for (let index = 0; index < 9; index++) users.push(await client(index).fundedUser(1));
    const orders = [];
    for (let index = 0; index < 9; index++) orders.push(await client(index + 1).orderWith(users[index]!, [[item, 1]]));
    // Every checkout lands on a replica other than the one that made the order.
    const answers = [];
    for (let index = 0; index < 9; index++) answers.push((await client(index + 2).post(`/orders/checkout/${orders[index]}`)).status);
    expect(answers.slice(0, 6)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(answers.slice(6)).toEqual([400, 400, 400]);
    for (const reader of clients) expect((await reader.item(item)).stock).toBe(0);
  });

  it("G4: concurrent checkouts of one order on two replicas charge once, and both answers tell the truth", async () => {
    for (let round = 0; round < 10; round++) {
      const item = await client(round).stockedItem(5, 10);
      const user = await client(round + 1).fundedUser(50);
      const order = await client(round + 2).orderWith(user, [[item, 2]]);
      const [first, second] = await Promise.all([client(round).post(`/orders/checkout/${order}`), client(round + 1).post(`/orders/checkout/${order}`)]);
      const paid = (await client(round + 2).order(order)).paid;
      expect(paid).toBe(true);
      // 2xx only if the order ends up paid (it does); a 4xx would also be truthful only if it did not.
      expect([first.status, second.status]).toEqual([200, 200]);
      for (const reader of clients) {
        expect((await reader.user(user)).credit).toBe(40);
        expect((await reader.item(item)).stock).toBe(8);
      }
    }
  });

  it("hands a checkout to the replica that holds the order's token: no right moves, and it reads paid at once everywhere", async () => {
    const item = await client(0).stockedItem(2, 30);
    const user = await client(0).fundedUser(100);
    const order = await client(0).orderWith(user, [[item, 3]]);
    const [holder, lander] = [cluster.member(0), cluster.member(1)];
    const before = await Promise.all([metricOf(lander, checkoutsForwarded), metricOf(holder, checkoutsRunForPeers), metricOf(lander, rightsRequestsSent)]);
    expect((await client(1).post(`/orders/checkout/${order}`)).status).toBe(200);
    const after = await Promise.all([metricOf(lander, checkoutsForwarded), metricOf(holder, checkoutsRunForPeers), metricOf(lander, rightsRequestsSent)]);
    expect(after, "forwarded once, run once at the holder, no rights asked").toEqual([before[0] + 1, before[1] + 1, before[2]]);
    for (const reader of clients) {
      expect(await reader.order(order)).toMatchObject({ paid: true, total_cost: 6 });
      expect((await reader.item(item)).stock).toBe(27);
      expect((await reader.user(user)).credit).toBe(94);
    }
    // Again, and at the third replica: paid already, 200, charged once.
    expect((await client(2).post(`/orders/checkout/${order}`)).status).toBe(200);
    expect((await client(1).user(user)).credit).toBe(94);
  });

  it("counts checkouts handed on towards the hottest user and item of the replica that answered them", async () => {
    const item = await client(0).stockedItem(1, 30);
    const user = await client(0).fundedUser(100);
    const orders = [];
    for (let index = 0; index < 6; index++) orders.push(await client(0).orderWith(user, [[item, 1]]));
    const lander = cluster.member(1);
    const forwarded = await metricOf(lander, checkoutsForwarded);
    for (const order of orders) expect((await client(1).post(`/orders/checkout/${order}`)).status).toBe(200);
    expect(await metricOf(lander, checkoutsForwarded), "each one handed to the holder").toBe(forwarded + orders.length);
    // No key at this replica was in more than 3 checkouts before: these two are the hottest.
    const { hot } = jsonOf(await client(1).get("/dashboard/data")) as { hot: Record<"items" | "users", { id: string; count: number }[]> };
    expect(hot.items[0]).toMatchObject({ id: item, count: orders.length });
    expect(hot.users[0]).toMatchObject({ id: user, count: orders.length });
  });

  it("refuses where it lands a checkout whose total is short, without handing it on: 400, nothing changed", async () => {
    const item = await client(0).stockedItem(5, 30);
    const user = await client(0).fundedUser(4);
    const order = await client(0).orderWith(user, [[item, 1]]);
    const forwarded = await metricOf(cluster.member(2), checkoutsForwarded);
    const answer = await client(2).post(`/orders/checkout/${order}`);
    expect([answer.status, answer.text]).toEqual([400, expect.stringContaining(`not enough credit of user ${user}`)]);
    expect(await metricOf(cluster.member(2), checkoutsForwarded)).toBe(forwarded);
    for (const reader of clients) {
      expect((await reader.order(order)).paid).toBe(false);
      expect((await reader.user(user)).credit).toBe(4);
    }
  });

  it("G6: subtract and pay spend rights held elsewhere, and over-spending fails everywhere", async () => {
    const item = await client(0).stockedItem(1, 9);
    const user = await client(1).fundedUser(9);
    expect((await client(2).post(`/stock/subtract/${item}/9`)).status).toBe(200);
    expect((await client(0).post(`/payment/pay/${user}/9`)).status).toBe(200);
    for (const reader of clients) {
      expect((await reader.post(`/stock/subtract/${item}/1`)).status).toBe(400);
      expect((await reader.post(`/payment/pay/${user}/1`)).status).toBe(400);
      expect((await reader.item(item)).stock).toBe(0);
      expect((await reader.user(user)).credit).toBe(0);
    }
  });

  it("shows every replica's links in GET /cluster", async () => {
    for (const member of cluster.members) {
      const view = await clusterView(member.process);
      expect(view.replicaId).toBe(member.replicaId);
      expect(view.peers.map((peer) => peer.replicaId).sort()).toEqual(cluster.members.filter((other) => other !== member).map((other) => other.replicaId));
      expect(view.peers.every((peer) => peer.up)).toBe(true);
    }
    // The membership document reaches every replica: each lists all three, active, with their incarnations.
    for (const member of cluster.members) {
      const view = await waitFor(async () => {
        const current = await clusterView(member.process);
        return current.members.length === 3 ? current : undefined;
      });
      expect(view.members.map((entry) => [entry.replicaId, entry.state, entry.actor])).toEqual(
        cluster.members.map((other) => [other.replicaId, "active", `${other.replicaId}/${other.process.incarnation}`]),
      );
    }
  });
});

describe("a checkout handed to a holder that freezes", () => {
  const fleet = new ReplicaFleet();
  afterEach(() => fleet.cleanup());

  it("gets no answer, neither 2xx nor 4xx, once its outcome is unknown; the holder pays the order when it runs again", async () => {
    const cluster = await LocalCluster.start(fleet, 3, ["--rights-wait-ms", "300", "--ack-wait-ms", "300"]);
    const [holder, lander] = [cluster.member(0), cluster.member(1)];
    const maker = new ShopClient(holder);
    const item = await maker.stockedItem(1, 30);
    const user = await maker.fundedUser(30);
    const order = await maker.orderWith(user, [[item, 1]]);
    process.kill(holder.pid, "SIGSTOP");
    let outcome: string;
    try {
      // The lander still counts the holder responsive (no ack of it is overdue yet): it hands the checkout on.
      outcome = await lander.post(`/orders/checkout/${order}`).then(
        (answer) => `answered ${answer.status}`,
        (error: unknown) => `no answer: ${(error as Error).message}`,
      );
    } finally {
      process.kill(holder.pid, "SIGCONT");
    }
    // A 409 would say that nothing happened; but the holder got the checkout, and runs it now.
    expect(outcome).toMatch(/^no answer: socket hang up/);
    const paidEverywhere = async () =>
      (await Promise.all(cluster.members.map((member) => new ShopClient(member.process).order(order)))).every((view) => view.paid);
    await waitFor(async () => ((await paidEverywhere()) ? true : undefined), 10_000);
    for (const member of cluster.members) {
      const reader = new ShopClient(member.process);
      expect((await reader.item(item)).stock).toBe(29);
      expect((await reader.user(user)).credit).toBe(29);
    }
    // A retry tells the outcome.
    expect((await lander.post(`/orders/checkout/${order}`)).status).toBe(200);
  });
});

describe("a replica that stops and restarts", () => {
  const fleet = new ReplicaFleet();
  afterEach(() => fleet.cleanup());

  it("G3/G5: the others keep serving while it is down; it catches up when it is back", async () => {
    const cluster = await LocalCluster.start(fleet, 3);
    const [a, b] = [new ShopClient(cluster.member(0)), new ShopClient(cluster.member(1))];
    const item = await a.stockedItem(2, 30);
    const user = await a.fundedUser(100);
    await cluster.member(2).stop();

    const orders = [];
    for (let index = 0; index < 5; index++) orders.push(await b.orderWith(user, [[item, 1]]));
    for (const order of orders) expect((await a.post(`/orders/checkout/${order}`)).status).toBe(200);
    await a.ok(`/stock/add/${item}/7`);
    const newItem = await b.stockedItem(4, 3);

    // It serves only once caught up: the first reads after its start are exact (G6).
    const restarted = new ShopClient(await cluster.startMember(cluster.members[2]!));
    expect(await restarted.item(item)).toEqual({ stock: 32, price: 2 });
    expect(await restarted.user(user)).toMatchObject({ credit: 90 });
    expect(await restarted.item(newItem)).toEqual({ stock: 3, price: 4 });
    for (const order of orders) expect((await restarted.order(order)).paid).toBe(true);
  });

  it("G3: a replica restarted on an empty folder takes a new incarnation and receives everything", async () => {
    const cluster = await LocalCluster.start(fleet, 3);
    const a = new ShopClient(cluster.member(0));
    const item = await a.stockedItem(2, 30);
    const oldIncarnation = cluster.member(2).incarnation;
    await cluster.member(2).kill();
    const fresh = await cluster.startMember(cluster.members[2]!, await fleet.newDataDir());
    expect(fresh.incarnation).not.toBe(oldIncarnation);
    expect(await new ShopClient(fresh).item(item)).toEqual({ stock: 30, price: 2 });
    // A batch_init made there now is later than any made before: it wins everywhere.
    await a.ok("/payment/batch_init/3/60");
    await new ShopClient(fresh).ok("/payment/batch_init/3/7");
    for (const client of [a, new ShopClient(fresh)]) expect(await client.user("0")).toMatchObject({ credit: 7 });
    await cluster.waitForMesh();
    // The rights the lost incarnation held are stranded, but the value is whole and
    // what the others hold is still spendable from the fresh replica.
    expect((await new ShopClient(fresh).post(`/stock/subtract/${item}/5`)).status).toBe(200);
    expect((await a.item(item)).stock).toBe(25);
  });
});
