// `npm start`'s cluster: 3 replicas behind one address, reached by clients that
// open a fresh connection per request, as the course's tests and benchmark do.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runConsistencyScenario } from "../harness/consistency/consistencyScenario.js";
import { send } from "../harness/net/httpClient.js";
import { ClusterProcess } from "../support/clusterProcess.js";

describe("the local cluster at one address", () => {
  let cluster: ClusterProcess;
  let dataRoot: string;

  beforeAll(async () => {
    dataRoot = await mkdtemp(join(tmpdir(), "escrow-shop-cluster-"));
    cluster = await ClusterProcess.start(3, dataRoot);
  });
  afterAll(async () => {
    await cluster?.stop();
    await rm(dataRoot, { recursive: true, force: true });
  });

  /** One request on a fresh connection through the shared address. */
  async function call(method: string, path: string): Promise<{ status: number; body: unknown }> {
    const outcome = await send(cluster.url, method, path, 10_000);
    if (outcome.kind !== "answer") throw new Error(`${method} ${path}: ${outcome.kind}`);
    let body: unknown = outcome.text;
    try {
      body = JSON.parse(outcome.text);
    } catch {
      // mutations answer text
    }
    return { status: outcome.status, body };
  }
  const post = (path: string) => call("POST", path);
  const get = (path: string) => call("GET", path);

  it("G6: the course's sequential flow reads exactly what was written, whichever replica answers", async () => {
    for (let round = 0; round < 5; round++) {
      const item = ((await post("/stock/item/create/5")).body as { item_id: string }).item_id;
      expect((await get(`/stock/find/${item}`)).body).toEqual({ stock: 0, price: 5 });
      expect((await post(`/stock/add/${item}/50`)).status).toBe(200);
      expect((await get(`/stock/find/${item}`)).body).toEqual({ stock: 50, price: 5 });
      expect((await post(`/stock/subtract/${item}/200`)).status).toBe(400);
      expect((await get(`/stock/find/${item}`)).body).toEqual({ stock: 50, price: 5 });
      expect((await post(`/stock/subtract/${item}/15`)).status).toBe(200);
      expect((await get(`/stock/find/${item}`)).body).toEqual({ stock: 35, price: 5 });

      const user = ((await post("/payment/create_user")).body as { user_id: string }).user_id;
      expect((await post(`/payment/add_funds/${user}/15`)).status).toBe(200);
      expect((await get(`/payment/find_user/${user}`)).body).toEqual({ user_id: user, credit: 15 });
      expect((await post(`/payment/pay/${user}/10`)).status).toBe(200);
      expect((await get(`/payment/find_user/${user}`)).body).toEqual({ user_id: user, credit: 5 });

      const order = ((await post(`/orders/create/${user}`)).body as { order_id: string }).order_id;
      expect((await post(`/orders/addItem/${order}/${item}/1`)).status).toBe(200);
      expect((await post(`/orders/addItem/${order}/${item}/1`)).status).toBe(200);
      expect((await get(`/orders/find/${order}`)).body).toMatchObject({
        items: [
          [item, 1],
          [item, 1],
        ],
        total_cost: 10,
        paid: false,
      });
      // 10 due, 5 of credit: refused, and nothing changes.
      expect((await post(`/orders/checkout/${order}`)).status).toBe(400);
      expect((await get(`/stock/find/${item}`)).body).toEqual({ stock: 35, price: 5 });
      expect((await get(`/payment/find_user/${user}`)).body).toEqual({ user_id: user, credit: 5 });
      expect((await post(`/payment/add_funds/${user}/5`)).status).toBe(200);
      expect((await post(`/orders/checkout/${order}`)).status).toBe(200);
      expect((await get(`/orders/find/${order}`)).body).toMatchObject({ paid: true });
      expect((await get(`/stock/find/${item}`)).body).toEqual({ stock: 33, price: 5 });
      expect((await get(`/payment/find_user/${user}`)).body).toEqual({ user_id: user, credit: 0 });
      expect((await post(`/orders/checkout/${order}`)).status).toBe(200);
      expect((await get(`/payment/find_user/${user}`)).body).toEqual({ user_id: user, credit: 0 });
    }
  });

  it("G1/G4: the consistency scenario, ten runs in a row, finds zero inconsistencies", async () => {
    for (let run = 0; run < 10; run++) {
      const report = await runConsistencyScenario({
        urls: [cluster.url],
        itemsStock: 100,
        users: 1000,
        orders: 1000,
        concurrency: 100,
        seed: 1000 + run,
        timeoutMs: 10_000,
      });
      const failed = report.checks.filter((check) => !check.ok);
      expect(failed, `run ${run + 1}: ${JSON.stringify(failed)}`).toEqual([]);
      expect(report.inconsistencies).toBe(0);
      expect(report.checkouts.ok2xx).toBe(100);
      expect(report.checkouts.client4xx).toBe(900);
    }
  }, 240_000);

  it("spreads fresh connections over every replica", async () => {
    const answeredBy = new Set<string>();
    for (let index = 0; index < 12; index++) answeredBy.add(((await get("/cluster")).body as { replicaId: string }).replicaId);
    expect([...answeredBy].sort()).toEqual(["r1", "r2", "r3"]);
  });
});
