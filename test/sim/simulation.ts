// One deterministic simulation run per seed: a cluster of 3-5 real replicas on the
// simulated network and virtual clock (with gossip, up to two more join it),
// clients issuing the API's operations, a nemesis injecting faults, then heal,
// quiet, and the checkers. The seed decides everything (cluster size, timeouts,
// latencies, faults, operations), so a failing seed replays exactly:
// `node dist/scripts/simulate.js --seed N --size small`.
import { createHash } from "node:crypto";
import { statesPerFrameMax } from "../../cluster/messages.js";
import type { Actor } from "../../crdt/boundedCounter.js";
import { ShopState, isRefusal } from "../../crdt/shopState.js";
import { OutcomeUnknownError, type Replica } from "../../node/replica.js";
import {
  type HistoryContext,
  type Violation,
  checkConvergence,
  checkDurable,
  checkHistory,
  checkReplica,
  describeViolations,
  checkNothingStranded,
  unexplainedByLostIncarnations,
} from "./checkers.js";
import { History, type Invocation, type Op, describeInvocation } from "./history.js";
import { type Fault, type NemesisSettings, defaultFaultWeights, describeFault, planFaults } from "./nemesis.js";
import { perform } from "./operations.js";
import { Random } from "../harness/random.js";
import { Scheduler, settle } from "./scheduler.js";
import { type ClusterSettings, type ReplicaSlot, SimCluster, durableShop } from "./simCluster.js";

export interface SimulationOptions {
  /** "small" (CI: shorter chaos, fewer clients and faults) or "large" (nightly). Default small. */
  readonly size?: "small" | "large";
  /**
   * Hold reads to "everything acknowledged anywhere" whenever every replica reaches
   * every other over some path of links, not only over direct links. Live
   * replication does not forward merged states, so this flags the bridge gap.
   */
  readonly transitive?: boolean;
  /** Run membership gossip as main.ts does (default: in 1 seed of 20; see ClusterSettings.gossip). */
  readonly gossip?: boolean;
  /** Fault weights instead of the defaults (0 disables a kind). */
  readonly faultWeights?: Partial<NemesisSettings["weights"]>;
  /** Stop at the first violation found after an event (default true: shorter histories). */
  readonly stopAtFirst?: boolean;
  /**
   * Fail runs that show a known issue instead of counting them (SeedResult.known):
   * "gap", replicas that still differ after heal and quiet time but converge once
   * every link reconnects (merged states travel only by anti-entropy on connect);
   * "stranded", rights that a replica which left for good still holds.
   */
  readonly strict?: boolean;
}

export interface Plan {
  readonly seed: number;
  readonly cluster: ClusterSettings;
  readonly clients: number;
  readonly chaosMs: number;
  readonly quietMs: number;
  readonly settleMs: number;
  /**
   * Reads are held to G6 (everything acknowledged anywhere) in connected windows
   * only when an ack can come back within ackWaitMsMax; with shorter waits every
   * peer is marked lagging and not waited for, by design.
   */
  readonly readYourWrites: boolean;
  readonly faults: readonly Fault[];
  /**
   * After heal, the operator releases the rights of incarnations that lost their
   * disk while every link was up and every peer had acked them (so nothing they
   * acknowledged is lost with them): POST /cluster/release at one replica.
   */
  readonly releaseLost: boolean;
  readonly items: number;
  readonly users: number;
  /**
   * Set up with batch_init (items, users and orders "0", "1", ...: keys computed from
   * one record each until they change) instead of create and add; in 1 seed of 3.
   */
  readonly batchInit: boolean;
}

export interface SeedResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly violations: readonly Violation[];
  /** Seed, plan, and (if any) the violations with the history that shows them. */
  readonly report: string;
  /** Digest of the history and final states: equal for two runs of one seed (determinism). */
  readonly fingerprint: string;
  /** Known issues the run showed ("gap: …", "stranded: …"); failures only with `strict`. */
  readonly known: readonly string[];
  readonly stats: {
    readonly events: number;
    readonly operations: number;
    readonly virtualMs: number;
    readonly framesDelivered: number;
    /** How each Replica.leave of the run ended: "retired", "draining" or a refusal's reason. */
    readonly leaves: readonly string[];
    /** How each replica that joined ended: "active…" (SimCluster.joins) or "abandoned". */
    readonly joins: readonly string[];
    /** How each release of a lost incarnation's rights ended: "released N" or a refusal's reason. */
    readonly releases: readonly string[];
    /** Checkouts handed to the token's holder, and those of them whose outcome stayed unknown (the client got no answer). */
    readonly checkoutsHandedOn: number;
    readonly checkoutsUnknown: number;
  };
}

/** Beyond the rights and ack waits, what an answer may take: flushes and a few frames. */
const answerSlackMs = 50;
/** Virtual time before the clients start: the replicas open and link up. */
const startMs = 40;
const opWeights: readonly (readonly [Op["f"], number])[] = [
  ["addStock", 10],
  ["subtractStock", 10],
  ["readItem", 8],
  ["addFunds", 8],
  ["pay", 8],
  ["readUser", 8],
  ["createOrder", 7],
  ["addItem", 12],
  ["checkout", 10],
  ["readOrder", 6],
];

export function planSeed(seed: number, options: SimulationOptions = {}): Plan {
  const random = new Random(seed);
  const replicaCount = random.int(3, 5);
  const replicaIds = Array.from({ length: replicaCount }, (_, index) => `r${index + 1}`);
  const latencyLeast = random.real(0.1, 1);
  const latencyMost = latencyLeast + random.real(0.5, 5);
  const detectMs = [random.real(200, 400), random.real(400, 900)] as const;
  // Now and then a slow disk, or waits as short as the network's delays.
  const flushMost = random.chance(0.1) ? random.real(5, 60) : random.real(0.05, 3);
  const ackWaitMsMax = random.chance(0.1) ? random.int(1, 10) : random.int(15, 150);
  const rightsWaitMsMax = random.chance(0.1) ? random.int(1, 20) : random.int(40, 500);
  const cluster: Omit<ClusterSettings, "joiners"> = {
    replicaIds,
    ackWaitMsMax,
    rightsWaitMsMax,
    catchUpMsMax: random.int(50, 800),
    flushDelayMs: [0, flushMost],
    gossip: options.gossip ?? random.chance(0.05),
    statesPerFrame: statesPerFrameOf(seed),
    network: {
      latencyMs: [latencyLeast, latencyMost],
      detectMs,
      redialMs: [5, random.real(10, 60)],
      replayProbability: random.chance(0.3) ? 0.5 : 0,
    },
  };
  const large = options.size === "large";
  const chaosMs = large ? random.int(600, 2400) : random.int(300, 900);
  const faults = planFaults(random, replicaIds, {
    chaosMs,
    faultsMax: large ? 8 : 4,
    holdMsMax: detectMs[0] - 10,
    // Leaving and joining need membership gossip: peers must learn that a replica drains, or
    // that a new one exists (without gossip every disk starts with one document of the founders).
    weights: { ...defaultFaultWeights, ...options.faultWeights, ...(cluster.gossip ? {} : { leave: 0, join: 0 }) },
  });
  const joiners = faults.flatMap((fault) => (fault.kind === "join" ? [{ replicaId: fault.replicaId, seeds: fault.seeds, configured: fault.configured }] : []));
  return {
    seed,
    cluster: { ...cluster, joiners },
    clients: large ? random.int(2, 5) : random.int(2, 3),
    chaosMs,
    quietMs: 6000,
    settleMs: 2 * ackWaitMsMax + 20 * latencyMost + 4 * flushMost + 20,
    readYourWrites: ackWaitMsMax >= 2 * latencyMost + 1,
    faults,
    releaseLost: new Random(seed ^ 0x7e1ea5e).chance(0.5),
    batchInit: new Random(seed ^ 0xba7c4).chance(1 / 3),
    items: random.int(2, 3),
    users: random.int(2, 3),
  };
}

/**
 * In a third of the seeds, frames of 1-4 states, so that batches and catch-ups
 * arrive in many frames (a real catch-up of many keys does). Drawn from a stream
 * of its own, so adding it left every other draw of a seed as it was.
 */
function statesPerFrameOf(seed: number): number {
  const random = new Random(seed ^ 0x51a7e5);
  return random.chance(1 / 3) ? random.int(1, 4) : statesPerFrameMax;
}

export async function runSeed(seed: number, options: SimulationOptions = {}): Promise<SeedResult> {
  const plan = planSeed(seed, options);
  const run = new Run(plan, options);
  const restoreRandom = seedWebCrypto(new Random(seed ^ 0x5eed));
  const rejections: string[] = [];
  const onRejection = (reason: unknown) => rejections.push(`unhandled rejection: ${String(reason)}`);
  process.on("unhandledRejection", onRejection);
  try {
    await run.execute();
  } finally {
    process.off("unhandledRejection", onRejection);
    restoreRandom();
  }
  for (const rejection of rejections) run.violations.push({ message: rejection, invocations: [], keys: [] });
  const ok = run.violations.length === 0;
  return {
    seed,
    ok,
    violations: run.violations,
    report: run.report(),
    fingerprint: run.fingerprint(),
    known: run.known,
    stats: {
      events: run.scheduler.eventsRun,
      operations: run.history.invocations.length,
      virtualMs: run.scheduler.now,
      framesDelivered: run.cluster.network.framesDelivered,
      leaves: run.leaves,
      joins: [...run.cluster.joins, ...[...run.abandoned].map(() => "abandoned")],
      releases: run.releases,
      checkoutsHandedOn: [...run.cluster.checkoutsHandedTo.values()].reduce((sum, runners) => sum + runners.size, 0),
      checkoutsUnknown: run.checkoutsUnknown,
    },
  };
}

interface Client {
  readonly index: number;
  readonly random: Random;
  /** Operations to issue before random ones (the setup client's creates). */
  readonly queue: Op[];
  current: Invocation | undefined;
}

class Run {
  readonly scheduler = new Scheduler();
  readonly history = new History();
  readonly cluster: SimCluster;
  readonly violations: Violation[] = [];
  private readonly random: Random;
  private readonly clients: Client[] = [];
  private readonly chaosEndMs: number;
  private readonly activeCuts = new Set<Fault>();
  private readonly lostActors = new Set<Actor>();
  /** Replicas that left for good, with their last incarnation. */
  private readonly retired = new Map<string, Actor>();
  /** Joiners that died before they joined and stay away (their entries stay joining). */
  readonly abandoned = new Set<string>();
  private readonly windows: [number, number][] = [];
  private windowStart: number | undefined;
  private nextOrder = 0;
  private readonly orders: string[] = [];
  private stopped = false;
  private phase = "chaos";
  readonly known: string[] = [];
  readonly leaves: string[] = [];
  readonly releases: string[] = [];
  /** Operations whose replica could not learn their outcome (OutcomeUnknownError). */
  checkoutsUnknown = 0;
  /** Lost incarnations the operator releases after heal (Plan.releaseLost), and those released. */
  private readonly releasable: Actor[] = [];
  private readonly released: Actor[] = [];
  private networkVersion = -1;
  private connected = false;
  private readonly slowLinks = new Set<Fault>();

  constructor(
    private readonly plan: Plan,
    private readonly options: SimulationOptions,
  ) {
    this.random = new Random(plan.seed ^ 0x9e3779b9);
    this.cluster = new SimCluster(this.scheduler, this.random.fork(), plan.cluster);
    this.chaosEndMs = startMs + plan.chaosMs;
  }

  async execute(): Promise<void> {
    for (const slot of this.cluster.slots) if (slot.joiner === undefined) this.scheduler.after(0, () => this.cluster.start(slot));
    this.planClients();
    for (const fault of this.plan.faults) this.scheduleFault(fault);
    this.scheduler.after(this.chaosEndMs, () => this.heal());
    await this.scheduler.runUntil(this.chaosEndMs + this.plan.quietMs, () => this.afterEvent());
    if (this.windowStart !== undefined) this.windows.push([this.windowStart, Number.POSITIVE_INFINITY]);
    this.windowStart = undefined;
    this.phase = "quiet";
    await settle();
    if (!this.stopped) await this.finalChecks();
  }

  // ---- clients

  private planClients(): void {
    const setup = this.plan.batchInit ? this.batchSetup() : this.createSetup();
    for (let index = 0; index < this.plan.clients; index++) {
      const client: Client = { index, random: this.random.fork(), queue: index === 0 ? setup : [], current: undefined };
      this.clients.push(client);
      this.scheduler.after(startMs + (index === 0 ? 0 : this.random.real(20, 60)), () => this.step(client));
    }
  }

  private createSetup(): Op[] {
    const setup: Op[] = [];
    for (let index = 0; index < this.plan.items; index++) setup.push({ f: "createItem", item: `i${index}`, price: this.random.int(1, 4) });
    for (let index = 0; index < this.plan.users; index++) setup.push({ f: "createUser", user: `u${index}` });
    for (let index = 0; index < this.plan.items; index++) setup.push({ f: "addStock", item: `i${index}`, amount: this.random.int(3, 12) });
    for (let index = 0; index < this.plan.users; index++) setup.push({ f: "addFunds", user: `u${index}`, amount: this.random.int(10, 40) });
    return setup;
  }

  /** The course's three batch_init calls; every order starts with two lines at `price` each. */
  private batchSetup(): Op[] {
    const { items, users } = this.plan;
    const price = this.random.int(1, 4);
    return [
      { f: "batchInitItems", count: items, amount: this.random.int(3, 12), price },
      { f: "batchInitUsers", count: users, amount: this.random.int(10, 40) },
      { f: "batchInitOrders", count: this.random.int(4, 12), itemCount: items, userCount: users, price, seed: this.random.int(0, 2 ** 31) },
    ];
  }

  private step(client: Client): void {
    if (this.scheduler.now >= this.chaosEndMs || this.stopped) return;
    const running = this.cluster.serving();
    if (running.length === 0) {
      this.scheduler.after(10, () => this.step(client));
      return;
    }
    const slot = client.random.pick(running);
    const replica = slot.replica!;
    const life = slot.life;
    const op = client.queue.shift() ?? this.nextOp(client.random);
    if (op.f === "createOrder") this.orders.push(op.order);
    if (op.f === "batchInitOrders") for (let index = 0; index < op.count; index++) this.orders.push(String(index));
    const invocation = this.history.invoke(client.index, slot.replicaId, replica.shop.actor, op, this.scheduler.now);
    client.current = invocation;
    perform(replica, op).then(
      (result) => {
        if (!life.alive || invocation.outcome !== "pending") return;
        if (result.ok) this.history.complete(invocation, "ok", this.scheduler.now, result.value);
        else this.history.complete(invocation, "fail", this.scheduler.now, undefined, result.reason);
        this.next(client);
      },
      (error: unknown) => {
        if (!life.alive || invocation.outcome !== "pending") return;
        // A checkout handed to its token's holder whose answer was lost: an outcome the replica may not guess.
        if (error instanceof OutcomeUnknownError) {
          this.checkoutsUnknown += 1;
          this.history.complete(invocation, "unknown", this.scheduler.now, undefined, error.message);
          this.next(client);
          return;
        }
        this.violations.push({ message: `${describeOpError(invocation)} threw: ${errorText(error)}`, invocations: [invocation.index], keys: [] });
        this.history.complete(invocation, "unknown", this.scheduler.now, undefined, "threw");
        this.next(client);
      },
    );
  }

  private next(client: Client): void {
    client.current = undefined;
    this.scheduler.after(client.random.real(0, 25), () => this.step(client));
  }

  private nextOp(random: Random): Op {
    const [itemPrefix, userPrefix] = this.plan.batchInit ? ["", ""] : ["i", "u"];
    const item = `${itemPrefix}${random.int(0, this.plan.items - 1)}`;
    const user = `${userPrefix}${random.int(0, this.plan.users - 1)}`;
    // Recent orders mostly, so orders get lines and checkouts.
    const order = this.orders.length === 0 ? undefined : this.orders[Math.max(0, this.orders.length - 1 - random.int(0, 3))]!;
    const f = random.weighted(opWeights);
    switch (f) {
      case "addStock":
        return { f, item, amount: random.int(1, 4) };
      case "subtractStock":
        return { f, item, amount: random.int(1, 3) };
      case "readItem":
        return { f, item };
      case "addFunds":
        return { f, user, amount: random.int(1, 15) };
      case "pay":
        return { f, user, amount: random.int(1, 8) };
      case "readUser":
        return { f, user };
      case "addItem":
        if (order !== undefined) return { f, order, item, quantity: random.int(1, 3) };
        break;
      case "checkout":
      case "readOrder":
        if (order !== undefined) return { f, order };
        break;
      default:
        break;
    }
    return { f: "createOrder", order: `o${this.nextOrder++}`, user };
  }

  // ---- faults

  private scheduleFault(fault: Fault): void {
    const at = startMs + fault.at;
    const endAt = Math.min(at + ("durationMs" in fault ? fault.durationMs : 0), this.chaosEndMs);
    switch (fault.kind) {
      case "partition":
        this.scheduler.after(at, () => this.setCut(fault, true));
        this.scheduler.after(endAt, () => this.setCut(fault, false));
        break;
      case "delay":
        if (fault.how === "hold") {
          this.scheduler.after(at, () => this.setCut(fault, true));
          this.scheduler.after(endAt, () => this.setCut(fault, false));
        } else {
          this.scheduler.after(at, () => this.setSlow(fault, true));
          this.scheduler.after(endAt, () => this.setSlow(fault, false));
        }
        break;
      case "drop":
        this.scheduler.after(at, () => this.cluster.network.breakLink(...fault.pair));
        break;
      case "crash":
        this.scheduler.after(at, () => this.crash(this.cluster.slot(fault.replicaId), fault.loseStorage));
        this.scheduler.after(endAt, () => this.start(this.cluster.slot(fault.replicaId)));
        break;
      case "leave":
        this.scheduler.after(at, () => this.leave(this.cluster.slot(fault.replicaId)));
        break;
      case "join":
        this.scheduler.after(at, () => this.cluster.start(this.cluster.slot(fault.replicaId)));
        break;
      case "abandon":
        this.scheduler.after(at, () => this.abandon(this.cluster.slot(fault.replicaId)));
        break;
    }
  }

  private setCut(fault: Fault, active: boolean): void {
    if (active && this.scheduler.now < this.chaosEndMs) this.activeCuts.add(fault);
    else this.activeCuts.delete(fault);
    const cuts: (readonly [string, string])[] = [];
    for (const cut of this.activeCuts) {
      if (cut.kind === "partition") cuts.push(...cut.cuts);
      else if (cut.kind === "delay") cuts.push(cut.pair);
    }
    this.cluster.network.setCuts(cuts);
  }

  private setSlow(fault: Fault & { kind: "delay" }, active: boolean): void {
    if (active && this.scheduler.now >= this.chaosEndMs) return;
    if (active) this.slowLinks.add(fault);
    else if (!this.slowLinks.delete(fault)) return;
    this.cluster.network.setSlow(...fault.pair, active ? fault.extraMs : 0);
  }

  /** A restart: not of a replica that left or was given up, nor of a joiner before its join. */
  private start(slot: ReplicaSlot): void {
    if (!this.retired.has(slot.replicaId) && !this.abandoned.has(slot.replicaId) && slot.starts > 0) this.cluster.start(slot);
  }

  /** A joiner that has not joined dies for good: the operator gives up on it. One that joined only crashes (heal restarts it). */
  private abandon(slot: ReplicaSlot): void {
    if (this.scheduler.now >= this.chaosEndMs || slot.starts === 0) return;
    if (slot.servedOnce) return this.crash(slot, false);
    this.cluster.crash(slot, false);
    this.abandoned.add(slot.replicaId);
    this.cluster.network.retire(slot.replicaId);
  }

  /**
   * Replica.leave, as POST /cluster/leave does: the request waits while the replica
   * catches up or joins (api/readiness.ts). Once retired, it is stopped for good.
   */
  private leave(slot: ReplicaSlot): void {
    const replica = slot.replica;
    if (replica === undefined || !slot.life.alive || this.scheduler.now >= this.chaosEndMs) return;
    if (!slot.serving) return void this.scheduler.after(10, () => this.leave(slot), slot.life);
    const life = slot.life;
    const log = (message: string) => this.cluster.log.push({ at: this.scheduler.now, replicaId: slot.replicaId, level: "warn", message });
    log("leaving");
    replica.leave().then(
      (report) => {
        if (!life.alive) return;
        log(`leave: ${JSON.stringify(report)}`);
        this.leaves.push("state" in report ? report.state : report.reason);
        if (!("state" in report) || report.state !== "retired") return;
        this.retired.set(slot.replicaId, replica.shop.actor);
        this.cluster.network.retire(slot.replicaId);
        this.unknownAt(slot.replicaId, "replica left");
        this.cluster.stop(slot);
      },
      (error: unknown) => this.violations.push({ message: `leave at ${slot.replicaId} threw: ${errorText(error)}`, invocations: [], keys: [] }),
    );
  }

  private crash(slot: ReplicaSlot, loseStorage: boolean): void {
    if (!slot.life.alive || this.scheduler.now >= this.chaosEndMs) return;
    if (loseStorage && slot.replica !== undefined) {
      this.lostActors.add(slot.replica.shop.actor);
      if (this.plan.releaseLost && this.connectedAndAcked(slot.replica)) this.releasable.push(slot.replica.shop.actor);
    }
    this.cluster.crash(slot, loseStorage);
    this.unknownAt(slot.replicaId, "replica crashed");
  }

  /** Every link is up and every peer has acked all `replica` sent: nothing it acknowledged lives only on its disk. */
  private connectedAndAcked(replica: Replica): boolean {
    const peers = replica.status().peers;
    const others = this.cluster.network.members().filter((replicaId) => replicaId !== replica.identity.replicaId);
    return (
      this.cluster.network.fullyConnected() &&
      others.every((replicaId) => peers.some((peer) => peer.replicaId === replicaId)) &&
      peers.every((peer) => peer.up && !peer.lagging && peer.lag === 0)
    );
  }

  /** The operator's release of each releasable lost incarnation, at the lowest serving replica; retried while it says wait. */
  private releaseLostIncarnations(): void {
    const actor = this.releasable[0];
    if (actor === undefined || this.stopped) return;
    const slot = this.cluster.serving().find((candidate) => !this.retired.has(candidate.replicaId));
    if (slot === undefined || this.scheduler.now > this.chaosEndMs + this.plan.quietMs / 2) {
      this.releases.push(`${actor}: not released (${slot === undefined ? "no replica serving" : "out of time"})`);
      this.releasable.shift();
      return this.releaseLostIncarnations();
    }
    const life = slot.life;
    slot.replica!.release(actor).then(
      (report) => {
        if (!life.alive) return void this.scheduler.after(50, () => this.releaseLostIncarnations());
        const transient = isRefusal(report) && (report.reason === "rights-elsewhere" || report.reason === "leaving");
        if (transient) return void this.scheduler.after(100, () => this.releaseLostIncarnations());
        this.releasable.shift();
        if (isRefusal(report)) this.fail(`release of ${actor} at ${slot.replicaId} refused: ${report.message}`);
        else {
          this.released.push(actor);
          this.releases.push(`released ${report.keysReleased}`);
        }
        this.releaseLostIncarnations();
      },
      (error: unknown) => this.fail(`release of ${actor} at ${slot.replicaId} threw: ${errorText(error)}`),
    );
  }

  /** The replica's process is gone: what it was still answering has an unknown outcome. */
  private unknownAt(replicaId: string, reason: string): void {
    for (const client of this.clients) {
      const invocation = client.current;
      if (invocation?.replicaId !== replicaId || invocation.outcome !== "pending") continue;
      this.history.complete(invocation, "unknown", this.scheduler.now, undefined, reason);
      this.next(client);
    }
  }

  private heal(): void {
    this.phase = "heal";
    this.activeCuts.clear();
    this.cluster.network.setCuts([]);
    this.slowLinks.clear();
    for (const slot of this.cluster.slots) {
      for (const other of this.cluster.slots) this.cluster.network.setSlow(slot.replicaId, other.replicaId, 0);
      this.start(slot);
    }
    if (this.releasable.length > 0) this.scheduler.after(200, () => this.releaseLostIncarnations());
  }

  // ---- checks

  private afterEvent(): void {
    if (this.stopped) return;
    const network = this.cluster.network;
    if (this.phase === "quiet" || this.phase === "reconnect") return this.checkReplicas();
    if (network.version !== this.networkVersion) {
      this.networkVersion = network.version;
      this.connected = this.options.transitive === true ? network.transitivelyConnected() : network.fullyConnected();
    }
    // A slow link is up, but its peer misses ack waits and is not waited for (by
    // design: G6 holds within ackWaitMsMax), so reads are held to G6 only without one.
    const connected = this.connected && this.slowLinks.size === 0;
    if (connected && this.windowStart === undefined) this.windowStart = this.scheduler.now;
    if (!connected && this.windowStart !== undefined) {
      this.windows.push([this.windowStart, this.scheduler.now]);
      this.windowStart = undefined;
    }
    this.checkReplicas();
  }

  private checkReplicas(): void {
    // Every 64th event, look at everything (in case a change went unreported).
    const everything = this.scheduler.eventsRun % 64 === 0;
    for (const slot of this.cluster.running()) {
      for (const violation of checkReplica(slot.replicaId, slot.replica!.shop, everything ? undefined : slot.changed)) {
        this.violations.push({ ...violation, message: `t=${this.scheduler.now.toFixed(1)} (${this.phase}) ${violation.message}` });
      }
      slot.changed = new Set();
    }
    for (const error of this.cluster.errors.splice(0)) this.violations.push({ message: error, invocations: [], keys: [] });
    if (this.violations.length > 0 && this.options.stopAtFirst !== false) this.stop();
  }

  private stop(): void {
    this.stopped = true;
    for (const slot of this.cluster.slots) slot.life.alive = false;
  }

  private async finalChecks(): Promise<void> {
    // Joiners included: each has started (joins happen during the chaos) and heal restarted it, unless given up.
    const slots = this.cluster.slots.filter((slot) => !this.retired.has(slot.replicaId) && !this.abandoned.has(slot.replicaId));
    const notRunning = slots.filter((slot) => !slot.running || !slot.serving);
    if (notRunning.length > 0) this.fail(`replicas not serving after heal: ${notRunning.map((slot) => slot.replicaId).join(", ")}`);
    if (!this.cluster.network.fullyConnected()) this.fail("links still down after heal and quiet time");
    // G5: an operation waits for rights at most rightsWaitMsMax, then for acks at most ackWaitMsMax.
    const cluster = this.plan.cluster;
    const answerMsMax = cluster.rightsWaitMsMax + cluster.ackWaitMsMax + 2 * cluster.flushDelayMs[1] + answerSlackMs;
    for (const invocation of this.history.invocations) {
      if (invocation.outcome === "pending") {
        this.violations.push({
          message: `operation #${invocation.index} never answered (${this.plan.quietMs} ms after heal)`,
          invocations: [invocation.index],
          keys: [],
        });
      } else if (invocation.outcome !== "unknown" && invocation.completedAt! - invocation.invokedAt > answerMsMax) {
        const tookMs = invocation.completedAt! - invocation.invokedAt;
        this.violations.push({
          message: `operation #${invocation.index} took ${tookMs.toFixed(0)} ms to answer, over ${answerMsMax.toFixed(0)} ms`,
          invocations: [invocation.index],
          keys: [],
        });
      }
    }
    if (notRunning.length > 0) return;
    const shops = slots.map((slot) => [slot.replicaId, slot.replica!.shop] as const);
    const diverged = checkConvergence(shops);
    if (diverged.length > 0) {
      // Live replication sends only a replica's own changes; merged ones travel by
      // anti-entropy when a link (re)connects. Reconnect every link once, and see.
      const stale = slots.map((slot) => snapshot(slot.replica!.shop));
      const ids = this.cluster.network.members();
      for (const [index, a] of ids.entries()) for (const b of ids.slice(index + 1)) this.cluster.network.breakLink(a, b);
      const gone = new Set([...this.lostActors, ...this.retired.values()]);
      this.phase = "reconnect";
      await this.scheduler.runUntil(this.scheduler.now + this.plan.quietMs, () => this.afterEvent());
      const still = checkConvergence(shops);
      if (still.length > 0) this.violations.push(...still);
      for (const [index, slot] of slots.entries()) {
        this.violations.push(...unexplainedByLostIncarnations(`${slot.replicaId} after heal and quiet`, stale[index]!, slot.replica!.shop, gone));
      }
      this.knownIssue(
        "gap",
        diverged.map((violation) => ({ ...violation, message: `${violation.message} after heal and quiet time (until every link reconnected)` })),
      );
    }
    for (const slot of slots) this.violations.push(...checkDurable(slot.replicaId, slot.replica!.shop, await durableShop(slot)));
    const context: HistoryContext = {
      connectedWindows: this.plan.readYourWrites ? this.windows : [],
      settleMs: this.plan.settleMs,
      lostActors: this.lostActors,
      checkoutsHandedTo: this.cluster.checkoutsHandedTo,
    };
    this.violations.push(...checkHistory(this.history, slots[0]!.replica!.shop, context));
    for (const [replicaId, actor] of this.retired) this.knownIssue("stranded", checkNothingStranded(replicaId, actor, slots[0]!.replica!.shop));
    for (const actor of this.released) this.violations.push(...checkNothingStranded(`${actor} (released)`, actor, slots[0]!.replica!.shop));
  }

  private knownIssue(kind: "gap" | "stranded", violations: readonly Violation[]): void {
    if (violations.length === 0) return;
    this.known.push(`${kind}: ${violations.map((violation) => violation.message).join("; ")}`);
    if (this.options.strict === true) this.violations.push(...violations);
  }

  private fail(message: string): void {
    this.violations.push({ message, invocations: [], keys: [] });
  }

  fingerprint(): string {
    const hash = createHash("sha256");
    for (const invocation of this.history.invocations) hash.update(`${describeInvocation(invocation)}\n`);
    hash.update(`${this.scheduler.eventsRun} events, ${this.scheduler.now} ms\n`);
    for (const slot of this.cluster.slots) {
      const shop = slot.replica?.shop;
      if (shop === undefined) continue;
      hash.update(`${slot.replicaId} ${shop.actor}\n`);
      for (const key of [...shop.keptKeys()].sort()) hash.update(shop.encode(key));
    }
    return hash.digest("hex");
  }

  report(): string {
    const plan = this.plan;
    const network = plan.cluster.network;
    const lines = [
      `seed ${plan.seed} ${this.violations.length === 0 ? "passed" : "failed"}; replay: node dist/scripts/simulate.js --seed ${plan.seed}${replayFlags(this.options)}`,
      `  ${plan.cluster.replicaIds.length} replicas${plan.cluster.joiners.length > 0 ? ` and ${plan.cluster.joiners.length} that join` : ""}${plan.cluster.gossip ? " with membership gossip" : ""}, ${plan.clients} clients, chaos ${plan.chaosMs} ms from t=${startMs}; ack wait ${plan.cluster.ackWaitMsMax} ms, rights wait ${plan.cluster.rightsWaitMsMax} ms, catch-up wait ${plan.cluster.catchUpMsMax} ms, flush delay up to ${plan.cluster.flushDelayMs[1].toFixed(1)} ms, latency ${network.latencyMs.map((ms) => ms.toFixed(1)).join("-")} ms, ping timeout ${network.detectMs.map((ms) => ms.toFixed(0)).join("-")} ms, replays ${network.replayProbability}, ${plan.cluster.statesPerFrame} states a frame at most, settle ${plan.settleMs.toFixed(0)} ms${plan.batchInit ? ", set up by batch_init" : ""}`,
      ...(plan.readYourWrites ? [] : [`  ack wait under a round trip: reads are not held to G6`]),
      `  faults: ${plan.faults.length === 0 ? "none" : ""}`,
      ...plan.faults.map((fault) => `    ${describeFault(fault)}`),
      `  connected windows: ${this.windows.map(([from, to]) => `${from.toFixed(0)}-${Number.isFinite(to) ? to.toFixed(0) : "end"}`).join(", ") || "none"}`,
    ];
    for (const issue of this.known) lines.push(`  known issue, ${issue}`);
    if (this.violations.length > 0) lines.push("violations:", describeViolations(this.violations, this.history, 40));
    const warnings = this.cluster.log.filter((line) => line.level === "warn").slice(-10);
    if (warnings.length > 0) lines.push("last replica warnings:", ...warnings.map((line) => `  t=${line.at.toFixed(1)} ${line.replicaId}: ${line.message}`));
    return lines.join("\n");
  }
}

function replayFlags(options: SimulationOptions): string {
  const flags = [` --size ${options.size ?? "small"}`];
  if (options.transitive === true) flags.push(" --transitive");
  if (options.strict === true) flags.push(" --strict");
  if (options.gossip === true) flags.push(" --gossip");
  if (options.faultWeights !== undefined) {
    flags.push(
      ` --weights ${Object.entries(options.faultWeights)
        .map(([kind, weight]) => `${kind}=${weight}`)
        .join(",")}`,
    );
  }
  return flags.join("");
}

function describeOpError(invocation: Invocation): string {
  return `operation #${invocation.index} (${invocation.op.f} at ${invocation.replicaId})`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.message}\n${error.stack ?? ""}` : String(error);
}

/**
 * Automerge (membership) draws its actor ids from globalThis.crypto: seed it for
 * the run so membership sync is the same every time. Returns the undo.
 */
function seedWebCrypto(random: Random): () => void {
  const crypto = globalThis.crypto;
  const original = crypto.getRandomValues;
  crypto.getRandomValues = <T extends ArrayBufferView | null>(array: T): T => {
    if (array !== null) {
      const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
      for (let index = 0; index < bytes.length; index++) bytes[index] = random.int(0, 255);
    }
    return array;
  };
  return () => {
    crypto.getRandomValues = original;
  };
}

/** A copy of a replica's states (batch records first), through their encoding. */
function snapshot(shop: ShopState): ShopState {
  const copy = new ShopState(shop.actor, () => {});
  for (const key of shop.keptKeys()) copy.mergeEncoded(key, shop.encode(key), "disk");
  return copy;
}
