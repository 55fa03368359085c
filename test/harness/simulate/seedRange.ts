// A range of seeds of the deterministic simulation (test/sim/), for `npm run
// simulate`: each failing seed's report, then what the range did in all.
import { type SimulationOptions, runSeed } from "../../sim/simulation.js";

/**
 * Runs seeds from..from+count-1; `print` gets each failing seed's report and the
 * summary lines (the last one `N passed, N failed`), `progress` a line every 1000 seeds.
 */
export async function runSeedRange(
  from: number,
  count: number,
  options: SimulationOptions,
  print: (line: string) => void,
  progress: (line: string) => void,
): Promise<{ readonly passed: number; readonly failed: number }> {
  const startedMs = performance.now();
  const cpuStart = process.cpuUsage();
  let passed = 0;
  let failed = 0;
  let events = 0;
  let checkoutsHandedOn = 0;
  let checkoutsUnknown = 0;
  const leaveOutcomes = new Map<string, number>();
  const joinOutcomes = new Map<string, number>();
  const releaseOutcomes = new Map<string, number>();
  const knownSeeds = new Map<string, number[]>();
  for (let seed = from; seed < from + count; seed++) {
    const result = await runSeed(seed, options);
    events += result.stats.events;
    checkoutsHandedOn += result.stats.checkoutsHandedOn;
    checkoutsUnknown += result.stats.checkoutsUnknown;
    for (const outcome of result.stats.leaves) leaveOutcomes.set(outcome, (leaveOutcomes.get(outcome) ?? 0) + 1);
    for (const outcome of result.stats.joins) {
      // "active, not caught up with r2" counts as one kind, whoever it missed.
      const kind = outcome.replace(/ with .*/, "");
      joinOutcomes.set(kind, (joinOutcomes.get(kind) ?? 0) + 1);
    }
    for (const outcome of result.stats.releases) {
      const kind = outcome.startsWith("released") ? "released" : outcome.replace(/^[^:]*: /, "");
      releaseOutcomes.set(kind, (releaseOutcomes.get(kind) ?? 0) + 1);
    }
    for (const issue of result.known) {
      const kind = issue.slice(0, issue.indexOf(":"));
      knownSeeds.set(kind, [...(knownSeeds.get(kind) ?? []), seed]);
    }
    if (result.ok) passed += 1;
    else {
      failed += 1;
      print(result.report);
      print("");
    }
    if ((seed - from + 1) % 1000 === 0) {
      const seconds = (performance.now() - startedMs) / 1000;
      progress(`${seed - from + 1} seeds in ${seconds.toFixed(1)} s (${((seed - from + 1) / seconds).toFixed(0)} seeds/s), ${failed} failed`);
    }
  }
  const seconds = (performance.now() - startedMs) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  print(
    `seeds ${from}..${from + count - 1}: ${events} events in ${seconds.toFixed(1)} s (${cpuSeconds.toFixed(1)} s of CPU), ${(count / seconds).toFixed(1)} seeds/s, ${((1000 * cpuSeconds) / count).toFixed(1)} ms of CPU per seed`,
  );
  print(`checkouts handed to the token's holder: ${checkoutsHandedOn} (orders and holders), ${checkoutsUnknown} left without an answer (outcome unknown)`);
  if (leaveOutcomes.size > 0) print(`leaves: ${[...leaveOutcomes].map(([outcome, runs]) => `${runs} ${outcome}`).join(", ")}`);
  if (joinOutcomes.size > 0) print(`joins: ${[...joinOutcomes].map(([outcome, runs]) => `${runs} ${outcome}`).join(", ")}`);
  if (releaseOutcomes.size > 0) print(`releases of lost incarnations: ${[...releaseOutcomes].map(([outcome, runs]) => `${runs} ${outcome}`).join(", ")}`);
  for (const [kind, seeds] of knownSeeds) {
    print(`known issue "${kind}" in ${seeds.length} seeds (--strict fails them): ${seeds.slice(0, 20).join(" ")}${seeds.length > 20 ? " …" : ""}`);
  }
  print(`${passed} passed, ${failed} failed`);
  return { passed, failed };
}
