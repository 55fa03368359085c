// A wide sweep of the deterministic simulation, for a nightly run (not CI): large
// seeds with membership gossip, strict, over several fault mixes, in parallel
// child processes (one per core by default). Prints each failing seed's replay
// command, a table per mix, and last `N passed, N failed`.
//
//   npm run simulate:sweep -- [--seeds-per-mix 5000] [--mixes default,wipe] [--jobs 2]
//
// Exit code 0 only if every seed passed; 2 on bad flags.
import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { type FlagReader, flagReader, parseFlags } from "./cliFlags.js";

/** Each mix its own range of seeds, so no two mixes replay the same schedule. */
const mixes = [
  { name: "default", weights: "", firstSeed: 1_000_001 },
  { name: "wipe", weights: "wipe=20,drop=10", firstSeed: 2_000_001 },
  { name: "partition", weights: "alone=10,halves=10,bridge=10,ring=10", firstSeed: 3_000_001 },
  { name: "leave", weights: "leave=20", firstSeed: 4_000_001 },
  { name: "crash", weights: "crash=20,wipe=5", firstSeed: 5_000_001 },
] as const;
type MixName = (typeof mixes)[number]["name"];

const usage = `usage: npm run simulate:sweep -- [options]
  --seeds-per-mix N   large seeds per fault mix (default 5000)
  --mixes A,B         which mixes (default all: ${mixes.map((mix) => mix.name).join(", ")})
  --jobs N            child processes at once (default: one per core)
  --chunk N           seeds per child process (default 250)
  --help`;
const flags: FlagReader = flagReader(usage);

const values = parseFlags(
  {
    "seeds-per-mix": { type: "string" },
    mixes: { type: "string" },
    jobs: { type: "string" },
    chunk: { type: "string" },
    help: { type: "boolean" },
  },
  usage,
);
const seedsPerMix = flags.integerFlag("seeds-per-mix", values["seeds-per-mix"], 5000, 1);
const jobs = flags.integerFlag("jobs", values.jobs, availableParallelism(), 1);
const chunk = flags.integerFlag("chunk", values.chunk, 250, 1);
const chosen = values.mixes === undefined ? mixes : values.mixes.split(",").map((name) => mixes.find((mix) => mix.name === name) ?? flags.fail(`--mixes: unknown mix "${name}"`));

interface Chunk {
  readonly mix: (typeof mixes)[number];
  readonly from: number;
  readonly count: number;
}
interface MixResult {
  passed: number;
  failed: number;
  cpuSeconds: number;
  readonly replays: string[];
}

const simulate = fileURLToPath(new URL("simulate.js", import.meta.url));
const chunks: Chunk[] = [];
for (const mix of chosen) {
  for (let offset = 0; offset < seedsPerMix; offset += chunk) chunks.push({ mix, from: mix.firstSeed + offset, count: Math.min(chunk, seedsPerMix - offset) });
}
const results = new Map<MixName, MixResult>(chosen.map((mix) => [mix.name, { passed: 0, failed: 0, cpuSeconds: 0, replays: [] }]));
const startedMs = performance.now();
let chunksDone = 0;

/** Run one chunk in a child: its summary line counts, its report lines name failing seeds. */
function runChunk({ mix, from, count }: Chunk): Promise<void> {
  const args = [simulate, "--seeds", String(count), "--from", String(from), "--size", "large", "--gossip", "--strict"];
  if (mix.weights !== "") args.push("--weights", mix.weights);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    child.stdout.on("data", (data: Buffer) => (output += data.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      const result = results.get(mix.name)!;
      const summary = /^(\d+) passed, (\d+) failed$/m.exec(output);
      const cpu = /\(([\d.]+) s of CPU\)/.exec(output);
      if (summary === null) {
        // A child that died without its summary counts every seed of its chunk as failed.
        result.failed += count;
        result.replays.push(`seeds ${from}..${from + count - 1} (${mix.name}): the child exited with ${code} before its summary`);
      } else {
        result.passed += Number(summary[1]);
        result.failed += Number(summary[2]);
        for (const match of output.matchAll(/^seed \d+ failed; replay: (.*)$/gm)) result.replays.push(match[1]!);
      }
      result.cpuSeconds += Number(cpu?.[1] ?? 0);
      chunksDone += 1;
      const seconds = (performance.now() - startedMs) / 1000;
      const failed = [...results.values()].reduce((sum, each) => sum + each.failed, 0);
      console.error(`${chunksDone}/${chunks.length} chunks, ${seconds.toFixed(0)} s, ${failed} failed (last: ${mix.name} ${from}..${from + count - 1})`);
      resolve();
    });
  });
}

const queue = [...chunks];
await Promise.all(
  Array.from({ length: Math.min(jobs, queue.length) }, async () => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) await runChunk(next);
  }),
);

const minutes = (performance.now() - startedMs) / 60_000;
console.log(`\nSweep: ${seedsPerMix} large seeds per mix, gossip, strict, ${jobs} jobs, ${minutes.toFixed(1)} min in all\n`);
console.log("| mix | weights | seeds | passed | failed | CPU s per seed |");
console.log("|---|---|---|---|---|---|");
for (const mix of chosen) {
  const result = results.get(mix.name)!;
  const seeds = result.passed + result.failed;
  console.log(`| ${mix.name} | ${mix.weights || "defaults"} | ${mix.firstSeed}..${mix.firstSeed + seedsPerMix - 1} | ${result.passed} | ${result.failed} | ${(result.cpuSeconds / seeds).toFixed(3)} |`);
}
const replays = [...results.values()].flatMap((result) => result.replays);
if (replays.length > 0) console.log(`\nFailing seeds, replay each with:\n${replays.map((line) => `  ${line}`).join("\n")}`);
const passed = [...results.values()].reduce((sum, result) => sum + result.passed, 0);
const failed = [...results.values()].reduce((sum, result) => sum + result.failed, 0);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
