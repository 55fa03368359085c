// The faults of one run, drawn from its seed: partitions (one replica alone,
// halves, a bridge replica that sees both sides, a ring where each replica sees a
// majority), links that drop (down, then a reconnect), delays (a cut shorter than
// the ping timeout, or slow links), crashes that keep storage and crashes that
// lose it. Faults may overlap; at the end of the chaos everything heals.
import type { Random } from "../harness/random.js";

export type Fault =
  | {
      readonly kind: "partition";
      readonly shape: "alone" | "halves" | "bridge" | "ring";
      readonly at: number;
      readonly durationMs: number;
      readonly cuts: readonly (readonly [string, string])[];
    }
  | { readonly kind: "drop"; readonly at: number; readonly pair: readonly [string, string] }
  | {
      readonly kind: "delay";
      readonly at: number;
      readonly durationMs: number;
      readonly pair: readonly [string, string];
      readonly how: "hold" | "slow";
      readonly extraMs: number;
    }
  | { readonly kind: "crash"; readonly at: number; readonly durationMs: number; readonly replicaId: string; readonly loseStorage: boolean }
  /** The replica leaves for good (Replica.leave); once retired it is stopped and never comes back. */
  | { readonly kind: "leave"; readonly at: number; readonly replicaId: string };

export interface NemesisSettings {
  readonly chaosMs: number;
  readonly faultsMax: number;
  /** A "hold" delay lasts less than this (the shortest ping timeout), so no link drops. */
  readonly holdMsMax: number;
  /** Weight of each fault kind (0 disables it). */
  readonly weights: Readonly<Record<"alone" | "halves" | "bridge" | "ring" | "drop" | "delay" | "crash" | "wipe" | "leave", number>>;
}

export const defaultFaultWeights: NemesisSettings["weights"] = {
  alone: 3,
  halves: 3,
  bridge: 3,
  ring: 2,
  drop: 4,
  delay: 3,
  crash: 3,
  wipe: 1,
  leave: 1,
};

export function planFaults(random: Random, replicaIds: readonly string[], settings: NemesisSettings): Fault[] {
  const faults: Fault[] = [];
  const count = random.int(1, settings.faultsMax);
  const kinds = Object.entries(settings.weights).filter(([kind, weight]) => weight > 0 && (kind !== "ring" || replicaIds.length >= 4));
  for (let index = 0; index < count; index++) {
    const kind = random.weighted(kinds.map(([name, weight]) => [name, weight] as const));
    const at = random.real(0, settings.chaosMs);
    const durationMs = random.real(20, settings.chaosMs / 2);
    switch (kind) {
      case "alone":
      case "halves":
      case "bridge":
      case "ring":
        faults.push({ kind: "partition", shape: kind, at, durationMs, cuts: partitionCuts(random, replicaIds, kind) });
        break;
      case "drop":
        for (let flap = random.int(1, 3); flap > 0; flap--) faults.push({ kind: "drop", at: random.real(at, at + durationMs), pair: pair(random, replicaIds) });
        break;
      case "delay": {
        const how = random.chance(0.5) ? "hold" : "slow";
        const hold = how === "hold" ? random.real(5, settings.holdMsMax) : durationMs;
        faults.push({ kind: "delay", at, durationMs: hold, pair: pair(random, replicaIds), how, extraMs: random.real(5, 80) });
        break;
      }
      case "crash":
      case "wipe":
        faults.push({ kind: "crash", at, durationMs, replicaId: random.pick(replicaIds), loseStorage: kind === "wipe" });
        break;
      case "leave":
        // One replica at most leaves a run.
        if (!faults.some((fault) => fault.kind === "leave")) faults.push({ kind: "leave", at, replicaId: random.pick(replicaIds) });
        break;
      default:
        throw new Error(`unknown fault kind ${kind}`);
    }
  }
  return faults.sort((a, b) => a.at - b.at);
}

/** The pairs a partition of this shape cuts. */
export function partitionCuts(random: Random, replicaIds: readonly string[], shape: "alone" | "halves" | "bridge" | "ring"): [string, string][] {
  const order = random.shuffle(replicaIds);
  const cuts: [string, string][] = [];
  const cutBetween = (left: readonly string[], right: readonly string[]) => {
    for (const a of left) for (const b of right) cuts.push([a, b]);
  };
  switch (shape) {
    case "alone":
      cutBetween(order.slice(0, 1), order.slice(1));
      break;
    case "halves": {
      const split = random.int(1, order.length - 1);
      cutBetween(order.slice(0, split), order.slice(split));
      break;
    }
    case "bridge": {
      // order[0] is the bridge: it sees both sides, which do not see each other.
      const rest = order.slice(1);
      const split = random.int(1, rest.length - 1);
      cutBetween(rest.slice(0, split), rest.slice(split));
      break;
    }
    case "ring": {
      // Each replica sees its two ring neighbours: with 4 or 5 replicas a majority, but no two see the same one.
      const reach = 1;
      for (let i = 0; i < order.length; i++) {
        for (let j = i + 1; j < order.length; j++) {
          const distance = Math.min(j - i, order.length - (j - i));
          if (distance > reach) cuts.push([order[i]!, order[j]!]);
        }
      }
      break;
    }
  }
  return cuts;
}

function pair(random: Random, replicaIds: readonly string[]): [string, string] {
  const [a, b] = random.shuffle(replicaIds);
  return [a!, b!];
}

export function describeFault(fault: Fault): string {
  const at = `t=${fault.at.toFixed(1)}`;
  switch (fault.kind) {
    case "partition":
      return `${at} partition ${fault.shape} for ${fault.durationMs.toFixed(0)} ms, cut ${fault.cuts.map(([a, b]) => `${a}-${b}`).join(" ")}`;
    case "drop":
      return `${at} drop link ${fault.pair.join("-")}`;
    case "delay":
      return `${at} delay ${fault.pair.join("-")} (${fault.how}${fault.how === "slow" ? ` +${fault.extraMs.toFixed(0)} ms` : ""}) for ${fault.durationMs.toFixed(0)} ms`;
    case "crash":
      return `${at} crash ${fault.replicaId}${fault.loseStorage ? " losing its storage" : ""}, restart after ${fault.durationMs.toFixed(0)} ms`;
    case "leave":
      return `${at} ${fault.replicaId} leaves for good (stopped once retired)`;
  }
}
