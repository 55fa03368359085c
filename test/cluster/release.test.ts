// Releasing a lost incarnation's rights (issue: stranded rights). A replica restarted
// on an empty folder is a new incarnation; the rights its old one held are stranded
// until the operator releases them with the admin token. Then every unit is
// spendable again at the active members, and later changes of the old actor are refused.
import { rm } from "node:fs/promises";
import { afterAll, describe, expect, it } from "vitest";
import { LocalCluster, clusterView } from "../support/localCluster.js";
import { ReplicaFleet, jsonOf } from "../support/replicaProcess.js";
import { ShopClient } from "../support/shopClient.js";

describe("releasing a lost incarnation's rights", () => {
  const fleet = new ReplicaFleet();
  afterAll(() => fleet.cleanup());

  it("strands nothing once the operator releases them, and only the operator can", async () => {
    const cluster = await LocalCluster.start(fleet, 3);
    const [a, b] = [0, 1].map((index) => new ShopClient(cluster.member(index))) as [ShopClient, ShopClient];
    // Stock and credit spread over the three as they are made; r3 holds a third.
    await a.ok("/stock/batch_init/6/30/1");
    await a.ok("/payment/batch_init/3/90");
    const lost = (await clusterView(cluster.member(2))).actor;
    const r3 = cluster.members[2]!;
    await r3.process.kill();
    await rm(r3.dataDir, { recursive: true, force: true });
    const back = await cluster.startMember(r3);
    await cluster.waitForMesh();
    expect((await clusterView(back)).actor).not.toBe(lost);

    // The old incarnation's third is stranded: not all of an item can be taken.
    expect((await a.post("/stock/subtract/0/30")).status).toBe(409);
    expect((await a.item("0")).stock).toBe(30);

    const path = `/cluster/release/${encodeURIComponent(lost)}`;
    expect((await cluster.member(0).post(path)).status).toBe(401);
    expect(
      (await cluster.member(0).post(`/cluster/release/${encodeURIComponent((await clusterView(cluster.member(1))).actor)}`, { headers: cluster.adminHeaders }))
        .status,
    ).toBe(400);
    const answer = await cluster.member(0).post(path, { headers: cluster.adminHeaders });
    expect(answer.status).toBe(200);
    expect(jsonOf(answer)).toMatchObject({ actor: lost, keysStillHeld: 0, memberRetired: null });
    expect((jsonOf(answer) as { keysReleased: number }).keysReleased).toBe(9);
    // Again: nothing left to release.
    expect(jsonOf(await cluster.member(0).post(path, { headers: cluster.adminHeaders }))).toMatchObject({ keysReleased: 0 });

    // Every unit is spendable at the active members now.
    for (let index = 0; index < 6; index++) expect((await (index % 2 === 0 ? a : b).post(`/stock/subtract/${index}/30`)).status).toBe(200);
    for (let index = 0; index < 3; index++) expect((await b.post(`/payment/pay/${index}/90`)).status).toBe(200);
    for (const client of [a, b, new ShopClient(back)]) {
      expect((await client.item("5")).stock).toBe(0);
      expect((await client.user("2")).credit).toBe(0);
    }
  });
});
