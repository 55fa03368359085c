// Steady load on a shop of batch_init'ed items, users and orders, for chaos runs:
// a seeded mix of checkouts (each order at most once), stock add/subtract, credit
// add_funds/pay and reads. Each replica gets its share of the workers, and each
// worker sends one request at a time to its replica. A request still in flight
// after 4 times the replica's recent median answer time (25-500 ms) is stuck:
// another worker takes its place (up to workersPerShareMax times the share), as
// other clients would keep coming. So a replica that hangs (SIGSTOP, a black hole)
// holds only its own workers, and a replica where some requests wait long (2 s for
// rights a silent peer holds) keeps its share of requests that are not stuck: its
// 2xx rate drops only if it stalls those too. (A plain closed loop would not: with
// a tenth of the requests waiting 2 s, every worker would soon be waiting.) Every
// request is recorded with its outcome, so a ledger of acknowledged writes can be
// drawn up afterwards (ChaosLedger).
import { setTimeout as sleep } from "node:timers/promises";
import { type HttpOutcome, send } from "../net/httpClient.js";
import { randomSource } from "../random.js";

export type OpKind = "checkout" | "addStock" | "subtract" | "addFunds" | "pay" | "findItem" | "findUser" | "findOrder";
export const opKinds: readonly OpKind[] = ["checkout", "addStock", "subtract", "addFunds", "pay", "findItem", "findUser", "findOrder"];

/**
 * "unknown": a timeout or a connection error after connecting; the write may or
 * may not have happened. "refused": the connection was refused (the replica is
 * down), so no request was sent and nothing happened.
 */
export type Outcome = "2xx" | "4xx" | "5xx" | "unknown" | "refused";

export interface OpRecord {
  readonly kind: OpKind;
  readonly replicaIndex: number;
  /** Item, user or order id. */
  readonly id: string;
  readonly amount: number;
  readonly outcome: Outcome;
  /** HTTP status, 0 for unknown. */
  readonly status: number;
  readonly startedMs: number;
  readonly endedMs: number;
  /** Status and body of the answer (cut short), or the error. */
  readonly detail: string;
}

export interface ShopShape {
  readonly items: number;
  readonly itemStock: number;
  readonly users: number;
  readonly userCredit: number;
  readonly orders: number;
}

export interface LoadOptions {
  /** Each replica's current base URL; asked again for every request (a restarted replica moves). */
  readonly urls: () => readonly string[];
  readonly shape: ShopShape;
  /** Requests in flight at once, over all replicas (each replica gets its share of the workers). */
  readonly concurrency: number;
  readonly seed: number;
  /** Past it a request's outcome is unknown. */
  readonly timeoutMs: number;
  /** Relative weight of each kind of request. */
  readonly weights?: Partial<Record<OpKind, number>>;
  /**
   * A request in flight longer than stuckAnswerTimes × the replica's recent median
   * answer time, within these bounds, is stuck and its worker is replaced (default
   * stuckAfterMsBoundsDefault).
   */
  readonly stuckAfterMsBounds?: readonly [min: number, max: number];
}

export const stuckAfterMsBoundsDefault: readonly [number, number] = [25, 500];
const stuckAnswerTimes = 4;
/** Answer times kept per replica for its recent median. */
const answerTimesKept = 64;
/**
 * Workers of one replica at most, stuck ones included, as a multiple of its share.
 * A checkout that needs a silent peer's rights waits up to --rights-wait-ms (2 s):
 * at ~1,000 requests a second per replica, a tenth of them such, ~200 are stuck at once.
 */
export const workersPerShareMax = 32;

export const defaultWeights: Readonly<Record<OpKind, number>> = {
  checkout: 30,
  addStock: 8,
  subtract: 12,
  addFunds: 8,
  pay: 12,
  findItem: 10,
  findUser: 10,
  findOrder: 10,
};

/** Largest amount drawn per kind of write (at least 1). */
const amountMax: Readonly<Partial<Record<OpKind, number>>> = { addStock: 5, subtract: 4, addFunds: 10, pay: 6 };
/** A worker whose replica refused the connection waits this long before its next request (no hot loop). */
const refusedPauseMs = 20;
/** Records kept; a run that makes more stops recording and says so (a bug in the sizing). */
const recordsMax = 2_000_000;
const detailCharsMax = 200;

interface PlannedOp {
  readonly kind: OpKind;
  readonly replicaIndex: number;
  readonly id: string;
  readonly amount: number;
}

export class ChaosLoad {
  readonly records: OpRecord[] = [];
  /** Reads that showed a negative stock or credit (G1), as "what: value". */
  readonly negativeReads: string[] = [];
  private readonly random: (n: number) => number;
  private readonly orderQueue: string[];
  private readonly weights: [OpKind, number][];
  private readonly weightTotal: number;
  private readonly inFlightCounts = new Map<string, number>();
  private running = false;
  private readonly workers = new Set<Promise<void>>();
  /** Per replica: workers at the start (its share of the concurrency). */
  private shares: number[] = [];
  /** Per replica: workers running, stuck ones included. */
  private workerCounts: number[] = [];
  /** Per replica: workers whose request is not stuck. */
  private freshCounts: number[] = [];
  /** Per replica: the most workers it had at once. */
  private workerPeaks: number[] = [];
  /** Per replica: the last answer times (ms), oldest first, and when a request becomes stuck. */
  private answerTimes: number[][] = [];
  private stuckAfterMs: number[] = [];
  private readonly started = performance.now();

  constructor(private readonly options: LoadOptions) {
    this.random = randomSource(options.seed);
    this.orderQueue = Array.from({ length: options.shape.orders }, (_, index) => String(index));
    for (let index = this.orderQueue.length - 1; index > 0; index--) {
      const other = this.random(index + 1);
      [this.orderQueue[index], this.orderQueue[other]] = [this.orderQueue[other]!, this.orderQueue[index]!];
    }
    this.weights = opKinds.map((kind) => [kind, options.weights?.[kind] ?? defaultWeights[kind]]);
    this.weightTotal = this.weights.reduce((sum, [, weight]) => sum + weight, 0);
    if (this.weightTotal <= 0) throw new RangeError("the weights must add up to more than 0");
  }

  /** Milliseconds since this load was made (the clock of every record). */
  now(): number {
    return performance.now() - this.started;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const replicas = this.options.urls().length;
    if (this.options.concurrency < replicas)
      throw new RangeError(`concurrency ${this.options.concurrency} is below the ${replicas} replicas: some would get no load`);
    this.shares = Array.from(
      { length: replicas },
      (_, index) => Math.floor(this.options.concurrency / replicas) + (index < this.options.concurrency % replicas ? 1 : 0),
    );
    this.workerCounts = this.shares.map(() => 0);
    this.freshCounts = this.shares.map(() => 0);
    this.workerPeaks = this.shares.map(() => 0);
    this.answerTimes = this.shares.map(() => []);
    this.stuckAfterMs = this.shares.map(() => this.stuckBounds[1]);
    for (const [replicaIndex, share] of this.shares.entries()) for (let worker = 0; worker < share; worker++) this.spawn(replicaIndex);
  }

  /**
   * Gives a replica that joined (the next index of urls()) workers of its own, as
   * many as the first replica's share: new clients come with a new replica, and the
   * others keep theirs. Returns its index.
   */
  addReplica(): number {
    if (!this.running) throw new Error("the load is not running");
    const replicaIndex = this.shares.length;
    if (this.options.urls().length <= replicaIndex) throw new RangeError(`no URL for replica index ${replicaIndex}`);
    this.shares.push(this.shares[0]!);
    this.workerCounts.push(0);
    this.freshCounts.push(0);
    this.workerPeaks.push(0);
    this.answerTimes.push([]);
    this.stuckAfterMs.push(this.stuckBounds[1]);
    for (let worker = 0; worker < this.shares[0]!; worker++) this.spawn(replicaIndex);
    return replicaIndex;
  }

  /** Stops sending; resolves once every request in flight has its outcome (each is bounded by timeoutMs). */
  async stop(): Promise<void> {
    this.running = false;
    while (this.workers.size > 0) await Promise.all([...this.workers]);
  }

  private get stuckBounds(): readonly [number, number] {
    return this.options.stuckAfterMsBounds ?? stuckAfterMsBoundsDefault;
  }

  /** Keeps the replica's recent answer times and, every so often, its stuck threshold. */
  private noteAnswerTime(replicaIndex: number, tookMs: number): void {
    const times = this.answerTimes[replicaIndex]!;
    times.push(tookMs);
    if (times.length > answerTimesKept) times.shift();
    if (times.length % 8 !== 0) return;
    const median = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
    const [min, max] = this.stuckBounds;
    this.stuckAfterMs[replicaIndex] = Math.min(max, Math.max(min, stuckAnswerTimes * median));
  }

  /** Per replica: the most workers it had at once (its share, plus those that replaced stuck ones). */
  get workersPeak(): readonly number[] {
    return this.workerPeaks;
  }

  /** Requests of `kind` in flight at replica `replicaIndex` now. */
  inFlight(replicaIndex: number, kind: OpKind): number {
    return this.inFlightCounts.get(`${replicaIndex}:${kind}`) ?? 0;
  }

  /** Requests of any kind in flight at replica `replicaIndex` now. */
  inFlightAt(replicaIndex: number): number {
    return opKinds.reduce((sum, kind) => sum + this.inFlight(replicaIndex, kind), 0);
  }

  /** Orders not yet sent to checkout. */
  get ordersLeft(): number {
    return this.orderQueue.length;
  }

  private spawn(replicaIndex: number): void {
    this.workerCounts[replicaIndex]! += 1;
    this.freshCounts[replicaIndex]! += 1;
    this.workerPeaks[replicaIndex] = Math.max(this.workerPeaks[replicaIndex]!, this.workerCounts[replicaIndex]!);
    const worker: Promise<void> = this.work(replicaIndex).finally(() => {
      this.workerCounts[replicaIndex]! -= 1;
      this.workers.delete(worker);
    });
    this.workers.add(worker);
  }

  /**
   * One worker: requests to replica `replicaIndex`, one at a time, each bounded by
   * timeoutMs. Once its request is stuck, a new worker takes its place (within the
   * bound); when the stuck request ends, this worker stops if the replica has its
   * share of workers that are not stuck.
   */
  private async work(replicaIndex: number): Promise<void> {
    const workersMax = this.shares[replicaIndex]! * workersPerShareMax;
    while (this.running) {
      const op = this.plan(replicaIndex);
      const counter = `${op.replicaIndex}:${op.kind}`;
      this.inFlightCounts.set(counter, (this.inFlightCounts.get(counter) ?? 0) + 1);
      const startedMs = this.now();
      const url = this.options.urls()[op.replicaIndex]!;
      let stuck = false;
      const stuckTimer = setTimeout(() => {
        stuck = true;
        this.freshCounts[replicaIndex]! -= 1;
        if (this.running && this.workerCounts[replicaIndex]! < workersMax) this.spawn(replicaIndex);
      }, this.stuckAfterMs[replicaIndex]);
      const outcome = await send(url, ...requestOf(op), this.options.timeoutMs);
      clearTimeout(stuckTimer);
      if (!(outcome.kind === "error" && outcome.message === "ECONNREFUSED")) this.noteAnswerTime(replicaIndex, this.now() - startedMs);
      this.inFlightCounts.set(counter, this.inFlightCounts.get(counter)! - 1);
      this.record(op, outcome, startedMs);
      if (stuck) {
        if (this.freshCounts[replicaIndex]! >= this.shares[replicaIndex]!) return;
        this.freshCounts[replicaIndex]! += 1;
      }
      if (outcome.kind === "error" && outcome.message === "ECONNREFUSED") await sleep(refusedPauseMs);
    }
    this.freshCounts[replicaIndex]! -= 1;
  }

  private plan(replicaIndex: number): PlannedOp {
    const { shape } = this.options;
    let kind = this.pickKind();
    if (kind === "checkout" && this.orderQueue.length === 0) kind = "findOrder";
    switch (kind) {
      case "checkout":
        return { kind, replicaIndex, id: this.orderQueue.pop()!, amount: 0 };
      case "findOrder":
        return { kind, replicaIndex, id: String(this.random(shape.orders)), amount: 0 };
      case "addStock":
      case "subtract":
      case "findItem":
        return { kind, replicaIndex, id: String(this.random(shape.items)), amount: 1 + this.random(amountMax[kind] ?? 1) };
      case "addFunds":
      case "pay":
      case "findUser":
        return { kind, replicaIndex, id: String(this.random(shape.users)), amount: 1 + this.random(amountMax[kind] ?? 1) };
    }
  }

  private pickKind(): OpKind {
    let draw = this.random(this.weightTotal);
    for (const [kind, weight] of this.weights) {
      if (draw < weight) return kind;
      draw -= weight;
    }
    return "findItem";
  }

  private record(op: PlannedOp, outcome: HttpOutcome, startedMs: number): void {
    const endedMs = this.now();
    const status = outcome.kind === "answer" ? outcome.status : 0;
    const result: Outcome =
      outcome.kind !== "answer"
        ? outcome.kind === "error" && outcome.message === "ECONNREFUSED"
          ? "refused"
          : "unknown"
        : status >= 200 && status < 300
          ? "2xx"
          : status >= 400 && status < 500
            ? "4xx"
            : "5xx";
    const detail = outcome.kind === "answer" ? `${status} ${outcome.text.slice(0, detailCharsMax)}` : outcome.kind === "timeout" ? "timeout" : outcome.message;
    if (result === "2xx" && outcome.kind === "answer") this.checkRead(op, outcome.text);
    if (this.records.length < recordsMax) this.records.push({ ...op, outcome: result, status, startedMs, endedMs, detail });
  }

  /** G1 as clients see it: no read ever shows a negative stock or credit. */
  private checkRead(op: PlannedOp, text: string): void {
    const field = op.kind === "findItem" ? "stock" : op.kind === "findUser" ? "credit" : null;
    if (field === null) return;
    let value: unknown;
    try {
      value = (JSON.parse(text) as Record<string, unknown>)[field];
    } catch {
      value = undefined;
    }
    if (typeof value !== "number" || value < 0) this.negativeReads.push(`${op.kind} ${op.id} at replica ${op.replicaIndex + 1}: ${field} ${String(value)}`);
  }
}

function requestOf(op: PlannedOp): [method: string, path: string] {
  switch (op.kind) {
    case "checkout":
      return ["POST", `/orders/checkout/${op.id}`];
    case "addStock":
      return ["POST", `/stock/add/${op.id}/${op.amount}`];
    case "subtract":
      return ["POST", `/stock/subtract/${op.id}/${op.amount}`];
    case "addFunds":
      return ["POST", `/payment/add_funds/${op.id}/${op.amount}`];
    case "pay":
      return ["POST", `/payment/pay/${op.id}/${op.amount}`];
    case "findItem":
      return ["GET", `/stock/find/${op.id}`];
    case "findUser":
      return ["GET", `/payment/find_user/${op.id}`];
    case "findOrder":
      return ["GET", `/orders/find/${op.id}`];
  }
}
