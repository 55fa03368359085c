// One bad record does not stop a replica for good: a stored state or cursor that
// does not decode is set aside with its bytes, the key is logged, the replica starts
// and gets the state back from its peers (issue: the launcher restarted it in a loop).
import { Level } from "level";
import { afterAll, describe, expect, it } from "vitest";
import { LocalCluster, waitFor } from "../support/localCluster.js";
import { ReplicaFleet } from "../support/replicaProcess.js";
import { ShopClient } from "../support/shopClient.js";

describe("a stored record that does not decode", () => {
  const fleet = new ReplicaFleet();
  afterAll(() => fleet.cleanup());

  it("is set aside and logged, and the replica serves it again as its peers hold it", async () => {
    const cluster = await LocalCluster.start(fleet, 3);
    const writer = new ShopClient(cluster.member(0));
    const item = await writer.stockedItem(4, 25);
    const user = await writer.fundedUser(60);
    const victim = cluster.members[1]!;
    expect(await new ShopClient(victim.process).item(item)).toEqual({ stock: 25, price: 4 });
    // Anti-entropy rounds (every second) store the victim's cursors for its peers.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    await victim.process.stop();

    const db = new Level<string, Uint8Array>(victim.dataDir, { keyEncoding: "utf8", valueEncoding: "view" });
    await db.open();
    const garbage = Uint8Array.of(0xc1, 0xff, 0x00, 0x13);
    await db.put(`i:${item}`, garbage, { sync: true });
    const cursorKeys: string[] = [];
    for await (const key of db.keys({ gte: "~cursor:", lt: "~cursor;" })) cursorKeys.push(key);
    expect(cursorKeys.length).toBeGreaterThan(0);
    await db.put(cursorKeys[0]!, Uint8Array.of(0xa3, 0x61, 0x62, 0x63), { sync: true });
    await db.close();

    const restarted = await cluster.startMember(victim);
    await waitFor(async () => ((await new ShopClient(restarted).item(item)).stock === 25 ? true : undefined));
    const client = new ShopClient(restarted);
    expect(await client.item(item)).toEqual({ stock: 25, price: 4 });
    expect((await client.user(user)).credit).toBe(60);
    expect(restarted.printed()).toContain(`i:${item}`);
    expect(restarted.printed()).toMatch(/set aside 2 stored records/);
    // It takes writes on that key again, and its peers agree.
    expect((await restarted.post(`/stock/subtract/${item}/5`)).status).toBe(200);
    expect(await writer.item(item)).toEqual({ stock: 20, price: 4 });

    await restarted.stop();
    const after = new Level<string, Uint8Array>(victim.dataDir, { keyEncoding: "utf8", valueEncoding: "view" });
    await after.open();
    expect([...((await after.get(`~set-aside:i:${item}`)) ?? [])]).toEqual([...garbage]);
    await after.close();
  });
});
