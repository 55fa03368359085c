// The operations routes of every replica (API.md, "Beyond the course's routes"):
// /health, /ready (503 with the reason while catching up at start, and once
// retired), /metrics (Prometheus text whose counters move with the shop's work),
// /documentation/json (OpenAPI listing every shop route), pino log lines with
// request ids, and a SIGTERM that lets the request in flight finish and flushes it.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../harness/net/freePort.js";
import { environmentWithoutAdminToken } from "../support/adminToken.js";
import { LocalCluster, waitFor } from "../support/localCluster.js";
import { type HttpAnswer, type ReplicaProcess, ReplicaFleet, jsonOf, mainScriptPath } from "../support/replicaProcess.js";
import { ShopClient } from "../support/shopClient.js";

/** The value of one sample of Prometheus text, e.g. `shop_checkouts_total{outcome="ok"}`; 0 if absent. */
function sample(metrics: string, name: string): number {
  for (const line of metrics.split("\n")) {
    if (line.startsWith(`${name} `)) return Number(line.slice(name.length + 1));
  }
  return 0;
}

async function metricsOf(replica: ReplicaProcess): Promise<string> {
  const answer = await replica.get("/metrics");
  expect(answer.status).toBe(200);
  expect(answer.contentType).toMatch(/^text\/plain/);
  return answer.text;
}

const checkoutSeries = 'http_request_duration_seconds_count{method="POST",route="/orders/checkout/:order_id",status_code="200"}';

describe("operations routes of one replica", () => {
  const fleet = new ReplicaFleet();
  let replica: ReplicaProcess;
  let shop: ShopClient;

  beforeAll(async () => {
    replica = await fleet.start({ extraArgs: ["--log-level", "info"] });
    shop = new ShopClient(replica);
  });
  afterAll(() => fleet.cleanup());

  it("GET /health answers 200 {status: ok}, and GET /ready 200 {ready: true} once serving", async () => {
    const health = await replica.get("/health");
    expect([health.status, jsonOf(health)]).toEqual([200, { status: "ok" }]);
    const ready = await replica.get("/ready");
    expect([ready.status, jsonOf(ready)]).toEqual([200, { ready: true }]);
  });

  it("GET /metrics counts checkouts (ok and refused), their latency per route, batches and keys", async () => {
    const before = await metricsOf(replica);
    const item = await shop.stockedItem(3, 1);
    const user = await shop.fundedUser(10);
    const paid = await shop.orderWith(user, [[item, 1]]);
    expect((await shop.post(`/orders/checkout/${paid}`)).status).toBe(200);
    const refused = await shop.orderWith(user, [[item, 1]]);
    expect((await shop.post(`/orders/checkout/${refused}`)).status).toBe(400);
    const after = await metricsOf(replica);

    expect(sample(after, 'shop_checkouts_total{outcome="ok"}') - sample(before, 'shop_checkouts_total{outcome="ok"}')).toBe(1);
    expect(sample(after, 'shop_checkouts_total{outcome="refused"}') - sample(before, 'shop_checkouts_total{outcome="refused"}')).toBe(1);
    expect(sample(after, checkoutSeries) - sample(before, checkoutSeries)).toBe(1);
    expect(after).toMatch(/^http_request_duration_seconds_bucket\{le="0\.005",method="POST",route="\/orders\/checkout\/:order_id",status_code="400"\} \d+$/m);
    expect(sample(after, 'shop_keys{kind="item"}')).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'shop_keys{kind="order"}')).toBeGreaterThanOrEqual(2);
    const batches = 'shop_group_commit_write_seconds_count{synced="true"}';
    expect(sample(after, batches)).toBeGreaterThan(sample(before, batches));
    expect(sample(after, "shop_ready")).toBe(1);
    expect(after).toMatch(/^process_resident_memory_bytes \d+/m);
  });

  it("GET /documentation/json is an OpenAPI document listing every shop route; /documentation is the UI", async () => {
    const answer = await replica.get("/documentation/json");
    expect(answer.status).toBe(200);
    const document = jsonOf(answer) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(document.openapi).toMatch(/^3\./);
    const routes = Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`));
    expect(routes).toEqual(
      expect.arrayContaining([
        "POST /stock/item/create/{price}",
        "POST /stock/batch_init/{n}/{starting_stock}/{item_price}",
        "GET /stock/find/{item_id}",
        "POST /stock/add/{item_id}/{amount}",
        "POST /stock/subtract/{item_id}/{amount}",
        "POST /payment/create_user",
        "POST /payment/batch_init/{n}/{starting_money}",
        "GET /payment/find_user/{user_id}",
        "POST /payment/add_funds/{user_id}/{amount}",
        "POST /payment/pay/{user_id}/{amount}",
        "POST /orders/create/{user_id}",
        "POST /orders/batch_init/{n}/{n_items}/{n_users}/{item_price}",
        "GET /orders/find/{order_id}",
        "POST /orders/addItem/{order_id}/{item_id}/{quantity}",
        "POST /orders/checkout/{order_id}",
        "GET /health",
        "GET /ready",
        "GET /metrics",
      ]),
    );
    const find = document.paths["/stock/find/{item_id}"]!["get"] as { parameters: { name: string; in: string }[] };
    expect(find.parameters).toEqual([expect.objectContaining({ name: "item_id", in: "path" })]);
    const ui = await replica.get("/documentation");
    expect(ui.status).toBe(200);
    expect(ui.contentType).toMatch(/^text\/html/);
  });

  it("the operations routes change nothing and need no token", async () => {
    const seqBefore = (jsonOf(await replica.get("/cluster")) as { durableSeq: number }).durableSeq;
    for (const path of ["/health", "/ready", "/metrics", "/documentation/json", "/dashboard", "/dashboard/data"]) {
      expect([path, (await replica.get(path)).status]).toEqual([path, 200]);
      expect([path, (await replica.post(path)).status]).toEqual([path, 404]);
    }
    expect((jsonOf(await replica.get("/cluster")) as { durableSeq: number }).durableSeq).toBe(seqBefore);
  });

  it("every line a replica prints is pino JSON with its replica id, and request lines carry the request id", async () => {
    await replica.get("/stock/find/no-such-item");
    const lines = await waitFor(async () => {
      const printed = replica
        .printed()
        .split("\n")
        .filter((line) => line.length > 0);
      return printed.some((line) => line.includes("no-such-item")) ? printed : undefined;
    });
    for (const line of lines) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      expect(entry, line).toMatchObject({ level: expect.any(Number), replicaId: "r1", msg: expect.any(String) });
    }
    const requestLine = lines
      .map((line) => JSON.parse(line) as { reqId?: string; req?: { url?: string } })
      .find((entry) => entry.req?.url === "/stock/find/no-such-item");
    expect(requestLine?.reqId).toEqual(expect.any(String));
  });
});

describe("GET /ready while catching up at start, and once retired", () => {
  const fleet = new ReplicaFleet();
  afterAll(() => fleet.cleanup());

  it("answers 503 with the reason while the replica waits for a peer, holds shop requests until then, then 200", async () => {
    const dataDir = await fleet.newDataDir();
    const secretFile = join(dataDir, "secret");
    await writeFile(secretFile, randomBytes(24).toString("hex"));
    const [port, peerPort, absentPeerPort] = [await freePort(), await freePort(), await freePort()];
    const catchUpMs = 3000;
    const child = spawnReplica([
      ...["--port", String(port), "--peer-port", String(peerPort), "--data-dir", join(dataDir, "r1"), "--replica-id", "r1"],
      ...["--peers", `r1=127.0.0.1:${peerPort},r2=127.0.0.1:${absentPeerPort}`, "--secret-file", secretFile, "--catch-up-ms", String(catchUpMs)],
    ]);
    try {
      const notReady = await waitFor(() => get(port, "/ready").catch(() => undefined), 10_000);
      expect(notReady.status).toBe(503);
      expect(jsonOf(notReady)).toEqual({ ready: false, reason: expect.stringMatching(/catching up with its peers \(r2\)/) });
      expect((await get(port, "/health")).status).toBe(200);
      // A shop read waits for the catch-up, then answers: never from a stale state, never a 5xx.
      const askedAt = Date.now();
      const heldRead = get(port, "/stock/find/some-item").then((answer) => ({ answer, answeredAt: Date.now() }));
      const readyAgain = await waitFor(async () => {
        const answer = await get(port, "/ready");
        return answer.status === 200 ? { answer, readyAt: Date.now() } : undefined;
      }, catchUpMs + 10_000);
      expect(jsonOf(readyAgain.answer)).toEqual({ ready: true, notCaughtUpWith: ["r2"] });
      const { answer, answeredAt } = await heldRead;
      expect(answer.status).toBe(404);
      expect(answeredAt - askedAt).toBeGreaterThan(500);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("stops cleanly on SIGTERM while it still catches up", async () => {
    const dataDir = await fleet.newDataDir();
    const secretFile = join(dataDir, "secret");
    await writeFile(secretFile, randomBytes(24).toString("hex"));
    const [port, peerPort, absentPeerPort] = [await freePort(), await freePort(), await freePort()];
    const child = spawnReplica([
      ...["--port", String(port), "--peer-port", String(peerPort), "--data-dir", join(dataDir, "r1"), "--replica-id", "r1"],
      ...["--peers", `r1=127.0.0.1:${peerPort},r2=127.0.0.1:${absentPeerPort}`, "--secret-file", secretFile, "--catch-up-ms", "60000"],
    ]);
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      expect((await waitFor(() => get(port, "/ready").catch(() => undefined), 10_000)).status).toBe(503);
      child.kill("SIGTERM");
      const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve("still running"), 10_000))]);
      expect(code).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("answers 503 'retired' once the replica left the cluster for good, and 200 at the others", async () => {
    const cluster = await LocalCluster.start(fleet, 2);
    const leaver = cluster.member(1);
    await waitFor(async () => ((await leaver.get("/cluster")).text.includes('"state":"active"') ? true : undefined));
    const leave = await leaver.post("/cluster/leave", { headers: cluster.adminHeaders });
    expect(leave.status, leave.text).toBe(200);
    expect(jsonOf(leave)).toMatchObject({ state: "retired" });
    const ready = await leaver.get("/ready");
    expect(ready.status).toBe(503);
    expect(jsonOf(ready)).toEqual({ ready: false, reason: expect.stringMatching(/^retired/) });
    expect((await leaver.get("/health")).status).toBe(200);
    expect(sample(await metricsOf(leaver), "shop_ready")).toBe(0);
    expect((await cluster.member(0).get("/ready")).status).toBe(200);
  });
});

describe("SIGTERM", () => {
  const fleet = new ReplicaFleet();
  afterAll(() => fleet.cleanup());

  it("lets the request in flight finish and makes it durable, then exits 0", async () => {
    const replica = await fleet.start();
    const count = 100_000;
    const inFlight = replica.post(`/stock/batch_init/${count}/7/1`);
    await new Promise((resolve) => setTimeout(resolve, 30));
    const stopped = replica.stop();
    const answer = await inFlight;
    expect(answer.status, answer.text).toBe(200);
    expect(await stopped).toEqual({ code: 0, signal: null });
    const restarted = await fleet.start({ dataDir: replica.dataDir });
    expect(jsonOf(await restarted.get(`/stock/find/${count - 1}`))).toEqual({ stock: 7, price: 1 });
  });
});

function spawnReplica(args: readonly string[]): ChildProcess {
  return spawn(process.execPath, [mainScriptPath, "--host", "127.0.0.1", ...args], { stdio: "ignore", env: environmentWithoutAdminToken() });
}

async function get(port: number, path: string): Promise<HttpAnswer> {
  const answer = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: answer.status, contentType: answer.headers.get("content-type") ?? "", text: await answer.text(), headers: {} };
}
