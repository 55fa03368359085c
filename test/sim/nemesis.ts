// The faults of one run, drawn from its seed: partitions (one replica alone,
// halves, a bridge replica that sees both sides, a ring where each replica sees a
// majority), links that drop (down, then a reconnect), delays (a cut shorter than
// the ping timeout, or slow links), crashes that keep storage and crashes that
// lose it, a replica that leaves for good, and new replicas that join the running
// cluster (with a leave, a second join, a partition or their own crash at about the
// same time). Faults may overlap; at the end of the chaos everything heals.
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
  | { readonly kind: "leave"; readonly at: number; readonly replicaId: string }
  /**
   * A new replica id starts on an empty disk and joins (Replica.join), as main.ts's
   * --join does: it dials its seeds (founders) whenever it has no link up, and names
   * the founders as configured peers (--peers, one setting for a StatefulSet) or none.
   */
  | { readonly kind: "join"; readonly at: number; readonly replicaId: string; readonly seeds: readonly string[]; readonly configured: boolean }
  /** A joiner's process dies before it has joined and never comes back (its entry stays joining); one that joined restarts at heal. */
  | { readonly kind: "abandon"; readonly at: number; readonly replicaId: string };

export interface NemesisSettings {
  readonly chaosMs: number;
  readonly faultsMax: number;
  /** A "hold" delay lasts less than this (the shortest ping timeout), so no link drops. */
  readonly holdMsMax: number;
  /** Weight of each fault kind (0 disables it). */
  readonly weights: Readonly<Record<"alone" | "halves" | "bridge" | "ring" | "drop" | "delay" | "crash" | "wipe" | "leave" | "join", number>>;
}

/** Most replicas that join one run: the membership document is small, and so is a run. */
export const joinsMax = 2;

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
  // Only when asked (--weights join=N: the CI's join seeds, the sweep's join mix): the other seeds keep their schedules.
  join: 0,
};

/**
 * The faults of one run over the founders `replicaIds` (r1..rN): a joiner is named
 * r(N+1), r(N+2), and faults drawn after its join may hit it too.
 */
export function planFaults(random: Random, replicaIds: readonly string[], settings: NemesisSettings): Fault[] {
  const faults: Fault[] = [];
  const ids = [...replicaIds];
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
        faults.push({ kind: "partition", shape: kind, at, durationMs, cuts: partitionCuts(random, ids, kind) });
        break;
      case "drop":
        for (let flap = random.int(1, 3); flap > 0; flap--) faults.push({ kind: "drop", at: random.real(at, at + durationMs), pair: pair(random, ids) });
        break;
      case "delay": {
        const how = random.chance(0.5) ? "hold" : "slow";
        const hold = how === "hold" ? random.real(5, settings.holdMsMax) : durationMs;
        faults.push({ kind: "delay", at, durationMs: hold, pair: pair(random, ids), how, extraMs: random.real(5, 80) });
        break;
      }
      case "crash":
      case "wipe":
        faults.push({ kind: "crash", at, durationMs, replicaId: random.pick(ids), loseStorage: kind === "wipe" });
        break;
      case "leave":
        // One replica at most leaves a run.
        if (!faults.some((fault) => fault.kind === "leave")) faults.push({ kind: "leave", at, replicaId: random.pick(ids) });
        break;
      case "join":
        if (join(random, replicaIds, ids, faults, at)) alongJoin(random, replicaIds, ids, faults, settings, at);
        break;
      default:
        throw new Error(`unknown fault kind ${kind}`);
    }
  }
  // A joiner's seeds are founders that stay: one that retires before the joiner links would leave it nobody to dial.
  const leaver = faults.find((fault) => fault.kind === "leave")?.replicaId;
  const staying = replicaIds.filter((replicaId) => replicaId !== leaver);
  const withSeeds = faults.map((fault) => {
    if (fault.kind !== "join" || leaver === undefined || !fault.seeds.includes(leaver)) return fault;
    const seeds = fault.seeds.filter((seed) => seed !== leaver);
    return { ...fault, seeds: seeds.length > 0 ? seeds : staying.slice(0, 1) };
  });
  return withSeeds.sort((a, b) => a.at - b.at);
}

/** A join of the next replica id, unless `joinsMax` did already; its seeds are one or two founders. */
function join(random: Random, founders: readonly string[], ids: string[], faults: Fault[], at: number): boolean {
  if (ids.length - founders.length >= joinsMax) return false;
  const replicaId = `r${ids.length + 1}`;
  ids.push(replicaId);
  faults.push({ kind: "join", at, replicaId, seeds: random.shuffle(founders).slice(0, random.int(1, 2)), configured: random.chance(0.5) });
  return true;
}

/**
 * What happens at about the time of a join, among the kinds the weights allow:
 * nothing more, a second join, a founder's leave, a partition in force over the
 * join, or the joiner's crash (restart, lost disk, or never back).
 */
function alongJoin(random: Random, founders: readonly string[], ids: string[], faults: Fault[], settings: NemesisSettings, at: number): void {
  const weights = settings.weights;
  const shapes = (["alone", "halves", "bridge", "ring"] as const).filter((shape) => weights[shape] > 0 && (shape !== "ring" || ids.length >= 4));
  const choices: (readonly ["nothing" | "join" | "leave" | "partition" | "crash", number])[] = [
    ["nothing", 3],
    ["join", 1],
    ["leave", weights.leave > 0 && !faults.some((fault) => fault.kind === "leave") ? 1 : 0],
    ["partition", shapes.length > 0 ? 1 : 0],
    ["crash", weights.crash + weights.wipe > 0 ? 2 : 0],
  ];
  const joiner = ids[ids.length - 1]!;
  switch (random.weighted(choices.filter(([, weight]) => weight > 0))) {
    case "nothing":
      break;
    case "join":
      join(random, founders, ids, faults, at + random.real(0, 10));
      break;
    case "leave":
      faults.push({ kind: "leave", at: Math.max(0, at + random.real(-30, 10)), replicaId: random.pick(founders) });
      break;
    case "partition": {
      const shape = random.pick(shapes);
      faults.push({
        kind: "partition",
        shape,
        at: Math.max(0, at - random.real(0, 100)),
        durationMs: random.real(50, settings.chaosMs / 2),
        cuts: partitionCuts(random, ids, shape),
      });
      break;
    }
    case "crash": {
      // Before it links, while it catches up, or just after it turned active: a restart joins again if its entry is still joining.
      const crashAt = at + random.real(0, 150);
      const how = random.weighted([
        ["restart", 2],
        ["wipe", 1],
        ["abandon", 1],
      ] as const);
      if (how === "abandon") faults.push({ kind: "abandon", at: crashAt, replicaId: joiner });
      else faults.push({ kind: "crash", at: crashAt, durationMs: random.real(20, settings.chaosMs / 2), replicaId: joiner, loseStorage: how === "wipe" });
      break;
    }
  }
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
    case "join":
      return `${at} ${fault.replicaId} joins through ${fault.seeds.join(", ")}${fault.configured ? " (founders configured as its peers)" : ""}`;
    case "abandon":
      return `${at} ${fault.replicaId} dies and never comes back, unless it joined already`;
  }
}
