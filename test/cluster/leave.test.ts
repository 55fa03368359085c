// A replica leaving for good hands every right and order token to the others
// first; after it is gone every value is still fully spendable (G2, G5).
import { afterAll, describe, expect, it } from "vitest";
import { bearer, writeAdminToken } from "../support/adminToken.js";
import { LocalCluster, clusterView, waitFor } from "../support/localCluster.js";
import { ReplicaFleet, jsonOf } from "../support/replicaProcess.js";
import { ShopClient } from "../support/shopClient.js";

describe("a replica that leaves", () => {
  const fleet = new ReplicaFleet();
  afterAll(() => fleet.cleanup());

  it("hands over its rights and tokens, retires, and nothing is stranded after it is killed", async () => {
    const cluster = await LocalCluster.start(fleet, 3);
    const [a, b, leaving] = [0, 1, 2].map((index) => new ShopClient(cluster.member(index))) as [ShopClient, ShopClient, ShopClient];
    // Rights spread over all three as they are made; order tokens of batch_init too.
    await leaving.ok("/stock/batch_init/30/9/1");
    await leaving.ok("/payment/batch_init/30/7");
    await leaving.ok("/orders/batch_init/30/30/30/1");
    const item = await leaving.stockedItem(2, 100);
    const user = await leaving.fundedUser(50);
    const order = await leaving.orderWith(user, [[item, 3]]);

    const answer = await cluster.member(2).post("/cluster/leave", { headers: cluster.adminHeaders });
    expect(answer.status).toBe(200);
    expect(jsonOf(answer)).toMatchObject({ keysStillHeld: 0, waitingFor: [], state: "retired" });
    expect((jsonOf(answer) as { keysHandedOver: number }).keysHandedOver).toBeGreaterThan(60);
    await waitFor(async () => {
      const view = await clusterView(cluster.member(0));
      return view.members.find((member) => member.replicaId === "r3")?.state === "retired" ? view : undefined;
    });
    // Retired, it still serves reads and refuses every write, creates included.
    expect(await leaving.item(item)).toEqual({ stock: 100, price: 2 });
    for (const write of ["/payment/create_user", "/stock/item/create/1", `/stock/add/${item}/1`, "/stock/batch_init/1/1/1", `/orders/create/${user}`]) {
      const refused = await cluster.member(2).post(write);
      expect([write, refused.status]).toEqual([write, 409]);
    }
    expect((await cluster.member(2).post("/cluster/leave", { headers: cluster.adminHeaders })).status).toBe(200);
    await cluster.member(2).kill();

    // Everything is spendable at the two that stay, split between them.
    for (let index = 0; index < 30; index++) {
      expect((await a.post(`/stock/subtract/${index}/5`)).status).toBe(200);
      expect((await b.post(`/stock/subtract/${index}/4`)).status).toBe(200);
      expect((await b.post(`/payment/pay/${index}/7`)).status).toBe(200);
    }
    expect((await a.post(`/orders/checkout/${order}`)).status).toBe(200);
    expect((await b.post(`/stock/subtract/${item}/97`)).status).toBe(200);
    expect((await a.post(`/payment/pay/${user}/44`)).status).toBe(200);
    for (const client of [a, b]) {
      expect(await client.item(item)).toEqual({ stock: 0, price: 2 });
      expect((await client.user(user)).credit).toBe(0);
      expect((await client.item("29")).stock).toBe(0);
    }
    // Every batch_init order's token is held by one of the two that stay.
    for (let index = 0; index < 30; index++) {
      const status = (await (index % 2 === 0 ? a : b).post(`/orders/addItem/${index}/0/0`)).status;
      expect(status).toBe(200);
    }
  });

  it("refuses to leave when no active peer is reachable", async () => {
    const admin = await writeAdminToken(fleet);
    const alone = await fleet.start({ extraArgs: ["--admin-token-file", admin.file] });
    const answer = await alone.post("/cluster/leave", { headers: bearer(admin.token) });
    expect(answer.status).toBe(409);
  });
});
