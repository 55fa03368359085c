// `npm run bench`: the shop's checkout under wrk, against plain fastify in the same
// run, on a 1-replica and a 3-replica cluster (test/harness/bench/runBench.ts says
// what is measured). Progress goes to stderr; the summary (markdown, or --json) to
// stdout. Needs wrk (apt-get install -y wrk) and Linux (/proc).
import { parseArgs } from "node:util";
import { isStoppingOnSignal } from "../test/harness/bench/processes.js";
import { type ModeName, markdownReport } from "../test/harness/bench/report.js";
import { type BenchSettings, runBench } from "../test/harness/bench/runBench.js";
import { flagReader } from "./cliFlags.js";

const usage = `usage: node dist/scripts/bench.js [--n 100000] [--seconds 10] [--connections 64] [--threads 2]
  [--modes fresh,course,contention] [--replicas 1,3] [--contention-items 4] [--contention-stock 100]
  [--contention-orders 2000] [--seed 1] [--smoke] [--json]
--n (or --items): items, users and orders of the course's init. --smoke: tiny sizes and 1 s runs.`;
const reader = flagReader(usage);
const modeNames: readonly ModeName[] = ["fresh", "course", "contention"];

function listFlag<T>(name: string, text: string, parse: (item: string) => T | undefined): T[] {
  const items = text
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
  const parsed = items.map((item) => parse(item) ?? reader.fail(`--${name}: "${item}" is not allowed`));
  if (parsed.length === 0) reader.fail(`--${name} is empty`);
  return parsed;
}

function readSettings(): BenchSettings & { readonly json: boolean } {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        n: { type: "string" },
        items: { type: "string" },
        seconds: { type: "string" },
        connections: { type: "string" },
        threads: { type: "string" },
        modes: { type: "string", default: modeNames.join(",") },
        replicas: { type: "string", default: "1,3" },
        "contention-items": { type: "string" },
        "contention-stock": { type: "string" },
        "contention-orders": { type: "string" },
        seed: { type: "string" },
        smoke: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
      },
    }).values;
  } catch (error) {
    return reader.fail((error as Error).message);
  }
  const smoke = parsed.smoke;
  const threads = reader.integerFlag("threads", parsed.threads, 2, 1);
  const connections = reader.integerFlag("connections", parsed.connections, smoke ? 16 : 64, threads);
  return {
    n: reader.integerFlag("n", parsed.n ?? parsed.items, smoke ? 2000 : 100_000, 1),
    wrk: {
      threads,
      connections,
      seconds: reader.integerFlag("seconds", parsed.seconds, smoke ? 1 : 10, 1),
      timeoutSeconds: 10,
      seed: reader.integerFlag("seed", parsed.seed, 1, 0),
    },
    modes: [...new Set(listFlag("modes", parsed.modes, (item) => modeNames.find((name) => name === item)))],
    replicas: listFlag("replicas", parsed.replicas, (item) => (/^\d+$/.test(item) && Number(item) >= 1 && Number(item) <= 16 ? Number(item) : undefined)),
    contention: {
      items: reader.integerFlag("contention-items", parsed["contention-items"], smoke ? 2 : 4, 1),
      stockPerItem: reader.integerFlag("contention-stock", parsed["contention-stock"], smoke ? 10 : 100, 0),
      orders: reader.integerFlag("contention-orders", parsed["contention-orders"], smoke ? 100 : 2000, 1),
    },
    idle: { coreFractionMax: 0.1, windowMs: smoke ? 500 : 1000, waitMsMax: smoke ? 15_000 : 120_000 },
    settleWaitMsMax: smoke ? 5_000 : 30_000,
    smoke,
    json: parsed.json,
  };
}

async function main(): Promise<void> {
  const settings = readSettings();
  const result = await runBench(settings);
  process.stdout.write(settings.json ? `${JSON.stringify(result, null, 2)}\n` : markdownReport(result));
}

main().catch((error: unknown) => {
  if (isStoppingOnSignal()) return;
  console.error(`bench failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
