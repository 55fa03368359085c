// Checkout throughput of one replica (or, with --replicas N, of a local cluster
// through its shared address), measured with wrk against plain fastify in the same
// run. Usage: node dist/scripts/benchCheckout.js [--rounds 3] [--seconds 10]
//   [--connections 64] [--orders 100000] [--replicas 1]. Needs wrk (apt-get install wrk).
// wrk runs on the same 2 cores and takes about one of them: say so beside figures.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "10" },
    connections: { type: "string", default: "64" },
    orders: { type: "string", default: "100000" },
    replicas: { type: "string", default: "1" },
  },
});
const rounds = Number(values.rounds);
const orders = Number(values.orders);
const replicas = Number(values.replicas);
const here = fileURLToPath(new URL(".", import.meta.url));
const wrkScript = fileURLToPath(new URL("../../scripts/wrk/checkout.lua", import.meta.url));

interface WrkResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
}

async function startServer(
  script: string,
  args: string[],
  readyPattern = /serving http:\/\/localhost:(\d+)/,
): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [join(here, script), ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise<string>((resolve, reject) => {
    let output = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = readyPattern.exec(output);
      if (match) resolve(`http://127.0.0.1:${match[1]}`);
    });
    child.on("exit", (code) => reject(new Error(`${script} exited with ${code}: ${output}`)));
  });
  return { child, url };
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

async function wrk(url: string): Promise<WrkResult> {
  const { stdout } = await promisify(execFile)(
    "wrk",
    ["-t1", `-c${values.connections}`, `-d${values.seconds}s`, "--latency", "-s", wrkScript, url],
    { env: { ...process.env, ORDERS: String(orders) } },
  );
  const number = (pattern: RegExp): number => Number(pattern.exec(stdout)?.[1] ?? "NaN");
  const ms = (label: string): number => {
    const match = new RegExp(`${label}%\\s+([0-9.]+)(us|ms|s)`).exec(stdout);
    if (!match) return Number.NaN;
    return Number(match[1]) * (match[2] === "us" ? 0.001 : match[2] === "s" ? 1000 : 1);
  };
  return { requestsPerSecond: number(/Requests\/sec:\s+([0-9.]+)/), p50Ms: ms("50"), p99Ms: ms("99"), non2xx: number(/Non-2xx or 3xx responses: (\d+)/) || 0 };
}

async function post(url: string): Promise<void> {
  const response = await fetch(url, { method: "POST" });
  if (!response.ok) throw new Error(`${url}: ${response.status} ${await response.text()}`);
}

async function measureReplica(): Promise<WrkResult> {
  const dataDir = await mkdtemp(join(tmpdir(), "bench-"));
  const { child, url } =
    replicas === 1
      ? await startServer("../node/main.js", ["--port", "0", "--host", "127.0.0.1", "--data-dir", dataDir])
      : await startServer(
          "startCluster.js",
          ["--replicas", String(replicas), "--port", "0", "--base-port", "0", "--peer-base-port", "0", "--data-root", dataDir],
          /cluster of \d+ replicas serving http:\/\/localhost:(\d+)/,
        );
  try {
    // Enough stock and credit that every checkout can succeed: this measures the success path.
    await post(`${url}/stock/batch_init/${orders}/1000000000/1`);
    await post(`${url}/payment/batch_init/${orders}/1000000000`);
    await post(`${url}/orders/batch_init/${orders}/${orders}/${orders}/1`);
    return await wrk(url);
  } finally {
    await stop(child);
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function measureBaseline(): Promise<WrkResult> {
  const { child, url } = await startServer("baselineServer.js", []);
  try {
    return await wrk(url);
  } finally {
    await stop(child);
  }
}

const median = (numbers: number[]): number => numbers.slice().sort((a, b) => a - b)[Math.floor(numbers.length / 2)]!;
const replicaResults: WrkResult[] = [];
const baselineResults: WrkResult[] = [];
for (let round = 0; round < rounds; round++) {
  baselineResults.push(await measureBaseline());
  replicaResults.push(await measureReplica());
  console.log(`round ${round + 1}: replica ${replicaResults.at(-1)!.requestsPerSecond.toFixed(0)}/s, baseline ${baselineResults.at(-1)!.requestsPerSecond.toFixed(0)}/s`);
}
const summary = (results: WrkResult[]) => ({
  "req/s": Math.round(median(results.map((r) => r.requestsPerSecond))),
  "p50 ms": median(results.map((r) => r.p50Ms)),
  "p99 ms": median(results.map((r) => r.p99Ms)),
  non2xx: median(results.map((r) => r.non2xx)),
});
const replica = summary(replicaResults);
const baseline = summary(baselineResults);
console.log(`medians of ${rounds} rounds, wrk -t1 -c${values.connections} -d${values.seconds}s on the same machine:`);
const subject = replicas === 1 ? "replica checkout (fsync'd)" : `${replicas}-replica cluster checkout`;
console.table({ [subject]: replica, "plain fastify POST": baseline });
console.log(`replica / plain fastify: ${(replica["req/s"] / baseline["req/s"]).toFixed(2)}`);
