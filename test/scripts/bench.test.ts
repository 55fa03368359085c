// `npm run bench -- --smoke --json` end to end: real plain fastify, a 1-replica and
// a 3-replica cluster, real wrk. No thresholds on speed: every section is there,
// counts are positive, nothing answered 5xx, fresh used no order twice, and under
// contention the successes equal the stock exactly (no overselling, nothing lost).
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { BenchResult } from "../harness/bench/report.js";
import type { WrkResult } from "../harness/bench/wrk.js";

const benchScriptPath = fileURLToPath(new URL("../../dist/scripts/bench.js", import.meta.url));
const smokeWaitMsMax = 150_000;

function runSmoke(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [benchScriptPath, "--smoke", "--json"], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString("utf8")).slice(-20_000)));
  return new Promise((resolve) => {
    // SIGTERM makes the bench stop everything it started.
    const timer = setTimeout(() => child.kill("SIGTERM"), smokeWaitMsMax - 10_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function expectSaneLoad(wrk: WrkResult, what: string): void {
  expect(wrk.answers, what).toBeGreaterThan(0);
  expect(wrk.answersPerSecond, what).toBeGreaterThan(0);
  expect(wrk.windowMs, what).toBeGreaterThan(0);
  expect(wrk.server5xx, `${what}: 5xx`).toBe(0);
  expect(wrk.otherStatus, what).toBe(0);
  expect(wrk.ok2xx + wrk.client4xx, what).toBe(wrk.answers);
  const { p50, p90, p99, max } = wrk.latencyMs;
  expect(p50, what).toBeGreaterThan(0);
  expect(p50, what).toBeLessThanOrEqual(p90);
  expect(p90, what).toBeLessThanOrEqual(p99);
  expect(p99, what).toBeLessThanOrEqual(max);
}

describe("npm run bench -- --smoke", () => {
  it(
    "measures plain fastify, 1 and 3 replicas in every mode, and the contention check passes",
    async () => {
      const wrk = spawnSync("wrk", ["--version"]);
      if (wrk.error !== undefined) throw new Error(`wrk is not installed (${wrk.error.message}): apt-get install -y wrk (.ci/run does)`);
      if (!existsSync(benchScriptPath)) throw new Error(`${benchScriptPath} is missing: run \`npm run build\` first`);

      const { code, stdout, stderr } = await runSmoke();
      expect(code, `bench exited ${code}:\n${stderr}`).toBe(0);
      const result = JSON.parse(stdout) as BenchResult;

      expect(result.settings.smoke).toBe(true);
      expectSaneLoad(result.plainFastify.wrk, "plain fastify");
      expect(result.plainFastify.cpuMsPerRequest).toBeGreaterThan(0);

      expect(result.clusters.map((cluster) => cluster.replicas)).toEqual([1, 3]);
      for (const cluster of result.clusters) {
        const what = `${cluster.replicas} replica(s)`;
        expect(cluster.init.stockMs, what).toBeGreaterThan(0);
        expect(cluster.init.paymentMs, what).toBeGreaterThan(0);
        expect(cluster.init.ordersMs, what).toBeGreaterThan(0);
        expect(cluster.idleAfterInitMs, `${what}: idle after init`).not.toBeNull();
        for (const rss of [cluster.rssMiBAfterInit, cluster.rssMiBAfterLoad]) {
          expect(Object.keys(rss), what).toHaveLength(cluster.replicas);
          for (const mib of Object.values(rss)) expect(mib, what).toBeGreaterThan(10);
        }
        expect(cluster.restart.ms, `${what}: restart`).not.toBeNull();
        expect(cluster.restart.ms!, what).toBeGreaterThan(0);

        expect(cluster.modes.map((mode) => mode.mode)).toEqual(["fresh", "course", "contention"]);
        for (const mode of cluster.modes) {
          expectSaneLoad(mode.wrk, `${what}, ${mode.mode}`);
          expect(mode.ratioToPlainFastify).toBeGreaterThan(0);
          expect(mode.cpuMsPerCheckout, `${what}, ${mode.mode}: CPU`).toBeGreaterThan(0);
        }
        const [fresh, course, contention] = cluster.modes;
        // Each order once: the answers cannot outnumber the orders.
        expect(fresh!.wrk.answers).toBeLessThanOrEqual(result.settings.n);
        expect(course!.wrk.ok2xx).toBeGreaterThan(0);
        const check = contention!.contention!;
        const stock = result.settings.contention.items * result.settings.contention.stockPerItem;
        expect(check.stockTotal).toBe(stock);
        expect(check.reasons).toEqual([]);
        expect(check.pass).toBe(true);
        expect(check.successes).toBe(stock);
        expect(contention!.wrk.ok2xx).toBe(stock);
        expect(Object.values(check.stockLeftByReplica)).toEqual(new Array(cluster.replicas).fill(0));
      }
    },
    smokeWaitMsMax,
  );
});
