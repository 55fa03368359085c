// A wide sweep of the deterministic simulation, for a nightly run (not CI): large
// seeds with membership gossip, strict, over several fault mixes, in parallel
// child processes (one per core by default). Prints each failing seed's replay
// command, a table per mix, and last `N passed, N failed`.
//
//   npm run simulate:sweep -- [--seeds-per-mix 5000] [--mixes default,wipe] [--jobs 2]
//
// Exit code 0 only if every seed passed; 2 on bad flags.
import { availableParallelism } from "node:os";
import { mixes, runSweep } from "../test/harness/simulate/sweep.js";
import { type FlagReader, flagReader, parseFlags } from "./cliFlags.js";

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
const chosen =
  values.mixes === undefined
    ? mixes
    : values.mixes.split(",").map((name) => mixes.find((mix) => mix.name === name) ?? flags.fail(`--mixes: unknown mix "${name}"`));

const startedMs = performance.now();
const results = await runSweep(chosen, seedsPerMix, jobs, chunk);
const minutes = (performance.now() - startedMs) / 60_000;
console.log(`\nSweep: ${seedsPerMix} large seeds per mix, gossip, strict, ${jobs} jobs, ${minutes.toFixed(1)} min in all\n`);
console.log("| mix | weights | seeds | passed | failed | CPU s per seed |");
console.log("|---|---|---|---|---|---|");
for (const mix of chosen) {
  const result = results.get(mix.name)!;
  const seeds = result.passed + result.failed;
  console.log(
    `| ${mix.name} | ${mix.weights || "defaults"} | ${mix.firstSeed}..${mix.firstSeed + seedsPerMix - 1} | ${result.passed} | ${result.failed} | ${(result.cpuSeconds / seeds).toFixed(3)} |`,
  );
}
const replays = [...results.values()].flatMap((result) => result.replays);
if (replays.length > 0) console.log(`\nFailing seeds, replay each with:\n${replays.map((line) => `  ${line}`).join("\n")}`);
const passed = [...results.values()].reduce((sum, result) => sum + result.passed, 0);
const failed = [...results.values()].reduce((sum, result) => sum + result.failed, 0);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
