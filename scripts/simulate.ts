// Deterministic simulation of whole clusters (test/sim/): many seeds for a nightly
// run, or one seed to replay a failure.
//
//   node dist/scripts/simulate.js [--seeds 10000] [--from 1] [--size large] [--transitive] [--strict] [--weights leave=20]
//   node dist/scripts/simulate.js --seed N [--size small] [--transitive] [--strict] [--weights leave=20]
//
// Prints each failing seed's report and, last, `N passed, N failed`. Exit code 0
// only if every seed passed; 2 on bad flags.
import { runSeedRange } from "../test/harness/simulate/seedRange.js";
import { defaultFaultWeights } from "../test/sim/nemesis.js";
import { runSeed } from "../test/sim/simulation.js";
import { type FlagReader, flagReader, parseFlags } from "./cliFlags.js";

const usage = `usage: node dist/scripts/simulate.js [options]
  --seeds N       run seeds from..from+N-1 (default 1000)
  --from N        first seed (default 1)
  --size S        small (the CI's size) or large (default): chaos length, clients, faults
  --seed N        run this one seed and print its report (replay)
  --gossip        run membership gossip in every seed (default: 1 seed in 20); only
                  seeds with gossip have a replica leave, or new ones join
  --transitive    check reads strictly while replicas reach each other over any path
                  of links, not only directly (shows the bridge-partition gap)
  --strict        fail seeds that show a known issue instead of counting them:
                  "gap", replicas that differ after heal and quiet time until
                  every link reconnects; "stranded", rights held by a replica
                  that left for good
  --weights K=N,… fault weights instead of the defaults, e.g. join=20,leave=5 or crash=0,wipe=0
                  (kinds: ${Object.keys(defaultFaultWeights).join(", ")})
  --help`;

const flags: FlagReader = flagReader(usage);

const values = parseFlags(
  {
    seeds: { type: "string" },
    from: { type: "string" },
    seed: { type: "string" },
    transitive: { type: "boolean" },
    gossip: { type: "boolean" },
    size: { type: "string" },
    strict: { type: "boolean" },
    weights: { type: "string" },
    help: { type: "boolean" },
  },
  usage,
);
const size = values.size ?? "large";
if (size !== "small" && size !== "large") flags.fail(`--size must be small or large, got "${size}"`);
const options = {
  size,
  transitive: values.transitive === true,
  strict: values.strict === true,
  ...(values.gossip === true ? { gossip: true } : {}),
  ...(values.weights !== undefined ? { faultWeights: faultWeightsFlag(values.weights) } : {}),
} as const;

/** "leave=20,crash=0" → { leave: 20, crash: 0 }, each kind known and each weight an integer >= 0. */
function faultWeightsFlag(text: string): Record<string, number> {
  const weights: Record<string, number> = {};
  for (const part of text.split(",")) {
    const [kind = "", weight] = part.split("=");
    if (!(kind in defaultFaultWeights)) flags.fail(`--weights: unknown fault kind "${kind}"`);
    weights[kind] = flags.integerFlag(`weights ${kind}`, weight ?? "", 0, 0);
  }
  return weights;
}

if (values.seed !== undefined) {
  const seed = flags.integerFlag("seed", values.seed, 0, 0);
  const result = await runSeed(seed, options);
  const { events, operations, virtualMs } = result.stats;
  console.log(
    `seed ${seed}: ${result.ok ? "passed" : "FAILED"} (${operations} operations, ${events} events, ${virtualMs.toFixed(0)} virtual ms, fingerprint ${result.fingerprint.slice(0, 16)})`,
  );
  console.log(result.report);
  console.log(`${result.ok ? 1 : 0} passed, ${result.ok ? 0 : 1} failed`);
  process.exit(result.ok ? 0 : 1);
}

const count = flags.integerFlag("seeds", values.seeds, 1000, 1);
const from = flags.integerFlag("from", values.from, 1, 0);
const { failed } = await runSeedRange(
  from,
  count,
  options,
  (line) => console.log(line),
  (line) => console.error(line),
);
process.exit(failed === 0 ? 0 : 1);
