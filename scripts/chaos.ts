// Chaos run: a local 3-replica cluster whose peer links all pass through our TCP
// fault proxy (faultProxy.ts), under a steady mixed load (chaosLoad.ts), with one
// fault at a time:
//   isolate  r1 cut off from r2 and r3 (black hole: only the 3 s silence check notices)
//   bridge   r1–r3 reset and cut, r1–r2 and r2–r3 up (a split that is not a clean cut)
//   kill     kill -9 of r2 while it has a checkout in flight, restarted on its folder
//   wipe     kill -9 of r3 mid-checkout, restarted on an empty folder (fresh incarnation)
//   pause    r3 frozen (SIGSTOP) for 3/4 of the fault, then thawed (SIGCONT): a silent
//            peer whose sockets stay open (only the silence check notices)
// Each fault: fresh batch_init'ed shop, load, the fault for --fault-seconds under
// load, heal, stop the load, then check:
//   - every replica reads identical values (polled; the time from heal is reported);
//   - the ledger (chaosLedger.ts): no acknowledged write lost or invented, nothing
//     negative, no 5xx (G1, G2, G4);
//   - the side cut off kept serving reads, increments and decrements (G5);
//   - a consistency scenario run over all replicas (consistencyScenario.ts) finds
//     zero inconsistencies.
// And it measures the seconds of reduced service at the replicas that stayed up
// (chaosReducedService.ts): 100 ms buckets of their 2xx answers during the fault
// below half the median bucket before it.
//
//   npx tsc -p . && node dist/scripts/chaos.js [--fault-seconds 8] [--seed N]
//     [--faults isolate,bridge,kill,wipe,pause] [--concurrency 24] [--orders 3000]
//
// It starts (and stops) its own cluster on free ports: faults need the processes
// and their links, so --replicas-urls accepts only "none". Prints one table row per fault and
// exits 0 only if every check of every fault holds (1 otherwise, 2 on bad flags).
import { randomInt } from "node:crypto";
import { realpathSync } from "node:fs";
import { Agent, get as httpGet } from "node:http";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ChaosCluster, clusterView, defaultMainScriptPath, sleep } from "./chaosCluster.js";
import { type AgreedState, type LedgerReport, type OrderRead, checkLedger } from "./chaosLedger.js";
import { ChaosLoad, type OpKind, type OpRecord, type ShopShape, stuckAfterMsBoundsDefault, workersPerShareMax } from "./chaosLoad.js";
import { type ScenarioReport, runConsistencyScenario } from "./consistencyScenario.js";
import { type ReducedService, bucketsAround, reducedServiceOf } from "./chaosReducedService.js";
import { type HttpOutcome, runPool, send } from "./httpClient.js";
import { type FlagReader, flagReader } from "./cliFlags.js";

export type FaultName = "isolate" | "bridge" | "kill" | "wipe" | "pause";
export const faultNames: readonly FaultName[] = ["isolate", "bridge", "kill", "wipe", "pause"];
const replicaIds = ["r1", "r2", "r3"] as const;

export interface ChaosOptions {
  readonly faults: readonly FaultName[];
  /** How long each fault lasts, under load. */
  readonly faultSeconds: number;
  /** Load before each fault (3 s more before the first), with every link up; its last second is the baseline of the reduced service. */
  readonly warmupSeconds: number;
  readonly seed: number;
  /** Load workers, dealt over the replicas; a stuck request's worker is replaced (chaosLoad.ts). */
  readonly concurrency: number;
  readonly shape: ShopShape;
  /** Bound on each load request; past it the outcome is unknown. */
  readonly requestTimeoutMs: number;
  /** Bound on the time from heal until every replica reads the same values. */
  readonly convergeWaitMsMax: number;
  /** The consistency scenario run after each fault. */
  readonly scenario: { readonly itemsStock: number; readonly users: number; readonly orders: number; readonly concurrency: number };
  readonly mainScriptPath: string;
  /** Flags for every replica. */
  readonly replicaArgs: readonly string[];
  /** Progress lines. */
  readonly log: (line: string) => void;
}

export const defaultChaosOptions: Omit<ChaosOptions, "seed" | "log"> = {
  faults: faultNames,
  faultSeconds: 8,
  warmupSeconds: 2,
  concurrency: 24,
  shape: { items: 20, itemStock: 150, users: 100, userCredit: 40, orders: 3000 },
  requestTimeoutMs: 10_000,
  convergeWaitMsMax: 30_000,
  scenario: { itemsStock: 100, users: 1000, orders: 1000, concurrency: 50 },
  mainScriptPath: defaultMainScriptPath,
  replicaArgs: [],
};

export interface Served {
  ok2xx: number;
  client4xx: number;
  server5xx: number;
  unknown: number;
  /** Connections refused (the replica was down): no request was sent. */
  refused: number;
}

export interface SideReport {
  readonly label: string;
  readonly served: Served;
}

export interface FaultReport {
  readonly fault: FaultName;
  readonly description: string;
  /** Requests that ended during the fault, per side of it. */
  readonly sides: readonly SideReport[];
  /** The replicas that stayed up (not cut off, frozen, killed or wiped), e.g. "r2+r3". */
  readonly survivors: string;
  /** Their seconds of reduced service during the fault (chaosReducedService.ts). */
  readonly reducedService: ReducedService;
  /** Their 2xx answers per bucket during the fault, the series the measure is taken on. */
  readonly survivorBuckets: readonly number[];
  /** Their 2xx answers per bucket in the baseline window, the last second before the fault. */
  readonly baselineBuckets: readonly number[];
  /** G5 checks: replica -> kinds of requests it answered 2xx during the fault. */
  readonly availability: readonly { readonly replicaId: string; readonly reads: number; readonly increments: number; readonly decrements: number }[];
  readonly faultMs: number;
  /** When the replicas showed the cut links down (partition faults only). */
  readonly detections: readonly Detection[];
  /** From heal until every replica read the same values; null if they never did within the bound. */
  readonly convergeMs: number | null;
  readonly convergePolls: number;
  readonly ledger: LedgerReport | null;
  readonly scenario: ScenarioReport | null;
  /** Every violation found, readable; the table's inconsistencies is their count plus the scenario's. */
  readonly problems: readonly string[];
  readonly inconsistencies: number;
  readonly notes: readonly string[];
}

export interface ChaosReport {
  readonly options: Omit<ChaosOptions, "log">;
  readonly faults: readonly FaultReport[];
  readonly totalMs: number;
  readonly ok: boolean;
}

interface FaultPlan {
  readonly description: string;
  /** Sides of the fault for the served counts, as replica indexes. */
  readonly sides: readonly (readonly number[])[];
  /** Replicas that must answer reads, increments and decrements during the fault (G5). */
  readonly mustServe: readonly number[];
  /** Replicas that stay up (not cut off, frozen, killed or wiped): their reduced service is measured. */
  readonly survivors: readonly number[];
  /** Runs the fault from its start to its heal; notes go to the report. */
  run(context: FaultContext): Promise<void>;
}

interface FaultContext {
  readonly cluster: ChaosCluster;
  readonly load: ChaosLoad;
  readonly shape: ShopShape;
  readonly faultMs: number;
  note(text: string): void;
  /** A replica's view of a cut link: when (ms after the cut) it first showed the link down. */
  detected(detection: Detection): void;
}

export interface Detection {
  readonly replicaId: string;
  readonly peerId: string;
  /** When it first showed the link lagging or down (its replies stop waiting for the peer); null if never. */
  readonly laggingAfterMs: number | null;
  /** Null if the replica still showed the link up when the fault ended. */
  readonly downAfterMs: number | null;
}

/**
 * Polls each replica's GET /cluster until it shows its link to `peerId` down, for
 * at most `waitMs`; notes when it first showed the link lagging too.
 */
async function watchCutLinks(context: FaultContext, pairs: readonly (readonly [string, string])[], waitMs: number): Promise<void> {
  const started = performance.now();
  const pending = new Map(pairs.map(([replicaId, peerId]) => [`${replicaId}>${peerId}`, { replicaId, peerId, laggingAfterMs: null as number | null }]));
  while (pending.size > 0 && performance.now() - started < waitMs) {
    for (const [key, watched] of [...pending]) {
      const view = await clusterView(context.cluster.replica(watched.replicaId).url);
      const link = view?.peers.find((peer) => peer.replicaId === watched.peerId);
      if (link === undefined) continue;
      const sinceMs = performance.now() - started;
      if (watched.laggingAfterMs === null && (link.lagging || !link.up)) watched.laggingAfterMs = sinceMs;
      if (!link.up) {
        pending.delete(key);
        context.detected({ ...watched, downAfterMs: sinceMs });
      }
    }
    await sleep(100);
  }
  for (const watched of pending.values()) context.detected({ ...watched, downAfterMs: null });
}

const plans: Readonly<Record<FaultName, FaultPlan>> = {
  isolate: {
    description: "r1 cut off from r2, r3 (black hole)",
    sides: [[0], [1, 2]],
    mustServe: [0, 1, 2],
    survivors: [1, 2],
    async run(context) {
      context.cluster.proxy.isolate("r1");
      const pairs = [["r1", "r2"], ["r1", "r3"], ["r2", "r1"], ["r3", "r1"]] as const;
      await Promise.all([sleep(context.faultMs), watchCutLinks(context, pairs, context.faultMs - 100)]);
      context.cluster.proxy.healAll();
    },
  },
  bridge: {
    description: "r1–r3 reset+cut, r2 bridges",
    sides: [[0], [1], [2]],
    mustServe: [0, 1, 2],
    survivors: [0, 1, 2],
    async run(context) {
      context.cluster.proxy.resetBetween("r1", "r3");
      context.cluster.proxy.cutBetween("r1", "r3");
      const pairs = [["r1", "r3"], ["r3", "r1"]] as const;
      await Promise.all([sleep(context.faultMs), watchCutLinks(context, pairs, context.faultMs - 100)]);
      context.cluster.proxy.healAll();
    },
  },
  kill: {
    description: "kill -9 r2 mid-checkout, restart on its folder",
    sides: [[1], [0, 2]],
    mustServe: [0, 2],
    survivors: [0, 2],
    async run(context) {
      const started = performance.now();
      await killMidCheckout(context, 1);
      await sleep(context.faultMs / 2 - (performance.now() - started));
      const replica = await context.cluster.restart("r2", "same");
      context.note(`r2 restarted on its folder after ${Math.round(performance.now() - started)} ms, incarnation ${replica.incarnation} (same: ${replica.incarnations.length === 2 && replica.incarnations[0] === replica.incarnation})`);
      await Promise.all([probeAfterRestart(context, "r2"), sleep(context.faultMs - (performance.now() - started))]);
    },
  },
  wipe: {
    description: "kill -9 r3, restart on an empty folder",
    sides: [[2], [0, 1]],
    mustServe: [0, 1],
    survivors: [0, 1],
    async run(context) {
      const started = performance.now();
      await killMidCheckout(context, 2);
      const replica = await context.cluster.restart("r3", "empty");
      const previous = replica.incarnations.at(-2);
      context.note(`r3 restarted on an empty folder after ${Math.round(performance.now() - started)} ms: incarnation ${previous} -> ${replica.incarnation}`);
      await Promise.all([probeAfterRestart(context, "r3"), sleep(context.faultMs - (performance.now() - started))]);
    },
  },
  pause: {
    description: "r3 frozen (SIGSTOP), thawed at 3/4",
    sides: [[2], [0, 1]],
    mustServe: [0, 1],
    survivors: [0, 1],
    async run(context) {
      const started = performance.now();
      const pausedMs = Math.round((context.faultMs * 3) / 4);
      const inFlight = context.load.inFlightAt(2);
      context.cluster.pause("r3");
      try {
        await sleep(stopSeenWaitMs);
        context.note(`r3 frozen (SIGSTOP) with ${inFlight} request(s) in flight; process state ${context.cluster.processState("r3") ?? "unknown"}`);
        const pairs = [["r1", "r3"], ["r2", "r3"]] as const;
        await Promise.all([sleep(pausedMs - stopSeenWaitMs), watchCutLinks(context, pairs, pausedMs - stopSeenWaitMs - 100)]);
      } finally {
        context.cluster.resume("r3");
      }
      const stuck = context.load.inFlightAt(2);
      context.note(`r3 thawed (SIGCONT) after ${Math.round(performance.now() - started)} ms with ${stuck} load request(s) waiting on it; process state ${context.cluster.processState("r3") ?? "unknown"}`);
      await sleep(context.faultMs - (performance.now() - started));
    },
  },
};

/** After SIGSTOP, before reading the process state (the signal is delivered asynchronously). */
const stopSeenWaitMs = 50;
/** The width of the buckets of 2xx answers the reduced service is measured on. */
const serviceBucketMs = 100;
/** The baseline of the reduced service: the 2xx answers of this last part of the warm-up. */
const baselineWindowMs = 1_000;
/** The first fault's warm-up is this much longer: the replicas' code is still cold. */
const firstWarmupExtraMs = 3_000;

/**
 * Reads every item and user at a replica the moment it serves again after a
 * restart. They all exist (batch_init'ed before the fault, acknowledged by every
 * replica), so a 404 is a stale read while the peers were reachable (G6). Only
 * reported in the notes: see the report of the chaos run for the bug.
 */
async function probeAfterRestart({ cluster, shape, note }: FaultContext, replicaId: string): Promise<void> {
  const url = cluster.replica(replicaId).url;
  const paths = [
    ...Array.from({ length: shape.items }, (_, index) => `/stock/find/${index}`),
    ...Array.from({ length: shape.users }, (_, index) => `/payment/find_user/${index}`),
  ];
  const started = performance.now();
  const statuses = new Map<string, number>();
  await runPool(paths.length, 8, async (index) => {
    const outcome = await send(url, "GET", paths[index]!, 5_000);
    const status = outcome.kind === "answer" ? String(outcome.status) : outcome.kind;
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
  });
  const summary = [...statuses].map(([status, count]) => `${count}× ${status}`).join(", ");
  note(`G6 probe: ${replicaId}'s reads of the ${paths.length} existing items and users right after it served again (${Math.round(performance.now() - started)} ms): ${summary}`);
}

/** Waits (up to 2 s) until the replica has a checkout in flight, then SIGKILLs it in the same tick. */
async function killMidCheckout({ cluster, load, note }: FaultContext, replicaIndex: number): Promise<void> {
  const replicaId = replicaIds[replicaIndex]!;
  const deadline = performance.now() + 2_000;
  while (load.inFlight(replicaIndex, "checkout") === 0 && performance.now() < deadline) await sleep(1);
  const checkouts = load.inFlight(replicaIndex, "checkout");
  const others = load.inFlightAt(replicaIndex) - checkouts;
  cluster.killNow(replicaId);
  await cluster.replica(replicaId).exited;
  note(`${replicaId} killed (SIGKILL) with ${checkouts} checkout(s) and ${others} other request(s) in flight`);
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const runStarted = performance.now();
  const cluster = await ChaosCluster.start({ replicaIds, mainScriptPath: options.mainScriptPath, extraArgs: options.replicaArgs });
  const reports: FaultReport[] = [];
  try {
    options.log(`cluster up: ${cluster.replicas.map((r) => `${r.replicaId} ${r.url} (peer port ${r.peerPort})`).join(", ")}; peer links via proxy`);
    for (const [index, fault] of options.faults.entries()) {
      const report = await runFault(cluster, options, fault, index);
      reports.push(report);
      options.log(`${fault}: ${report.inconsistencies} inconsistencies, converged in ${report.convergeMs === null ? "-" : `${Math.round(report.convergeMs)} ms`}`);
    }
  } catch (error) {
    options.log(`aborted: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n${cluster.output()}`);
    throw error;
  } finally {
    await cluster.close();
  }
  const ok = reports.length === options.faults.length && reports.every((report) => report.inconsistencies === 0);
  const { log: _log, ...rest } = options;
  return { options: rest, faults: reports, totalMs: performance.now() - runStarted, ok };
}

/** Violations found in one fault: a readable line each (some stand for many), and their count. */
class Findings {
  readonly problems: string[] = [];
  count = 0;

  add(text: string, violations = 1): void {
    this.problems.push(text);
    this.count += violations;
  }
}

async function runFault(cluster: ChaosCluster, options: ChaosOptions, fault: FaultName, index: number): Promise<FaultReport> {
  const plan = plans[fault];
  const findings = new Findings();
  const notes: string[] = [];
  const detections: Detection[] = [];
  await cluster.waitForMesh(options.convergeWaitMsMax);
  const linksBefore = cluster.proxy.stats();
  const crashesBefore = cluster.crashes.length;
  const troubleBefore = cluster.troubleLines.length;
  await setUpShop(cluster, options.shape, index % replicaIds.length, findings);
  const load = new ChaosLoad({
    urls: () => cluster.urls,
    shape: options.shape,
    concurrency: options.concurrency,
    seed: options.seed + index,
    timeoutMs: options.requestTimeoutMs,
  });
  options.log(`${fault}: ${plan.description}; warm-up ${options.warmupSeconds} s, fault ${options.faultSeconds} s`);
  load.start();
  let faultStartMs = 0;
  let healMs = 0;
  try {
    await sleep(options.warmupSeconds * 1000 + (index === 0 ? firstWarmupExtraMs : 0));
    faultStartMs = load.now();
    await plan.run({
      cluster,
      load,
      shape: options.shape,
      faultMs: options.faultSeconds * 1000,
      note: (text) => notes.push(text),
      detected: (detection) => detections.push(detection),
    });
    healMs = load.now();
  } finally {
    await load.stop();
  }
  notes.push(`load: ${load.records.length} requests, ${options.shape.orders - load.ordersLeft} of ${options.shape.orders} orders sent to checkout; workers at most ${load.workersPeak.map((peak, i) => `${replicaIds[i]} ${peak}`).join(", ")} (more than the share replace stuck requests)`);
  const touchedOrders = [...new Set(load.records.filter((record) => record.kind === "checkout").map((record) => record.id))];
  const { agreed, convergeMs, polls, differences } = await waitForAgreement(cluster, options, touchedOrders, () => load.now() - healMs);
  if (agreed === null) findings.add(`replicas did not read identical values within ${options.convergeWaitMsMax} ms after heal: ${differences.join("; ")} (G3)`);
  const ledger = agreed === null ? null : checkLedger(options.shape, load.records, agreed);
  if (ledger !== null && ledger.violations > 0) {
    for (const example of ledger.examples) findings.add(example, 0);
    findings.count += ledger.violations;
    if (ledger.violations > ledger.examples.length) findings.add(`... ${ledger.violations - ledger.examples.length} more ledger violations`, 0);
  }
  for (const read of load.negativeReads) findings.add(`read during the load: ${read} (G1)`);
  const during = load.records.filter((record) => record.endedMs >= faultStartMs && record.endedMs <= healMs);
  const availability = plan.mustServe.map((replicaIndex) => availabilityOf(during, replicaIndex));
  for (const served of availability) {
    const missing = (["reads", "increments", "decrements"] as const).filter((kind) => served[kind] === 0);
    if (missing.length > 0) findings.add(`${served.replicaId} answered no ${missing.join(", no ")} with 2xx during the fault (G5)`);
  }
  for (const side of plan.sides) notes.push(refusalNote(during, side));
  notes.push(`2xx per second from the start of the fault (all replicas): ${paceOf(load.records, faultStartMs, healMs).join(" ")}`);
  const survivorTimes = load.records.filter((record) => record.outcome === "2xx" && plan.survivors.includes(record.replicaIndex)).map((record) => record.endedMs);
  const buckets = bucketsAround(survivorTimes, faultStartMs - Math.min(baselineWindowMs, faultStartMs), faultStartMs, healMs, serviceBucketMs);
  const reducedService = reducedServiceOf(buckets.before, buckets.during, serviceBucketMs);
  notes.push(slowNote(during, plan.survivors, faultStartMs));
  notes.push(proxyNote(linksBefore, cluster.proxy.stats()));
  await cluster.waitForMesh(options.convergeWaitMsMax);
  const scenario = await runScenario(cluster, options, index, findings);
  for (const crash of cluster.crashes.slice(crashesBefore)) findings.add(`replica crashed: ${crash}`);
  for (const line of cluster.troubleLines.slice(troubleBefore)) findings.add(`replica printed: ${line}`);
  return {
    fault,
    description: plan.description,
    sides: plan.sides.map((side) => ({ label: side.map((i) => replicaIds[i]).join("+"), served: servedBy(during, side) })),
    survivors: plan.survivors.map((i) => replicaIds[i]).join("+"),
    reducedService,
    survivorBuckets: buckets.during,
    baselineBuckets: buckets.before,
    availability,
    faultMs: healMs - faultStartMs,
    detections,
    convergeMs,
    convergePolls: polls,
    ledger,
    scenario,
    problems: findings.problems,
    inconsistencies: findings.count,
    notes,
  };
}

/** batch_init of items, users and orders at one replica; then every replica must read the last of each (G6). */
async function setUpShop(cluster: ChaosCluster, shape: ShopShape, replicaIndex: number, findings: Findings): Promise<void> {
  const url = cluster.urls[replicaIndex]!;
  for (const path of [
    `/stock/batch_init/${shape.items}/${shape.itemStock}/1`,
    `/payment/batch_init/${shape.users}/${shape.userCredit}`,
    `/orders/batch_init/${shape.orders}/${shape.items}/${shape.users}/1`,
  ]) {
    const outcome = await send(url, "POST", path, 30_000);
    if (!isOk(outcome)) throw new Error(`setup: POST ${path} at ${url}: ${describe(outcome)}`);
  }
  for (const other of cluster.urls) {
    for (const path of [`/stock/find/${shape.items - 1}`, `/payment/find_user/${shape.users - 1}`, `/orders/find/${shape.orders - 1}`]) {
      const outcome = await send(other, "GET", path, 10_000);
      if (!isOk(outcome)) findings.add(`setup: GET ${path} at ${other} right after batch_init: ${describe(outcome)} (G6)`);
    }
  }
}

interface Agreement {
  readonly agreed: AgreedState | null;
  readonly convergeMs: number | null;
  /** Full reads of every replica it took. */
  readonly polls: number;
  readonly differences: string[];
}

/**
 * Polls until every replica's links are up and caught up, and every replica reads
 * the same value for every item, user and order the load touched; within the bound.
 * Then reads every order at r1 for the ledger (an order never sent to checkout must
 * read unpaid there).
 */
async function waitForAgreement(cluster: ChaosCluster, options: ChaosOptions, touchedOrders: readonly string[], sinceHealMs: () => number): Promise<Agreement> {
  let polls = 0;
  let differences: string[] = [];
  const keys = shopKeys(options.shape, touchedOrders);
  for (;;) {
    const caughtUp = await linksCaughtUp(cluster);
    if (caughtUp.length === 0) {
      polls += 1;
      const views = await Promise.all(cluster.urls.map((url) => readShop(url, keys)));
      differences = compareViews(views);
      if (differences.length === 0) {
        const doneMs = sinceHealMs();
        const allOrders = await readShop(cluster.urls[0]!, shopKeys({ ...options.shape, items: 0, users: 0 }, null));
        const orders = new Map([...allOrders.state.orders, ...views[0]!.state.orders]);
        return { agreed: { ...views[0]!.state, orders }, convergeMs: doneMs, polls, differences };
      }
    } else {
      differences = caughtUp;
    }
    if (sinceHealMs() > options.convergeWaitMsMax) return { agreed: null, convergeMs: null, polls, differences };
    await sleep(caughtUp.length === 0 ? 100 : 20);
  }
}

/** Why the mesh is not complete and idle (links down, lagging, batches unacked); empty when it is. */
async function linksCaughtUp(cluster: ChaosCluster): Promise<string[]> {
  const why: string[] = [];
  const views = await Promise.all(cluster.replicas.map((replica) => clusterView(replica.url)));
  for (const [index, view] of views.entries()) {
    const replica = cluster.replicas[index]!;
    if (view === null) {
      why.push(`${replica.replicaId} does not answer GET /cluster`);
      continue;
    }
    for (const other of cluster.replicas) {
      if (other === replica) continue;
      const link = view.peers.find((peer) => peer.replicaId === other.replicaId && peer.actor.endsWith(other.incarnation));
      if (link === undefined || !link.up || link.lagging || link.lag > 0) {
        why.push(`${replica.replicaId}'s link to ${other.replicaId}: ${link === undefined ? "never up" : `up ${link.up}, lagging ${link.lagging}, lag ${link.lag}`}`);
      }
    }
  }
  return why;
}

type ShopKey = readonly [kind: "item" | "user" | "order", id: string, path: string];

/** Every item and user, and the orders given (all of them when null). */
function shopKeys(shape: ShopShape, orders: readonly string[] | null): ShopKey[] {
  const keys: ShopKey[] = [];
  for (let index = 0; index < shape.items; index++) keys.push(["item", String(index), `/stock/find/${index}`]);
  for (let index = 0; index < shape.users; index++) keys.push(["user", String(index), `/payment/find_user/${index}`]);
  const orderIds = orders ?? Array.from({ length: shape.orders }, (_, index) => String(index));
  for (const id of orderIds) keys.push(["order", id, `/orders/find/${id}`]);
  return keys;
}

interface ShopRead {
  readonly state: AgreedState;
  /** Keys that could not be read, with why. */
  readonly failures: string[];
  /** One line per key, for comparison. */
  readonly lines: Map<string, string>;
}

async function readShop(url: string, keys: readonly ShopKey[]): Promise<ShopRead> {
  const stock = new Map<string, number>();
  const credit = new Map<string, number>();
  const orders = new Map<string, OrderRead>();
  const failures: string[] = [];
  const lines = new Map<string, string>();
  const agent = new Agent({ keepAlive: true, maxSockets: readsInFlightMax });
  await runPool(keys.length, readsInFlightMax, async (index) => {
    const [kind, id, path] = keys[index]!;
    const outcome = await getKeptAlive(agent, url, path);
    if (!isOk(outcome)) {
      failures.push(`${kind} ${id} at ${url}: ${describe(outcome)}`);
      return;
    }
    lines.set(`${kind} ${id}`, outcome.text);
    const body = JSON.parse(outcome.text) as Record<string, unknown>;
    if (kind === "item") stock.set(id, body["stock"] as number);
    else if (kind === "user") credit.set(id, body["credit"] as number);
    else orders.set(id, body as unknown as OrderRead);
  });
  agent.destroy();
  return { state: { stock, credit, orders }, failures, lines };
}

/** Reads in flight per replica while polling for agreement. */
const readsInFlightMax = 32;
const readWaitMsMax = 5_000;

/** A GET on a kept-alive connection (polling reads many keys; fresh connections would halve the pace). */
function getKeptAlive(agent: Agent, baseUrl: string, path: string): Promise<HttpOutcome> {
  const started = performance.now();
  const elapsedMs = () => performance.now() - started;
  return new Promise((resolve) => {
    const request = httpGet(baseUrl + path, { agent, timeout: readWaitMsMax }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", (error) => resolve({ kind: "error", message: error.message, ms: elapsedMs() }));
      response.on("end", () => resolve({ kind: "answer", status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8"), ms: elapsedMs() }));
    });
    request.on("timeout", () => {
      request.destroy();
      resolve({ kind: "timeout", ms: elapsedMs() });
    });
    request.on("error", (error) => resolve({ kind: "error", message: error.message, ms: elapsedMs() }));
  });
}

/** How the replicas' reads differ (a few examples and a count); empty when they are identical. */
function compareViews(views: readonly ShopRead[]): string[] {
  const examples: string[] = [];
  let count = 0;
  for (const view of views) {
    count += view.failures.length;
    examples.push(...view.failures.slice(0, 2));
  }
  const first = views[0]!;
  for (const [index, view] of views.entries()) {
    for (const [key, line] of first.lines) {
      const other = view.lines.get(key);
      if (index === 0 || other === undefined || other === line) continue;
      count += 1;
      if (examples.length < 4) examples.push(`${key}: r1 ${line} vs r${index + 1} ${other}`);
    }
  }
  return count === 0 ? [] : [`${count} keys differ or unread`, ...examples];
}

function availabilityOf(records: readonly OpRecord[], replicaIndex: number): FaultReport["availability"][number] {
  const ok = records.filter((record) => record.replicaIndex === replicaIndex && record.outcome === "2xx");
  const count = (kinds: readonly OpKind[]) => ok.filter((record) => kinds.includes(record.kind)).length;
  return {
    replicaId: replicaIds[replicaIndex]!,
    reads: count(["findItem", "findUser", "findOrder"]),
    increments: count(["addStock", "addFunds"]),
    decrements: count(["subtract", "pay", "checkout"]),
  };
}

function servedBy(records: readonly OpRecord[], replicaIndexes: readonly number[]): Served {
  const served: Served = { ok2xx: 0, client4xx: 0, server5xx: 0, unknown: 0, refused: 0 };
  for (const record of records) {
    if (!replicaIndexes.includes(record.replicaIndex)) continue;
    if (record.outcome === "2xx") served.ok2xx++;
    else if (record.outcome === "4xx") served.client4xx++;
    else if (record.outcome === "5xx") served.server5xx++;
    else if (record.outcome === "refused") served.refused++;
    else served.unknown++;
  }
  return served;
}

async function runScenario(cluster: ChaosCluster, options: ChaosOptions, index: number, findings: Findings): Promise<ScenarioReport | null> {
  try {
    const report = await runConsistencyScenario({ urls: cluster.urls, ...options.scenario, seed: options.seed + 1000 + index, timeoutMs: 10_000 });
    for (const check of report.checks.filter((check) => !check.ok)) {
      findings.add(`scenario: ${check.name}: expected ${check.expected}, got ${check.actual} ${check.examples.slice(0, 2).join("; ")}`, check.violations);
    }
    return report;
  } catch (error) {
    findings.add(`scenario: ${error instanceof Error ? error.message : String(error)}`);
    return null;
  }
}

/** Requests answered 2xx in each whole second from `fromMs` to `toMs`. */
function paceOf(records: readonly OpRecord[], fromMs: number, toMs: number): number[] {
  const seconds = new Array<number>(Math.max(1, Math.ceil((toMs - fromMs) / 1000))).fill(0);
  for (const record of records) {
    const second = Math.floor((record.endedMs - fromMs) / 1000);
    if (record.outcome === "2xx" && second >= 0 && second < seconds.length) seconds[second]! += 1;
  }
  return seconds;
}

/** The most common refusals (and unknowns) of one side during the fault. */
function refusalNote(records: readonly OpRecord[], replicaIndexes: readonly number[]): string {
  const counts = new Map<string, number>();
  for (const record of records) {
    if (!replicaIndexes.includes(record.replicaIndex) || record.outcome === "2xx") continue;
    let reason = record.detail;
    try {
      reason = `${record.status} ${(JSON.parse(record.detail.slice(4)) as { error: string }).error}`;
    } catch {
      // not a JSON refusal: keep the detail
    }
    const key = `${record.kind} ${reason.replace(/\d+/g, "N").replace(/[0-9a-f-]{36}/g, "ID")}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const top = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 4);
  const label = replicaIndexes.map((index) => replicaIds[index]).join("+");
  return `${label} not 2xx: ${top.length === 0 ? "none" : top.map(([key, count]) => `${count}× ${key}`).join("; ")}`;
}

/** A request that took this long is slow for the notes. */
const slowMs = 500;

/** The survivors' slow requests that ended during the fault: what they were, how long they took, when they ended. */
function slowNote(records: readonly OpRecord[], replicaIndexes: readonly number[], faultStartMs: number): string {
  const groups = new Map<string, { took: number[]; ended: number[] }>();
  for (const record of records) {
    const tookMs = record.endedMs - record.startedMs;
    if (!replicaIndexes.includes(record.replicaIndex) || tookMs < slowMs) continue;
    const key = `${record.kind} ${record.outcome}`;
    const group = groups.get(key) ?? { took: [], ended: [] };
    group.took.push(tookMs);
    group.ended.push(record.endedMs - faultStartMs);
    groups.set(key, group);
  }
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const middle = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const parts = [...groups]
    .sort((a, b) => b[1].took.length - a[1].took.length)
    .map(([key, { took, ended }]) => `${took.length}× ${key} (took median ${seconds(middle(took))}, max ${seconds(Math.max(...took))}; ended ${seconds(Math.min(...ended))}..${seconds(Math.max(...ended))})`);
  const label = replicaIndexes.map((index) => replicaIds[index]).join("+");
  return `${label} requests that took over ${slowMs} ms: ${parts.length === 0 ? "none" : parts.join("; ")}`;
}

function proxyNote(before: ReturnType<ChaosCluster["proxy"]["stats"]>, after: ReturnType<ChaosCluster["proxy"]["stats"]>): string {
  const parts = after.map((link) => {
    const earlier = before.find((other) => other.from === link.from && other.to === link.to);
    const bytes = link.bytesForward + link.bytesBackward - (earlier === undefined ? 0 : earlier.bytesForward + earlier.bytesBackward);
    const connections = link.connectionsAccepted - (earlier?.connectionsAccepted ?? 0);
    return `${link.from}->${link.to} ${Math.round(bytes / 1024)} KiB/${connections} conn`;
  });
  return `proxy traffic: ${parts.join(", ")}`;
}

function isOk(outcome: HttpOutcome): outcome is Extract<HttpOutcome, { kind: "answer" }> {
  return outcome.kind === "answer" && outcome.status >= 200 && outcome.status < 300;
}

function describe(outcome: HttpOutcome): string {
  if (outcome.kind === "answer") return `${outcome.status} ${outcome.text.slice(0, 200)}`;
  return outcome.kind === "timeout" ? `timeout after ${Math.round(outcome.ms)} ms` : `error ${outcome.message}`;
}

// ---- the table

/** Faults with a target on their reduced service (issue 8): at most this many seconds. */
const reducedServiceTargets: Readonly<Partial<Record<FaultName, number>>> = { pause: 1, isolate: 1 };

function describeReducedService(fault: FaultReport): string {
  const { baselinePerBucket, reducedSeconds, longestReducedSeconds, firstReducedAtMs, bucketMs } = fault.reducedService;
  const target = reducedServiceTargets[fault.fault];
  const verdict = target === undefined || reducedSeconds === null ? "" : ` (target <= ${target} s: ${reducedSeconds <= target ? "met" : "MISSED"})`;
  const measure =
    reducedSeconds === null
      ? "no baseline"
      : `${reducedSeconds.toFixed(1)} s${verdict}, longest stretch ${longestReducedSeconds.toFixed(1)} s${firstReducedAtMs === null ? "" : `, first at ${(firstReducedAtMs / 1000).toFixed(1)} s`}`;
  return [
    `reduced service at ${fault.survivors}: ${measure}; baseline ${baselinePerBucket ?? "-"} 2xx per ${bucketMs} ms (median of the last second before the fault: ${fault.baselineBuckets.join(" ")})`,
    `   ${fault.survivors} 2xx per ${bucketMs} ms during the fault: ${fault.survivorBuckets.join(" ")}`,
  ].join("\n");
}

export function formatTable(report: ChaosReport): string {
  const header = ["fault", "requests served during it (2xx / 4xx / unknown)", "reduced service (stayed up)", "inconsistencies", "time to converge"];
  const rows = report.faults.map((fault, index) => [
    `${index + 1} ${fault.fault}: ${fault.description}`,
    fault.sides
      .map((side) => {
        const { ok2xx, client4xx, unknown, server5xx, refused } = side.served;
        const extra = [server5xx > 0 ? `${server5xx} 5xx` : "", refused > 0 ? `${refused} conn. refused` : ""].filter((text) => text !== "");
        return `${side.label}: ${ok2xx} / ${client4xx} / ${unknown}${extra.length > 0 ? ` (+${extra.join(", ")})` : ""}`;
      })
      .join(" | "),
    `${fault.reducedService.reducedSeconds === null ? "no baseline" : `${fault.reducedService.reducedSeconds.toFixed(1)} s`} (${fault.survivors})`,
    `${fault.inconsistencies}${fault.scenario === null ? "" : ` (scenario ${fault.scenario.inconsistencies})`}`,
    fault.convergeMs === null ? `> ${report.options.convergeWaitMsMax / 1000} s` : `${(fault.convergeMs / 1000).toFixed(2)} s (${fault.convergePolls} polls)`,
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]) => cells.map((cell, column) => cell.padEnd(widths[column]!)).join(" | ");
  return [line(header), widths.map((width) => "-".repeat(width)).join("-|-"), ...rows.map(line)].join("\n");
}

export function formatDetails(report: ChaosReport): string {
  const out: string[] = [];
  for (const [index, fault] of report.faults.entries()) {
    out.push(`${index + 1} ${fault.fault} (${(fault.faultMs / 1000).toFixed(1)} s): ${fault.description}`);
    for (const note of fault.notes) out.push(`   note: ${note}`);
    if (fault.detections.length > 0) {
      const seconds = (ms: number | null, otherwise: string) => (ms === null ? otherwise : `${(ms / 1000).toFixed(1)} s`);
      const seen = fault.detections.map((d) => `${d.replicaId}->${d.peerId} ${seconds(d.laggingAfterMs, "never")}/${seconds(d.downAfterMs, "still up")}`);
      out.push(`   cut links seen lagging/down after: ${seen.join(", ")}`);
    }
    out.push(`   ${describeReducedService(fault)}`);
    if (fault.ledger !== null) {
      const { writes } = fault.ledger;
      out.push(
        `   ledger: writes ${writes.ok2xx} 2xx, ${writes.client4xx} 4xx, ${writes.unknown} unknown, ${writes.refused} conn. refused; ${fault.ledger.paidOrders} orders paid; ${fault.ledger.violations} violations`,
      );
    }
    out.push(`   G5 2xx during the fault: ${fault.availability.map((a) => `${a.replicaId} ${a.reads} reads/${a.increments} incr/${a.decrements} decr`).join(", ")}`);
    if (fault.scenario !== null) {
      const { checkouts } = fault.scenario;
      out.push(`   scenario: ${checkouts.ok2xx} 2xx, ${checkouts.client4xx} 4xx, ${checkouts.timeouts + checkouts.errors} unknown of ${checkouts.total}; ${fault.scenario.inconsistencies} inconsistencies`);
    }
    for (const problem of fault.problems) out.push(`   PROBLEM: ${problem}`);
  }
  out.push(`total ${(report.totalMs / 1000).toFixed(1)} s; ${report.ok ? "everything held" : "SOMETHING BROKE"}`);
  return out.join("\n");
}

// ---- command line

const usage = `usage: node dist/scripts/chaos.js [options]
  --fault-seconds N   how long each fault lasts under load (default ${defaultChaosOptions.faultSeconds})
  --seed N            seed of the load and of the scenario runs (default: random)
  --faults LIST       comma-separated, of ${faultNames.join(",")} (default: all, in that order)
                      pause: SIGSTOP of r3 for 3/4 of the fault, then SIGCONT
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
    flags.fail("--replicas-urls: only \"none\"; a chaos run starts its own replicas, since it must cut their links and kill them");
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

if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.stack ?? error.message : String(error));
    process.exit(1);
  });
}
