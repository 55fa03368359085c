// What a chaos run found, per fault, and its table and details as printed.
import type { ScenarioReport } from "../consistency/consistencyScenario.js";
import type { LedgerReport } from "./chaosLedger.js";
import type { ChaosOptions, FaultName } from "./chaosOptions.js";
import type { Detection } from "./faultPlans.js";
import type { ReducedService } from "./reducedService.js";

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
  /** The fault's own figure, if it measures one (a joiner's time to serve): shown after the description. */
  readonly figure: string | null;
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
    `${index + 1} ${fault.fault}: ${fault.description}${fault.figure === null ? "" : ` (${fault.figure})`}`,
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
    out.push(`${index + 1} ${fault.fault} (${(fault.faultMs / 1000).toFixed(1)} s): ${fault.description}${fault.figure === null ? "" : ` (${fault.figure})`}`);
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
    out.push(
      `   G5 2xx during the fault: ${fault.availability.map((a) => `${a.replicaId} ${a.reads} reads/${a.increments} incr/${a.decrements} decr`).join(", ")}`,
    );
    if (fault.scenario !== null) {
      const { checkouts } = fault.scenario;
      out.push(
        `   scenario: ${checkouts.ok2xx} 2xx, ${checkouts.client4xx} 4xx, ${checkouts.timeouts + checkouts.errors} unknown of ${checkouts.total}; ${fault.scenario.inconsistencies} inconsistencies`,
      );
    }
    for (const problem of fault.problems) out.push(`   PROBLEM: ${problem}`);
  }
  out.push(`total ${(report.totalMs / 1000).toFixed(1)} s; ${report.ok ? "everything held" : "SOMETHING BROKE"}`);
  return out.join("\n");
}
