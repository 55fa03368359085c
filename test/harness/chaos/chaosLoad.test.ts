// The chaos load (chaosLoad.ts) must load each replica on its own: a
// replica that hangs (as under SIGSTOP) holds only its own workers, its requests
// end as unknown within the timeout, the workers that replace stuck ones stay
// within their bound, and stop() returns. Otherwise a frozen replica would look
// like a stall of the replicas that stayed up.
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChaosLoad, workersPerShareMax } from "./chaosLoad.js";

let fast: Server;
let frozen: Server;
const urls: string[] = [];

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

beforeAll(async () => {
  fast = createServer((request, response) => {
    request.resume();
    response.writeHead(200, { "content-type": "application/json" }).end('{"stock":1,"credit":1}');
  });
  // Reads nothing, answers nothing: a frozen process whose kernel still accepts.
  frozen = createServer(() => undefined);
  urls.push(await listen(fast), await listen(frozen));
});

afterAll(async () => {
  frozen.closeAllConnections();
  await Promise.all([fast, frozen].map((server) => new Promise((resolve) => server.close(resolve))));
});

describe("ChaosLoad", () => {
  it("keeps loading a replica while another hangs, bounds the workers, and stops within the timeout", async () => {
    const timeoutMs = 600;
    const load = new ChaosLoad({
      urls: () => urls,
      shape: { items: 2, itemStock: 10, users: 2, userCredit: 10, orders: 50 },
      concurrency: 4,
      seed: 1,
      timeoutMs,
      stuckAfterMsBounds: [50, 50],
    });
    load.start();
    // Stuck workers are replaced one stuck request at a time: wait until many were (a busy machine is slower).
    const replaced = 16;
    while (load.now() < 500 || (load.workersPeak[1]! < replaced && load.now() < 10_000)) await sleep(20);
    const stopAskedMs = load.now();
    await load.stop();
    expect(load.now() - stopAskedMs).toBeLessThan(timeoutMs + 300);

    const fastRecords = load.records.filter((record) => record.replicaIndex === 0);
    const frozenRecords = load.records.filter((record) => record.replicaIndex === 1);
    expect(fastRecords.length).toBeGreaterThan(100);
    expect(fastRecords.every((record) => record.outcome === "2xx")).toBe(true);
    expect(frozenRecords.length).toBeGreaterThan(0);
    expect(frozenRecords.every((record) => record.outcome === "unknown" && record.detail === "timeout")).toBe(true);
    // The frozen replica's stuck workers were replaced, within the bound.
    expect(load.workersPeak[1]).toBeGreaterThanOrEqual(replaced);
    expect(load.workersPeak[1]).toBeLessThanOrEqual(2 * workersPerShareMax);
    expect(load.inFlightAt(0) + load.inFlightAt(1)).toBe(0);
  });

  it("gives a replica that joins workers of its own, and leaves the others theirs", async () => {
    const members = [urls[0]!];
    const load = new ChaosLoad({
      urls: () => members,
      shape: { items: 2, itemStock: 10, users: 2, userCredit: 10, orders: 50 },
      concurrency: 3,
      seed: 2,
      timeoutMs: 600,
    });
    expect(() => load.addReplica()).toThrow(/not running/);
    load.start();
    expect(() => load.addReplica()).toThrow(/no URL for replica index 1/);
    members.push(urls[0]!);
    expect(load.addReplica()).toBe(1);
    while (load.records.filter((record) => record.replicaIndex === 1).length < 20 && load.now() < 10_000) await sleep(20);
    await load.stop();
    expect(load.records.filter((record) => record.replicaIndex === 1 && record.outcome === "2xx").length).toBeGreaterThanOrEqual(20);
    expect(load.records.filter((record) => record.replicaIndex === 0).length).toBeGreaterThan(0);
    // Its share is the first replica's (a stuck request on a busy machine may add one more).
    expect(load.workersPeak).toHaveLength(2);
    expect(load.workersPeak[1]).toBeGreaterThanOrEqual(3);
  });
});
