// The issue tracker's checkout scenario (consistencyScenario.ts) against
// one real replica process: 1 item with stock 100, 1000 users with credit 1, 1000
// one-unit orders, 1000 checkouts with 100 in flight on fresh connections, then
// everything read back with no pause. One replica must show zero inconsistencies.
import { afterAll, describe, expect, it } from "vitest";
import { ReplicaFleet } from "../../support/replicaProcess.js";
import { type ScenarioReport, ScenarioSetupError, defaultScenarioOptions, runConsistencyScenario } from "./consistencyScenario.js";

const fleet = new ReplicaFleet();
afterAll(() => fleet.cleanup());

const seed = Number(process.env["TEST_SEED"] ?? 20240601);

/** The failed checks, readable in an assertion message. */
function failures(report: ScenarioReport): string[] {
  return report.checks
    .filter((check) => !check.ok)
    .map((check) => `${check.name}: expected ${check.expected}, got ${check.actual} ${check.examples.join("; ")}`);
}

describe("checkout consistency scenario, one replica", () => {
  it("gives exactly the stock's worth of successes and zero inconsistencies, twice in a row", async () => {
    const replica = await fleet.start();
    for (const [run, urls] of [[replica.url], [replica.url, replica.url]].entries()) {
      const report = await runConsistencyScenario({ ...defaultScenarioOptions, urls, seed: seed + run });
      expect(failures(report)).toEqual([]);
      expect(report.inconsistencies).toBe(0);
      expect(report.expectedSuccesses).toBe(100);
      expect(report.checkouts).toMatchObject({ total: 1000, ok2xx: 100, client4xx: 900, server5xx: 0, otherStatus: 0, timeouts: 0, errors: 0 });
      expect(report.stock).toBe(0);
      expect(report.creditsSum).toBe(900);
      expect(report.paidOrders).toBe(100);
      expect(report.checkoutLatency.count).toBe(1000);
    }
  });

  it("expects fewer successes when fewer distinct users than stock, and still checks out", async () => {
    const replica = await fleet.start();
    const report = await runConsistencyScenario({ ...defaultScenarioOptions, urls: [replica.url], users: 20, orders: 200, seed });
    expect(failures(report)).toEqual([]);
    expect(report.expectedSuccesses).toBe(report.distinctUsers);
    expect(report.checkouts.ok2xx).toBe(report.distinctUsers);
    expect(report.stock).toBe(100 - report.distinctUsers);
    expect(report.creditsSum).toBe(20 - report.distinctUsers);
  });

  it("throws a setup error, not a report, when the shop cannot be reached", async () => {
    const replica = await fleet.start();
    await replica.stop();
    await expect(runConsistencyScenario({ ...defaultScenarioOptions, urls: [replica.url], seed, timeoutMs: 2_000 })).rejects.toBeInstanceOf(ScenarioSetupError);
  });
});
