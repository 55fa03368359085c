// Latency of a checkout whose rights are all at the replica it lands on, against
// one whose order token is at another replica (the checkout is handed to it:
// docs/DESIGN.md, "A checkout handed to the token's holder").
// Usage: node dist/test/harness/bench/transferLatency.js [--checkouts 500]
// Starts its own 3-replica cluster on free ports, one request at a time on a
// kept-alive connection, so the figures are the replicas' own latency.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { readyMessage } from "../readySignal.js";

const { values } = parseArgs({ options: { checkouts: { type: "string", default: "500" } } });
const checkouts = Number(values.checkouts);

async function startCluster(dataRoot: string): Promise<{ child: ChildProcess; urls: string[] }> {
  const script = fileURLToPath(new URL("../../../scripts/startCluster.js", import.meta.url));
  const child = spawn(process.execPath, [script, "--port", "0", "--base-port", "0", "--peer-base-port", "0", "--data-root", dataRoot], {
    stdio: ["ignore", "pipe", "inherit", "ipc"],
  });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const serving = await readyMessage(child, "cluster-serving", "the cluster", 60_000, () => output);
  return { child, urls: serving.replicas.map((replica) => `http://127.0.0.1:${replica.port}`) };
}

async function post(url: string): Promise<unknown> {
  const response = await fetch(url, { method: "POST" });
  const text = await response.text();
  if (!response.ok) throw new Error(`${url}: ${response.status} ${text}`);
  return text.startsWith("{") ? JSON.parse(text) : text;
}

/** Milliseconds of each checkout of `orders` at `url`, one after another. */
async function timeCheckouts(url: string, orders: string[]): Promise<number[]> {
  const times: number[] = [];
  for (const order of orders) {
    const started = process.hrtime.bigint();
    await post(`${url}/orders/checkout/${order}`);
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return times;
}

const percentile = (times: number[], p: number): number => times.slice().sort((a, b) => a - b)[Math.floor((times.length - 1) * p)]!;

const dataRoot = await mkdtemp(join(tmpdir(), "bench-transfer-"));
const { child, urls } = await startCluster(dataRoot);
try {
  const [home, away] = urls as [string, string];
  await sleep(1000); // the mesh connects
  const { item_id: item } = (await post(`${home}/stock/item/create/1`)) as { item_id: string };
  await post(`${home}/stock/add/${item}/1000000`);
  const { user_id: user } = (await post(`${home}/payment/create_user`)) as { user_id: string };
  await post(`${home}/payment/add_funds/${user}/1000000`);
  // Stock and credit are spread over all replicas as they are added; order tokens
  // stay where the order was made (home).
  const makeOrders = async (): Promise<string[]> => {
    const orders: string[] = [];
    for (let index = 0; index < checkouts; index++) {
      const { order_id: order } = (await post(`${home}/orders/create/${user}`)) as { order_id: string };
      await post(`${home}/orders/addItem/${order}/${item}/1`);
      orders.push(order);
    }
    return orders;
  };
  const local = await timeCheckouts(home, await makeOrders());
  const handedOn = await timeCheckouts(away, await makeOrders());
  const row = (times: number[]) => ({ "p50 ms": +percentile(times, 0.5).toFixed(2), "p99 ms": +percentile(times, 0.99).toFixed(2) });
  console.log(`${checkouts} sequential checkouts each, 3 replicas on this machine:`);
  console.table({ "rights all local": row(local), "token elsewhere, checkout handed on": row(handedOn) });
  console.log(`p50 ratio handed on / local: ${(percentile(handedOn, 0.5) / percentile(local, 0.5)).toFixed(2)}`);
} finally {
  child.kill("SIGTERM");
  await new Promise((resolve) => child.once("exit", resolve));
  await rm(dataRoot, { recursive: true, force: true });
}
