// Chaos run: a local 3-replica cluster whose peer links all pass through our TCP
// fault proxy (faultProxy.ts), under a steady mixed load (chaosLoad.ts), with one
// fault at a time:
//   isolate  r1 cut off from r2 and r3 (black hole: only the 3 s silence check notices)
//   bridge   r1–r3 reset and cut, r1–r2 and r2–r3 up (a split that is not a clean cut)
//   kill     kill -9 of r2 while it has a checkout in flight, restarted on its folder
//   wipe     kill -9 of r3 mid-checkout, restarted on an empty folder (fresh incarnation)
//   pause    r3 frozen (SIGSTOP) for 3/4 of the fault, then thawed (SIGCONT): a silent
//            peer whose sockets stay open (only the silence check notices)
//   join     a new replica r4 joins through r1's peer port (--join, empty folder) and
//            takes its share of the load once it serves; every replica must list it
//            active, and the checks below include it. After them, with no load, it
//            leaves (POST /cluster/leave): every replica must list it retired and
//            read the same values as before the leave; then it is stopped.
// Each fault: fresh batch_init'ed shop, load, the fault for --fault-seconds under
// load, heal, stop the load, then check:
//   - every replica reads identical values (polled; the time from heal is reported);
//   - the ledger (chaosLedger.ts): no acknowledged write lost or invented, nothing
//     negative, no 5xx (G1, G2, G4);
//   - the side cut off kept serving reads, increments and decrements (G5);
//   - a consistency scenario run over all replicas (consistencyScenario.ts) finds
//     zero inconsistencies.
// And it measures the seconds of reduced service at the replicas that stayed up
// (reducedService.ts): 100 ms buckets of their 2xx answers during the fault
// below half the median bucket before it.
//
// It starts (and stops) its own cluster on free ports: faults need the processes
// and their links. The command line is scripts/chaos.ts; the faults are in
// faultPlans.ts, the agreement poll in agreement.ts, the table in chaosReport.ts.
import { setTimeout as sleep } from "node:timers/promises";
import { type ScenarioReport, runConsistencyScenario } from "../consistency/consistencyScenario.js";
import { describeOutcome, isOk, send } from "../net/httpClient.js";
import { type Agreement, agreedDifferences, waitForAgreement } from "./agreement.js";
import { ChaosCluster } from "./chaosCluster.js";
import { type LedgerReport, checkLedger } from "./chaosLedger.js";
import { ChaosLoad, type OpRecord, type ShopShape } from "./chaosLoad.js";
import { type ChaosOptions, type FaultName, replicaIds } from "./chaosOptions.js";
import type { ChaosReport, FaultReport } from "./chaosReport.js";
import { availabilityOf, labelOf, paceOf, proxyNote, refusalNote, servedBy, slowNote } from "./faultNotes.js";
import { type Detection, type FaultContext, type FaultPlan, faultPlans } from "./faultPlans.js";
import { bucketsAround, reducedServiceOf } from "./reducedService.js";

/** The width of the buckets of 2xx answers the reduced service is measured on. */
const serviceBucketMs = 100;
/** The baseline of the reduced service: the 2xx answers of this last part of the warm-up. */
const baselineWindowMs = 1_000;
/** The first fault's warm-up is this much longer: the replicas' code is still cold. */
const firstWarmupExtraMs = 3_000;

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const runStarted = performance.now();
  const cluster = await ChaosCluster.start({ replicaIds, mainScriptPath: options.mainScriptPath, extraArgs: options.replicaArgs });
  const reports: FaultReport[] = [];
  try {
    options.log(`cluster up: ${cluster.replicas.map((r) => `${r.replicaId} ${r.url} (peer port ${r.peerPort})`).join(", ")}; peer links via proxy`);
    for (const [index, fault] of options.faults.entries()) {
      const report = await runFault(cluster, options, fault, index);
      reports.push(report);
      options.log(
        `${fault}: ${report.inconsistencies} inconsistencies, converged in ${report.convergeMs === null ? "-" : `${Math.round(report.convergeMs)} ms`}`,
      );
    }
  } catch (error) {
    options.log(`aborted: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n${cluster.output()}`);
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
  const plan = faultPlans[fault];
  const findings = new Findings();
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
  const notes: string[] = [];
  const detections: Detection[] = [];
  let figure: string | null = null;
  const context: FaultContext = {
    cluster,
    load,
    shape: options.shape,
    faultMs: options.faultSeconds * 1000,
    note: (text) => notes.push(text),
    figure: (text) => (figure = text),
    problem: (text) => findings.add(text),
    detected: (detection) => detections.push(detection),
  };
  const { faultStartMs, healMs } = await runUnderLoad(context, options, fault, index);
  // The replicas by load index as the fault left them (a replica that joined leaves again at settle).
  const names = cluster.replicas.map((replica) => replica.replicaId);
  notes.push(loadNote(load, options.shape, names));
  const touchedOrders = [...new Set(load.records.filter((record) => record.kind === "checkout").map((record) => record.id))];
  const agreement = await waitForAgreement(cluster, options, touchedOrders, () => load.now() - healMs);
  const ledger = checkAgreement(agreement, options, load, findings);
  const during = load.records.filter((record) => record.endedMs >= faultStartMs && record.endedMs <= healMs);
  const availability = checkAvailability(plan, during, names, findings);
  for (const side of plan.sides) notes.push(refusalNote(during, side, names));
  notes.push(`2xx per second from the start of the fault (all replicas): ${paceOf(load.records, faultStartMs, healMs).join(" ")}`);
  const { buckets, reducedService } = measureReducedService(plan, load.records, faultStartMs, healMs);
  notes.push(slowNote(during, plan.survivors, faultStartMs, names));
  notes.push(proxyNote(linksBefore, cluster.proxy.stats()));
  await cluster.waitForMesh(options.convergeWaitMsMax);
  const scenario = await runScenario(cluster, options, index, findings);
  if (plan.settle !== undefined) await settle(plan.settle, context, options, findings);
  for (const crash of cluster.crashes.slice(crashesBefore)) findings.add(`replica crashed: ${crash}`);
  for (const line of cluster.troubleLines.slice(troubleBefore)) findings.add(`replica printed: ${line}`);
  return {
    fault,
    description: plan.description,
    figure,
    sides: plan.sides.map((side) => ({ label: labelOf(names, side), served: servedBy(during, side) })),
    survivors: labelOf(names, plan.survivors),
    reducedService,
    survivorBuckets: buckets.during,
    baselineBuckets: buckets.before,
    availability,
    faultMs: healMs - faultStartMs,
    detections,
    convergeMs: agreement.convergeMs,
    convergePolls: agreement.polls,
    ledger,
    scenario,
    problems: findings.problems,
    inconsistencies: findings.count,
    notes,
  };
}

/** Starts the context's load, warms up, runs the fault until its heal, stops the load; returns when the fault ran (load clock). */
async function runUnderLoad(context: FaultContext, options: ChaosOptions, fault: FaultName, index: number): Promise<{ faultStartMs: number; healMs: number }> {
  const plan = faultPlans[fault];
  const { load } = context;
  options.log(`${fault}: ${plan.description}; warm-up ${options.warmupSeconds} s, fault ${options.faultSeconds} s`);
  load.start();
  let faultStartMs = 0;
  let healMs = 0;
  try {
    await sleep(options.warmupSeconds * 1000 + (index === 0 ? firstWarmupExtraMs : 0));
    faultStartMs = load.now();
    await plan.run(context);
    healMs = load.now();
  } finally {
    await load.stop();
  }
  return { faultStartMs, healMs };
}

/**
 * The fault's settling step (a leave), with no load: before it, every replica
 * (a joiner too) must read the same value for every key, every order included;
 * after it, the same values as before (moving rights changes no value).
 */
async function settle(step: NonNullable<FaultPlan["settle"]>, context: FaultContext, options: ChaosOptions, findings: Findings): Promise<void> {
  const since = (startedMs: number) => () => performance.now() - startedMs;
  const allOrders = Array.from({ length: options.shape.orders }, (_, id) => String(id));
  const started = performance.now();
  const before = await waitForAgreement(context.cluster, options, allOrders, since(performance.now()));
  const stepStarted = performance.now();
  await step(context);
  const stepEnded = performance.now();
  const after = await waitForAgreement(context.cluster, options, allOrders, since(performance.now()));
  const took = `reads before ${Math.round(stepStarted - started)} ms, step ${Math.round(stepEnded - stepStarted)} ms, reads after ${Math.round(performance.now() - stepEnded)} ms`;
  if (before.agreed === null || after.agreed === null) {
    findings.add(
      `settle: the replicas did not agree ${before.agreed === null ? "before" : "after"} it: ${(before.agreed === null ? before : after).differences.join("; ")}`,
    );
    return;
  }
  const changed = agreedDifferences(before.agreed, after.agreed);
  for (const difference of changed.slice(0, 4)) findings.add(`settle changed a value: ${difference}`, 0);
  findings.count += changed.length;
  if (changed.length === 0) {
    context.note(
      `settle: every replica read the same ${before.agreed.stock.size} items, ${before.agreed.credit.size} users and ${before.agreed.orders.size} orders before it, and the ${context.cluster.replicas.length} left the same after it (${took})`,
    );
  }
}

function loadNote(load: ChaosLoad, shape: ShopShape, names: readonly string[]): string {
  const workers = load.workersPeak.map((peak, i) => `${labelOf(names, [i])} ${peak}`).join(", ");
  return `load: ${load.records.length} requests, ${shape.orders - load.ordersLeft} of ${shape.orders} orders sent to checkout; workers at most ${workers} (more than the share replace stuck requests)`;
}

/** The replicas agreed (G3), the ledger holds on what they agree on (G1, G2, G4), no read was negative (G1). */
function checkAgreement(agreement: Agreement, options: ChaosOptions, load: ChaosLoad, findings: Findings): LedgerReport | null {
  const { agreed, differences } = agreement;
  if (agreed === null) findings.add(`replicas did not read identical values within ${options.convergeWaitMsMax} ms after heal: ${differences.join("; ")} (G3)`);
  const ledger = agreed === null ? null : checkLedger(options.shape, load.records, agreed);
  if (ledger !== null && ledger.violations > 0) {
    for (const example of ledger.examples) findings.add(example, 0);
    findings.count += ledger.violations;
    if (ledger.violations > ledger.examples.length) findings.add(`... ${ledger.violations - ledger.examples.length} more ledger violations`, 0);
  }
  for (const read of load.negativeReads) findings.add(`read during the load: ${read} (G1)`);
  return ledger;
}

/** G5: each replica that must serve answered reads, increments and decrements with 2xx during the fault. */
function checkAvailability(plan: FaultPlan, during: readonly OpRecord[], names: readonly string[], findings: Findings): FaultReport["availability"] {
  const availability = plan.mustServe.map((replicaIndex) => availabilityOf(during, replicaIndex, names));
  for (const served of availability) {
    const missing = (["reads", "increments", "decrements"] as const).filter((kind) => served[kind] === 0);
    if (missing.length > 0) findings.add(`${served.replicaId} answered no ${missing.join(", no ")} with 2xx during the fault (G5)`);
  }
  return availability;
}

/** The survivors' 2xx answers per bucket, the baseline window before the fault and the fault itself, and their reduced service. */
function measureReducedService(plan: FaultPlan, records: readonly OpRecord[], faultStartMs: number, healMs: number) {
  const survivorTimes = records.filter((record) => record.outcome === "2xx" && plan.survivors.includes(record.replicaIndex)).map((record) => record.endedMs);
  const buckets = bucketsAround(survivorTimes, faultStartMs - Math.min(baselineWindowMs, faultStartMs), faultStartMs, healMs, serviceBucketMs);
  return { buckets, reducedService: reducedServiceOf(buckets.before, buckets.during, serviceBucketMs) };
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
    if (!isOk(outcome)) throw new Error(`setup: POST ${path} at ${url}: ${describeOutcome(outcome)}`);
  }
  for (const other of cluster.urls) {
    for (const path of [`/stock/find/${shape.items - 1}`, `/payment/find_user/${shape.users - 1}`, `/orders/find/${shape.orders - 1}`]) {
      const outcome = await send(other, "GET", path, 10_000);
      if (!isOk(outcome)) findings.add(`setup: GET ${path} at ${other} right after batch_init: ${describeOutcome(outcome)} (G6)`);
    }
  }
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
