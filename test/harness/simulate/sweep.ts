// A wide sweep of the deterministic simulation over several fault mixes, in
// parallel child processes of the simulate command (scripts/simulate.ts), for
// `npm run simulate:sweep`: the counts per mix and each failing seed's replay command.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** Each mix its own range of seeds, so no two mixes replay the same schedule. */
export const mixes = [
  { name: "default", weights: "", firstSeed: 1_000_001 },
  { name: "wipe", weights: "wipe=20,drop=10", firstSeed: 2_000_001 },
  { name: "partition", weights: "alone=10,halves=10,bridge=10,ring=10", firstSeed: 3_000_001 },
  { name: "leave", weights: "leave=20", firstSeed: 4_000_001 },
  { name: "crash", weights: "crash=20,wipe=5", firstSeed: 5_000_001 },
  // New replicas join (with a second join, a leave, a partition or their own crash at about the same time), and one may leave.
  { name: "join", weights: "join=20,leave=5", firstSeed: 6_000_001 },
] as const;
export type MixName = (typeof mixes)[number]["name"];

interface Chunk {
  readonly mix: (typeof mixes)[number];
  readonly from: number;
  readonly count: number;
}
export interface MixResult {
  passed: number;
  failed: number;
  cpuSeconds: number;
  readonly replays: string[];
}

/** dist/scripts/simulate.js, from this file once compiled (dist/test/harness/simulate/sweep.js). */
const simulate = fileURLToPath(new URL("../../../scripts/simulate.js", import.meta.url));

/** Runs `seedsPerMix` seeds of each mix, `chunk` seeds per child, `jobs` children at once. */
export async function runSweep(chosen: readonly (typeof mixes)[number][], seedsPerMix: number, jobs: number, chunk: number): Promise<Map<MixName, MixResult>> {
  const chunks: Chunk[] = [];
  for (const mix of chosen) {
    for (let offset = 0; offset < seedsPerMix; offset += chunk)
      chunks.push({ mix, from: mix.firstSeed + offset, count: Math.min(chunk, seedsPerMix - offset) });
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
  return results;
}
