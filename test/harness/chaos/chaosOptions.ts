// What a chaos run is asked to do (runChaos.ts): which faults, how long, under what load.
import { defaultMainScriptPath } from "./chaosCluster.js";
import type { ShopShape } from "./chaosLoad.js";

export type FaultName = "isolate" | "bridge" | "kill" | "wipe" | "pause" | "join";
export const faultNames: readonly FaultName[] = ["isolate", "bridge", "kill", "wipe", "pause", "join"];
/** The founding replicas; a `join` fault adds the next free id (r4) and has it leave afterwards. */
export const replicaIds = ["r1", "r2", "r3"] as const;

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
