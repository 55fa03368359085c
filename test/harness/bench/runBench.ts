// The benchmark (`npm run bench`, scripts/bench.ts): the shop's checkout under wrk, against plain fastify in the
// same run. It starts (and at the end, on an error or on Ctrl-C, stops) plain
// fastify, a 1-replica and a 3-replica cluster (scripts/startCluster.ts), each on
// free ports with data in a temporary folder, and measures for each cluster:
// - the course's init (three batch_init calls), each timed, and the time until
//   the cluster is idle after it;
// - wrk load per mode: fresh (each order once, shuffled), course (random orders
//   with repeats, like the course's locust file), contention (few items, little
//   stock, one-unit orders: the successes must equal the stock);
// - latency percentiles, status counts, rate and its ratio to plain fastify, CPU
//   per checkout (from /proc), RSS per replica after init and after the load;
// - the time a replica takes to answer again after kill -9 (the launcher restarts it).
// Progress goes to stderr.
// Needs wrk (apt-get install -y wrk) and Linux (/proc).
import { writeFile, mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { type QuietOptions, msUntilQuiet } from "./cpuQuiet.js";
import { type ClusterUnderTest, clusterPids, installStopOnSignals, replicaPidsById, startBaseline, startCluster, stopAll, stopProcess } from "./processes.js";
import { cpuMsSum, rssMiB } from "./procStats.js";
import { type BenchResult, type ClusterResult, type ContentionCheck, type ModeName, type ModeResult } from "./report.js";
import { type ContentionShape, contentionInit, courseInit, stockSum, waitForOk } from "./shop.js";
import { type WrkResult, type WrkSettings, checkWrkInstalled, runWrk, wrkVersion } from "./wrk.js";

export interface BenchSettings {
  readonly n: number;
  readonly wrk: WrkSettings;
  readonly modes: readonly ModeName[];
  readonly replicas: readonly number[];
  readonly contention: ContentionShape;
  readonly idle: QuietOptions;
  /** After the load, longest wait for the cluster to be idle again. */
  readonly settleWaitMsMax: number;
  readonly smoke: boolean;
}

const startedMs = performance.now();
function progress(message: string): void {
  console.error(`[bench ${((performance.now() - startedMs) / 1000).toFixed(1)} s] ${message}`);
}

function rssByReplica(cluster: ClusterUnderTest): Record<string, number> {
  return Object.fromEntries(cluster.replicas.map((replica) => [replica.id, rssMiB(replica.pid) ?? Number.NaN]));
}

async function measurePlainFastify(settings: BenchSettings): Promise<BenchResult["plainFastify"]> {
  const server = await startBaseline();
  try {
    progress(`plain fastify at ${server.url}: wrk ${settings.wrk.seconds} s`);
    const cpuBefore = cpuMsSum([server.pid]);
    const wrk = await runWrk(server.url, { kind: "course", orders: settings.n }, settings.wrk);
    const cpuMsPerRequest = (cpuMsSum([server.pid]) - cpuBefore) / Math.max(1, wrk.answers);
    progress(`plain fastify: ${wrk.answersPerSecond.toFixed(0)} req/s, p99 ${wrk.latencyMs.p99.toFixed(2)} ms`);
    return { wrk, requestsPerSecond: wrk.answersPerSecond, cpuMsPerRequest };
  } finally {
    await stopProcess(server.child);
  }
}

async function checkContention(cluster: ClusterUnderTest, shape: ContentionShape, wrk: WrkResult): Promise<ContentionCheck> {
  const stockTotal = shape.items * shape.stockPerItem;
  const stockLeftByReplica: Record<string, number> = {};
  for (const replica of cluster.replicas) stockLeftByReplica[replica.id] = await stockSum(replica.url, shape.items);
  const reasons: string[] = [];
  if (wrk.ok2xx !== stockTotal) reasons.push(`${wrk.ok2xx} successes for ${stockTotal} units of stock`);
  const left = Object.entries(stockLeftByReplica).filter(([, stock]) => stock !== 0);
  if (left.length > 0) reasons.push(`stock left: ${left.map(([id, stock]) => `${id} ${stock}`).join(", ")}`);
  if (wrk.server5xx > 0) reasons.push(`${wrk.server5xx} answers 5xx`);
  const errors = wrk.socketErrors.connect + wrk.socketErrors.read + wrk.socketErrors.write + wrk.socketErrors.timeout;
  if (errors > 0) reasons.push(`${errors} socket errors (outcomes unknown)`);
  if (!wrk.ranOutOfOrders && left.length > 0) reasons.push("not every order was tried: raise --seconds");
  return { stockTotal, successes: wrk.ok2xx, stockLeftByReplica, pass: reasons.length === 0, reasons };
}

/** Sets the cluster up for `mode` and returns where wrk's order ids come from. */
async function prepareMode(mode: ModeName, cluster: ClusterUnderTest, settings: BenchSettings, workDirectory: string, needsCourseInit: boolean) {
  if (mode === "contention") {
    const orderIds = await contentionInit(cluster.url, settings.contention);
    const file = join(workDirectory, `contention-orders-${cluster.replicas.length}.txt`);
    await writeFile(file, `${orderIds.join("\n")}\n`);
    return { kind: "list", file } as const;
  }
  if (needsCourseInit) await courseInit(cluster.url, settings.n);
  return { kind: mode, orders: settings.n } as const;
}

async function measureMode(
  mode: ModeName,
  cluster: ClusterUnderTest,
  settings: BenchSettings,
  workDirectory: string,
  needsCourseInit: boolean,
  baselineRate: number,
): Promise<ModeResult> {
  const label = `${cluster.replicas.length} replica(s), ${mode}`;
  const setupStarted = performance.now();
  const pick = await prepareMode(mode, cluster, settings, workDirectory, needsCourseInit);
  const setupMs = performance.now() - setupStarted;
  const quietMs = await msUntilQuiet(() => clusterPids(cluster), performance.now(), settings.idle);
  const setup = setupMs < 1 ? "no set-up (the init above)" : `set up in ${(setupMs / 1000).toFixed(2)} s`;
  progress(`${label}: ${setup}, idle ${quietMs === null ? "never" : `after ${(quietMs / 1000).toFixed(2)} s`}; wrk ${settings.wrk.seconds} s`);
  const cpuBefore = cpuMsSum(clusterPids(cluster));
  const wrk = await runWrk(cluster.url, pick, settings.wrk);
  const loadEnded = performance.now();
  const cpuLoad = cpuMsSum(clusterPids(cluster)) - cpuBefore;
  const settleMs = await msUntilQuiet(() => clusterPids(cluster), loadEnded, { ...settings.idle, waitMsMax: settings.settleWaitMsMax });
  const cpuSettle = cpuMsSum(clusterPids(cluster)) - cpuBefore;
  const contention = mode === "contention" ? await checkContention(cluster, settings.contention, wrk) : null;
  const checkouts = Math.max(1, wrk.answers);
  progress(
    `${label}: ${wrk.answersPerSecond.toFixed(0)} checkouts/s, p99 ${wrk.latencyMs.p99.toFixed(1)} ms, 2xx ${wrk.ok2xx} 4xx ${wrk.client4xx} 5xx ${wrk.server5xx}` +
      (contention === null ? "" : `, contention check ${contention.pass ? "pass" : `FAIL (${contention.reasons.join("; ")})`}`),
  );
  return {
    mode,
    setupMs,
    wrk,
    checkoutsPerSecond: wrk.answersPerSecond,
    ratioToPlainFastify: wrk.answersPerSecond / baselineRate,
    cpuMsPerCheckout: cpuLoad / checkouts,
    cpuMsPerCheckoutWithSettle: settleMs === null ? null : cpuSettle / checkouts,
    settleMs,
    contention,
  };
}

/** kill -9 the first replica and time until it answers 200 on its own port again. */
async function measureRestart(cluster: ClusterUnderTest): Promise<ClusterResult["restart"]> {
  const victim = cluster.replicas[0]!;
  const killedMs = performance.now();
  process.kill(victim.pid, "SIGKILL");
  const ms = await waitForOk(victim.url, "/stock/find/0", killedMs, 60_000);
  const newPid = replicaPidsById(cluster.launcherPid).get(victim.id);
  if (newPid !== undefined) victim.pid = newPid;
  progress(`${cluster.replicas.length} replica(s): ${victim.id} answered again ${ms === null ? "never (60 s)" : `${(ms / 1000).toFixed(2)} s`} after kill -9`);
  return { replica: victim.id, ms };
}

async function measureCluster(replicaCount: number, settings: BenchSettings, workDirectory: string, baselineRate: number): Promise<ClusterResult> {
  progress(`starting a ${replicaCount}-replica cluster`);
  const cluster = await startCluster(replicaCount, join(workDirectory, `cluster-${replicaCount}`));
  try {
    progress(`${replicaCount} replica(s) at ${cluster.url}: course init, n = ${settings.n}`);
    const init = await courseInit(cluster.url, settings.n);
    const initEnded = performance.now();
    const rssMiBAfterInit = rssByReplica(cluster);
    const idleAfterInitMs = await msUntilQuiet(() => clusterPids(cluster), initEnded, settings.idle);
    progress(
      `${replicaCount} replica(s): init stock ${init.stockMs.toFixed(0)} ms, payment ${init.paymentMs.toFixed(0)} ms, orders ${init.ordersMs.toFixed(0)} ms; ` +
        `idle ${idleAfterInitMs === null ? "never" : `after ${(idleAfterInitMs / 1000).toFixed(2)} s`}`,
    );
    const modes: ModeResult[] = [];
    for (const mode of settings.modes) {
      modes.push(await measureMode(mode, cluster, settings, workDirectory, modes.length > 0, baselineRate));
    }
    const rssMiBAfterLoad = rssByReplica(cluster);
    const restart = await measureRestart(cluster);
    return { replicas: replicaCount, init, idleAfterInitMs, rssMiBAfterInit, rssMiBAfterLoad, modes, restart };
  } finally {
    await stopProcess(cluster.launcher);
  }
}

/** Measures plain fastify, then each cluster size; stops every process it started, also on an error. */
export async function runBench(settings: BenchSettings): Promise<BenchResult> {
  checkWrkInstalled();
  const startedAt = new Date().toISOString();
  const loadAverageAtStart = loadavg();
  const workDirectory = await mkdtemp(join(tmpdir(), "shop-bench-"));
  installStopOnSignals(() => rm(workDirectory, { recursive: true, force: true }));
  try {
    const plainFastify = await measurePlainFastify(settings);
    const clusters: ClusterResult[] = [];
    for (const replicaCount of settings.replicas) {
      clusters.push(await measureCluster(replicaCount, settings, workDirectory, plainFastify.requestsPerSecond));
    }
    const result: BenchResult = {
      settings: {
        n: settings.n,
        seconds: settings.wrk.seconds,
        threads: settings.wrk.threads,
        connections: settings.wrk.connections,
        modes: settings.modes,
        replicas: settings.replicas,
        smoke: settings.smoke,
        contention: settings.contention,
        idle: { coreFractionMax: settings.idle.coreFractionMax, windowMs: settings.idle.windowMs },
        wrkVersion: wrkVersion(),
        nodeVersion: process.versions.node,
        cpus: cpus().length,
        loadAverageAtStart,
        startedAt,
      },
      plainFastify,
      clusters,
      totalMs: performance.now() - startedMs,
    };
    progress("done");
    return result;
  } finally {
    await stopAll();
    await rm(workDirectory, { recursive: true, force: true });
  }
}
