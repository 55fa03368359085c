// What the records of one fault's load say, per side of it: who answered what
// (G5), the pace, the common refusals, the slow requests, the proxy's traffic.
// Replicas are load indexes; `names` gives their ids (a replica that joined is r4).
import type { ChaosCluster } from "./chaosCluster.js";
import type { OpKind, OpRecord } from "./chaosLoad.js";
import type { FaultReport, Served } from "./chaosReport.js";

/** The ids of some replicas by their indexes, as a label: "r2+r3". */
export function labelOf(names: readonly string[], replicaIndexes: readonly number[]): string {
  return replicaIndexes.map((index) => names[index] ?? `replica ${index + 1}`).join("+");
}

export function availabilityOf(records: readonly OpRecord[], replicaIndex: number, names: readonly string[]): FaultReport["availability"][number] {
  const ok = records.filter((record) => record.replicaIndex === replicaIndex && record.outcome === "2xx");
  const count = (kinds: readonly OpKind[]) => ok.filter((record) => kinds.includes(record.kind)).length;
  return {
    replicaId: labelOf(names, [replicaIndex]),
    reads: count(["findItem", "findUser", "findOrder"]),
    increments: count(["addStock", "addFunds"]),
    decrements: count(["subtract", "pay", "checkout"]),
  };
}

export function servedBy(records: readonly OpRecord[], replicaIndexes: readonly number[]): Served {
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

/** Requests answered 2xx in each whole second from `fromMs` to `toMs`. */
export function paceOf(records: readonly OpRecord[], fromMs: number, toMs: number): number[] {
  const seconds = new Array<number>(Math.max(1, Math.ceil((toMs - fromMs) / 1000))).fill(0);
  for (const record of records) {
    const second = Math.floor((record.endedMs - fromMs) / 1000);
    if (record.outcome === "2xx" && second >= 0 && second < seconds.length) seconds[second]! += 1;
  }
  return seconds;
}

/** The most common refusals (and unknowns) of one side during the fault. */
export function refusalNote(records: readonly OpRecord[], replicaIndexes: readonly number[], names: readonly string[]): string {
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
  return `${labelOf(names, replicaIndexes)} not 2xx: ${top.length === 0 ? "none" : top.map(([key, count]) => `${count}× ${key}`).join("; ")}`;
}

/** A request that took this long is slow for the notes. */
const slowMs = 500;

/** The survivors' slow requests that ended during the fault: what they were, how long they took, when they ended. */
export function slowNote(records: readonly OpRecord[], replicaIndexes: readonly number[], faultStartMs: number, names: readonly string[]): string {
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
    .map(
      ([key, { took, ended }]) =>
        `${took.length}× ${key} (took median ${seconds(middle(took))}, max ${seconds(Math.max(...took))}; ended ${seconds(Math.min(...ended))}..${seconds(Math.max(...ended))})`,
    );
  return `${labelOf(names, replicaIndexes)} requests that took over ${slowMs} ms: ${parts.length === 0 ? "none" : parts.join("; ")}`;
}

export function proxyNote(before: ReturnType<ChaosCluster["proxy"]["stats"]>, after: ReturnType<ChaosCluster["proxy"]["stats"]>): string {
  const parts = after.map((link) => {
    const earlier = before.find((other) => other.from === link.from && other.to === link.to);
    const bytes = link.bytesForward + link.bytesBackward - (earlier === undefined ? 0 : earlier.bytesForward + earlier.bytesBackward);
    const connections = link.connectionsAccepted - (earlier?.connectionsAccepted ?? 0);
    return `${link.from}->${link.to} ${Math.round(bytes / 1024)} KiB/${connections} conn`;
  });
  return `proxy traffic: ${parts.join(", ")}`;
}
