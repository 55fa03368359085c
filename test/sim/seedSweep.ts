// Runs a range of seeds as vitest tests, a chunk per test, and fails a chunk with
// the report of each failing seed (its replay command, faults and history). Runs
// are strict: a known issue (SimulationOptions.strict) fails its seed too.
import { expect, it } from "vitest";
import { type SimulationOptions, runSeed } from "./simulation.js";

const seedsPerChunk = 100;

export function sweep(what: string, from: number, count: number, options: SimulationOptions): void {
  for (let start = from; start < from + count; start += seedsPerChunk) {
    const end = Math.min(start + seedsPerChunk, from + count);
    it(`${what}: seeds ${start}..${end - 1}`, async () => {
      const reports: string[] = [];
      for (let seed = start; seed < end; seed++) {
        const result = await runSeed(seed, { strict: true, ...options });
        if (!result.ok) reports.push(result.report);
      }
      expect(reports.join("\n\n"), `${reports.length} of ${end - start} seeds failed`).toBe("");
    });
  }
}
