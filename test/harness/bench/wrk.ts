// Runs wrk with checkout.lua and reads the one JSON line its done()
// prints: status counts, socket errors, latency percentiles and the load window.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { spawnTracked } from "./processes.js";

export const wrkScriptPath = fileURLToPath(new URL("../../../../test/harness/bench/checkout.lua", import.meta.url));

/** How each connection picks the order to check out (see checkout.lua). */
export type WrkPick =
  { readonly kind: "course"; readonly orders: number } | { readonly kind: "fresh"; readonly orders: number } | { readonly kind: "list"; readonly file: string };

export interface WrkSettings {
  readonly threads: number;
  readonly connections: number;
  readonly seconds: number;
  /** wrk's socket timeout: a request unanswered this long counts as a timeout error. */
  readonly timeoutSeconds: number;
  readonly seed: number;
}

export interface WrkResult {
  /** Answers (any status) per second over the window from the first request to the last answer. */
  readonly answersPerSecond: number;
  readonly answers: number;
  readonly ok2xx: number;
  readonly client4xx: number;
  readonly server5xx: number;
  /** Answers with a status outside 2xx/4xx/5xx. */
  readonly otherStatus: number;
  /** Count of each status seen. */
  readonly statusCounts: Readonly<Record<string, number>>;
  readonly socketErrors: { readonly connect: number; readonly read: number; readonly write: number; readonly timeout: number };
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number; readonly mean: number };
  /** From the first request sent to the last answer. */
  readonly windowMs: number;
  /** wrk's whole run (its -d, plus the joins). */
  readonly durationMs: number;
  /** fresh and list: every id was sent before the time was up (the window is shorter than --seconds). */
  readonly ranOutOfOrders: boolean;
}

/** Throws a clear error if wrk cannot be run. */
export function checkWrkInstalled(): void {
  const probe = spawnSync("wrk", ["--version"], { encoding: "utf8" });
  if (probe.error !== undefined) {
    throw new Error(`wrk is not installed or not on PATH (${probe.error.message}): apt-get install -y wrk`);
  }
}

export function wrkVersion(): string {
  const probe = spawnSync("wrk", ["--version"], { encoding: "utf8" });
  return /wrk (\S+)/.exec(probe.stdout ?? "")?.[1] ?? "unknown";
}

interface DoneLine {
  statusCounts: Record<string, number>;
  latencyUs: { p50: number; p90: number; p99: number; max: number; mean: number };
  errors: { connect: number; read: number; write: number; timeout: number };
  requests: number;
  durationUs: number;
  windowUs: number;
  allSent: boolean;
}

function pickEnvironment(pick: WrkPick): Record<string, string> {
  switch (pick.kind) {
    case "course":
    case "fresh":
      return { BENCH_MODE: pick.kind, BENCH_ORDERS: String(pick.orders) };
    case "list":
      return { BENCH_MODE: "list", BENCH_ORDER_FILE: pick.file };
  }
}

export function summarizeDoneLine(line: DoneLine): WrkResult {
  const sumWhere = (test: (status: number) => boolean): number =>
    Object.entries(line.statusCounts).reduce((sum, [status, count]) => (test(Number(status)) ? sum + count : sum), 0);
  const answers = sumWhere(() => true);
  const windowMs = line.windowUs / 1000;
  const toMs = (us: number): number => us / 1000;
  return {
    answersPerSecond: windowMs > 0 ? (answers * 1000) / windowMs : 0,
    answers,
    ok2xx: sumWhere((status) => status >= 200 && status < 300),
    client4xx: sumWhere((status) => status >= 400 && status < 500),
    server5xx: sumWhere((status) => status >= 500 && status < 600),
    otherStatus: sumWhere((status) => status < 200 || (status >= 300 && status < 400) || status >= 600),
    statusCounts: line.statusCounts,
    socketErrors: line.errors,
    latencyMs: {
      p50: toMs(line.latencyUs.p50),
      p90: toMs(line.latencyUs.p90),
      p99: toMs(line.latencyUs.p99),
      max: toMs(line.latencyUs.max),
      mean: toMs(line.latencyUs.mean),
    },
    windowMs,
    durationMs: line.durationUs / 1000,
    ranOutOfOrders: line.allSent,
  };
}

/** Runs wrk once against `url` and resolves with what its done() reported. */
export async function runWrk(url: string, pick: WrkPick, settings: WrkSettings): Promise<WrkResult> {
  const args = [
    `-t${settings.threads}`,
    `-c${settings.connections}`,
    `-d${settings.seconds}s`,
    `--timeout`,
    `${settings.timeoutSeconds}s`,
    "-s",
    wrkScriptPath,
    url,
  ];
  const child = spawnTracked("wrk", args, {
    ...process.env,
    ...pickEnvironment(pick),
    BENCH_THREADS: String(settings.threads),
    BENCH_SEED: String(settings.seed),
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr!.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString("utf8")).slice(-8192)));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (exitCode) => resolve(exitCode));
  });
  const json = /^BENCH_RESULT (.*)$/m.exec(stdout)?.[1];
  if (code !== 0 || json === undefined) throw new Error(`wrk ${args.join(" ")} failed (exit ${code}):\n${stdout}\n${stderr}`);
  return summarizeDoneLine(JSON.parse(json) as DoneLine);
}
