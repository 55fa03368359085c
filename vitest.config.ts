import { defineConfig } from "vitest/config";

/**
 * `npm run test:unit`: the pure and in-process tests (no child process, browser,
 * nginx or wrk), well under a minute on 2 busy cores. The long seed sweeps of the
 * simulation run in the full `npm test` only; test/sim/simulation.test.ts keeps a few seeds here.
 */
const unitTests = [
  "test/crdt/**/*.test.ts",
  "test/sim/{checkers,simulation,simulatedTransport}.test.ts",
  "test/cluster/{frameAuth,handshake,membership,messages,rateLimitedLog,replicatorSync,upgradeTicket}.test.ts",
  "test/cluster/{wsTransportLimits,wsTransportMitm}.test.ts",
  "test/node/{config,idempotencyStore,writtenStates}.test.ts",
  "test/api/hotKeys.test.ts",
  "test/harness/*.test.ts",
  "test/harness/chaos/{chaosLedger,chaosLoad,reducedService}.test.ts",
  "test/harness/net/*.test.ts",
  "test/deploy/{docs,kubernetes}.test.ts",
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ["default", "./test/support/passFailReporter.ts"],
    // `vitest run` runs both; every test file is in exactly one.
    projects: [
      { extends: true, test: { name: "unit", include: unitTests } },
      {
        extends: true,
        // Everything else: the tests that start compiled code under dist/ (built first if
        // stale), the seed sweeps and lint.
        test: { name: "slow", include: ["test/**/*.test.ts"], exclude: unitTests, globalSetup: ["./test/globalSetup.ts"] },
      },
    ],
  },
});
