// Chaos run from the command line: a local 3-replica cluster whose peer links all
// pass through a TCP fault proxy, under load, one fault at a time, then checks of
// G1-G6 (test/harness/chaos/runChaos.ts says what each fault does and checks).
//
//   npx tsc -p . && node dist/scripts/chaos.js [--fault-seconds 8] [--seed N]
//     [--faults isolate,bridge,kill,wipe,pause,join] [--concurrency 24] [--orders 3000]
//
// It starts (and stops) its own cluster on free ports: faults need the processes
// and their links, so --replicas-urls accepts only "none". Prints one table row per fault and
// exits 0 only if every check of every fault holds (1 otherwise, 2 on bad flags).
import { randomInt } from "node:crypto";
import { parseArgs } from "node:util";
import { stuckAfterMsBoundsDefault, workersPerShareMax } from "../test/harness/chaos/chaosLoad.js";
import { type ChaosOptions, type FaultName, defaultChaosOptions, faultNames } from "../test/harness/chaos/chaosOptions.js";
import { formatDetails, formatTable } from "../test/harness/chaos/chaosReport.js";
import { runChaos } from "../test/harness/chaos/runChaos.js";
import { type FlagReader, flagReader } from "./cliFlags.js";

const usage = `usage: node dist/scripts/chaos.js [options]
  --fault-seconds N   how long each fault lasts under load (default ${defaultChaosOptions.faultSeconds})
  --seed N            seed of the load and of the scenario runs (default: random)
  --faults LIST       comma-separated, of ${faultNames.join(",")} (default: all, in that order)
                      pause: SIGSTOP of r3 for 3/4 of the fault, then SIGCONT
                      join: a new replica r4 joins through r1's peer port (--join),
                      takes load once it serves, and leaves after the checks
  --concurrency N     load workers, dealt over the replicas; one whose request is stuck
                      (4x the median answer time, ${stuckAfterMsBoundsDefault.join("-")} ms) is replaced,
                      up to ${workersPerShareMax}x (default ${defaultChaosOptions.concurrency})
  --orders N          orders batch_init'ed per fault; each is checked out at most once (default ${defaultChaosOptions.shape.orders})
  --replicas-urls none
                      the only value: the run starts its own replicas (faults need the processes)
  --help`;

const flags: FlagReader = flagReader(usage);

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        "fault-seconds": { type: "string" },
        seed: { type: "string" },
        faults: { type: "string" },
        concurrency: { type: "string" },
        orders: { type: "string" },
        "replicas-urls": { type: "string" },
        help: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    flags.fail(error instanceof Error ? error.message : String(error));
  }
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  if (values["replicas-urls"] !== undefined && values["replicas-urls"] !== "none") {
    flags.fail('--replicas-urls: only "none"; a chaos run starts its own replicas, since it must cut their links and kill them');
  }
  const faults = (values.faults ?? faultNames.join(",")).split(",").map((name) => name.trim());
  for (const name of faults) if (!faultNames.includes(name as FaultName)) flags.fail(`unknown fault "${name}"`);
  const seed = flags.integerFlag("seed", values.seed, randomInt(0, 2 ** 31), 0);
  const options: ChaosOptions = {
    ...defaultChaosOptions,
    faults: faults as FaultName[],
    faultSeconds: flags.integerFlag("fault-seconds", values["fault-seconds"], defaultChaosOptions.faultSeconds, 1),
    concurrency: flags.integerFlag("concurrency", values.concurrency, defaultChaosOptions.concurrency, 1),
    shape: { ...defaultChaosOptions.shape, orders: flags.integerFlag("orders", values.orders, defaultChaosOptions.shape.orders, 1) },
    seed,
    log: (line) => console.log(`[chaos ${new Date().toISOString().slice(11, 23)}] ${line}`),
  };
  // Ctrl-C or a kill: exit through process.exit, so the "exit" hook kills the replicas.
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));
  console.log(`chaos run, seed ${seed}, faults ${options.faults.join(",")}, ${options.faultSeconds} s each`);
  const report = await runChaos(options);
  console.log(`\n${formatTable(report)}\n\n${formatDetails(report)}`);
  process.exit(report.ok ? 0 : 1);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});
