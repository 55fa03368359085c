// The benchmark's result as one JSON-able object, and as markdown tables.
import type { InitTimes } from "./shop.js";
import type { WrkResult } from "./wrk.js";

export type ModeName = "fresh" | "course" | "contention";

export interface ContentionCheck {
  readonly stockTotal: number;
  readonly successes: number;
  /** Stock left of the contention items, as read at each replica right after the load. */
  readonly stockLeftByReplica: Readonly<Record<string, number>>;
  readonly pass: boolean;
  /** Why the check failed; empty when it passed. */
  readonly reasons: readonly string[];
}

export interface ModeResult {
  readonly mode: ModeName;
  /** Set-up before this mode's load: the course init again (fresh, course) or the small init (contention). */
  readonly setupMs: number;
  readonly wrk: WrkResult;
  readonly checkoutsPerSecond: number;
  readonly ratioToPlainFastify: number;
  /** CPU of the launcher and every replica over the load, per checkout answered. */
  readonly cpuMsPerCheckout: number;
  /** The same, counted until the cluster was idle again after the load. */
  readonly cpuMsPerCheckoutWithSettle: number | null;
  /** From the end of the load until the cluster was idle again; null if it was not within the wait. */
  readonly settleMs: number | null;
  readonly contention: ContentionCheck | null;
}

export interface ClusterResult {
  readonly replicas: number;
  readonly init: InitTimes;
  /** From the last init reply until the cluster used < 10 % of a core for a whole window; null if never within the wait. */
  readonly idleAfterInitMs: number | null;
  readonly rssMiBAfterInit: Readonly<Record<string, number>>;
  readonly rssMiBAfterLoad: Readonly<Record<string, number>>;
  readonly modes: readonly ModeResult[];
  readonly restart: { readonly replica: string; readonly ms: number | null };
}

export interface BenchResult {
  readonly settings: {
    readonly n: number;
    readonly seconds: number;
    readonly threads: number;
    readonly connections: number;
    readonly modes: readonly ModeName[];
    readonly replicas: readonly number[];
    readonly smoke: boolean;
    readonly contention: { readonly items: number; readonly stockPerItem: number; readonly orders: number };
    readonly idle: { readonly coreFractionMax: number; readonly windowMs: number };
    readonly wrkVersion: string;
    readonly nodeVersion: string;
    readonly cpus: number;
    readonly loadAverageAtStart: readonly number[];
    readonly startedAt: string;
  };
  readonly plainFastify: { readonly wrk: WrkResult; readonly requestsPerSecond: number; readonly cpuMsPerRequest: number };
  readonly clusters: readonly ClusterResult[];
  readonly totalMs: number;
}

const fixed = (value: number | null, digits: number): string => (value === null || !Number.isFinite(value) ? "-" : value.toFixed(digits));
const whole = (value: number): string => Math.round(value).toLocaleString("en-US");
const seconds = (ms: number | null): string => (ms === null ? "not idle" : `${(ms / 1000).toFixed(2)} s`);
const perReplica = (values: Readonly<Record<string, number>>): string =>
  Object.entries(values)
    .map(([id, value]) => `${id} ${value.toFixed(0)}`)
    .join(", ");

function errorsOf(wrk: WrkResult): number {
  const { connect, read, write, timeout } = wrk.socketErrors;
  return connect + read + write + timeout;
}

function loadRow(label: string, mode: string, wrk: WrkResult, ratio: string, cpu: string, cpuSettle: string): string {
  const latency = wrk.latencyMs;
  const note = wrk.ranOutOfOrders ? " (all sent)" : "";
  return `| ${label} | ${mode}${note} | ${whole(wrk.answersPerSecond)} | ${ratio} | ${fixed(latency.p50, 2)} | ${fixed(latency.p90, 2)} | ${fixed(latency.p99, 2)} | ${fixed(latency.max, 1)} | ${wrk.ok2xx} | ${wrk.client4xx} | ${wrk.server5xx} | ${errorsOf(wrk)} | ${cpu} | ${cpuSettle} |`;
}

function loadTable(result: BenchResult): string[] {
  const base = result.plainFastify;
  const lines = [
    "| server | mode | answers/s | × fastify | p50 ms | p90 ms | p99 ms | max ms | 2xx | 4xx | 5xx | socket errors | CPU ms/checkout | with settle |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    loadRow("plain fastify", "POST route", base.wrk, "1.00", fixed(base.cpuMsPerRequest, 3), "-"),
  ];
  for (const cluster of result.clusters) {
    for (const mode of cluster.modes) {
      lines.push(
        loadRow(
          `${cluster.replicas} replica${cluster.replicas === 1 ? "" : "s"}`,
          mode.mode,
          mode.wrk,
          fixed(mode.ratioToPlainFastify, 2),
          fixed(mode.cpuMsPerCheckout, 3),
          fixed(mode.cpuMsPerCheckoutWithSettle, 3),
        ),
      );
    }
  }
  return lines;
}

function clusterTable(result: BenchResult): string[] {
  const lines = [
    "| cluster | stock init | payment init | orders init | idle after init | RSS MiB after init | RSS MiB after load | restart after kill -9 |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const cluster of result.clusters) {
    const init = cluster.init;
    const restart = cluster.restart.ms === null ? `${cluster.restart.replica}: no answer` : `${cluster.restart.replica}: ${seconds(cluster.restart.ms)}`;
    lines.push(
      `| ${cluster.replicas} | ${seconds(init.stockMs)} | ${seconds(init.paymentMs)} | ${seconds(init.ordersMs)} | ${seconds(cluster.idleAfterInitMs)} | ${perReplica(cluster.rssMiBAfterInit)} | ${perReplica(cluster.rssMiBAfterLoad)} | ${restart} |`,
    );
  }
  return lines;
}

function contentionTable(result: BenchResult): string[] {
  const rows = result.clusters.flatMap((cluster) =>
    cluster.modes.flatMap((mode) => {
      const check = mode.contention;
      if (check === null) return [];
      const verdict = check.pass ? "pass" : `FAIL: ${check.reasons.join("; ")}`;
      const statuses = Object.entries(mode.wrk.statusCounts)
        .map(([status, count]) => `${status}: ${count}`)
        .join(", ");
      return [`| ${cluster.replicas} | ${check.stockTotal} | ${check.successes} | ${statuses} | ${perReplica(check.stockLeftByReplica)} | ${verdict} |`];
    }),
  );
  if (rows.length === 0) return [];
  return ["", "| contention: replicas | stock | successes (2xx) | statuses | stock left at | successes == stock |", "|---|---|---|---|---|---|", ...rows];
}

export function markdownReport(result: BenchResult): string {
  const s = result.settings;
  const header = [
    `wrk -t${s.threads} -c${s.connections} -d${s.seconds}s on the same machine (${s.cpus} cores; wrk takes about one), n = ${s.n.toLocaleString("en-US")} items, users and orders, ` +
      `Node ${s.nodeVersion}, wrk ${s.wrkVersion}, load average at start ${s.loadAverageAtStart.map((value) => value.toFixed(2)).join(" ")}.`,
    'CPU per checkout: the launcher and every replica, from /proc, over the load ("with settle": until idle again after it).',
    `Idle: the cluster below ${(s.idle.coreFractionMax * 100).toFixed(0)} % of one core for ${s.idle.windowMs} ms. "(all sent)": every order id was used before the time was up; the rate is over the shorter window.`,
    "",
  ];
  return [...header, ...loadTable(result), "", ...clusterTable(result), ...contentionTable(result), ""].join("\n");
}
