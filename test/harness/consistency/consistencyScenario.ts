// The checkout consistency scenario from the issue tracker, as a function:
// 1 item with `itemsStock` units at price 1, `users` users with credit 1, `orders`
// orders of one unit each for seeded-random users, then every order checked out
// with about `concurrency` requests in flight, round robin over the given URLs,
// each on a fresh connection; then, with no pause, the item, every user and every
// order are read back and checked against what the answers said.
//
// No printing and no process.exit here: the CLI (consistency.ts) and the tests
// call `runConsistencyScenario` and read the report.
import { type HttpOutcome, RoundRobin, describeOutcome, isOk, runPool, send } from "../net/httpClient.js";
import { randomSource } from "../random.js";

const itemPrice = 1;
const userCredit = 1;
const itemId = "0";

export interface ScenarioOptions {
  /** Base URLs of replicas or gateways; requests go round robin over them. */
  readonly urls: readonly string[];
  readonly itemsStock: number;
  readonly users: number;
  readonly orders: number;
  /** Requests in flight at once, in every phase. */
  readonly concurrency: number;
  /** Seed of the random choice of a user per order. */
  readonly seed: number;
  /** Bound on each request, from send to the end of the answer. */
  readonly timeoutMs: number;
}

export const defaultScenarioOptions: Omit<ScenarioOptions, "seed"> = {
  urls: ["http://localhost:8000"],
  itemsStock: 100,
  users: 1000,
  orders: 1000,
  concurrency: 100,
  timeoutMs: 10_000,
};

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export interface CheckoutCounts {
  readonly total: number;
  readonly ok2xx: number;
  readonly client4xx: number;
  readonly server5xx: number;
  /** Statuses outside 2xx/4xx/5xx (1xx, 3xx, 0): never expected. */
  readonly otherStatus: number;
  readonly timeouts: number;
  /** Connection errors (refused, reset, ...). */
  readonly errors: number;
  /** Timeouts and errors whose order reads paid afterwards. */
  readonly unknownPaid: number;
  /** Timeouts and errors whose order reads unpaid afterwards. */
  readonly unknownUnpaid: number;
  /** Timeouts and errors whose order could not be read either. */
  readonly unknownUnresolved: number;
}

export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly expected: string;
  readonly actual: string;
  /** How many violations this check found (0 when ok). */
  readonly violations: number;
  /** A few offending ids or answers, for a human. */
  readonly examples: readonly string[];
}

export interface ScenarioReport {
  readonly options: ScenarioOptions;
  /** Distinct users among the orders: with credit 1 each, at most this many can pay. */
  readonly distinctUsers: number;
  /** min(itemsStock, distinctUsers): the successes a correct shop gives, whatever the order of arrival. */
  readonly expectedSuccesses: number;
  readonly setupMs: number;
  readonly checkoutMs: number;
  readonly readMs: number;
  readonly checkouts: CheckoutCounts;
  /** Latency of the checkouts that got an answer (any status). */
  readonly checkoutLatency: LatencySummary;
  readonly readsFailed: number;
  /** The item's stock as read, or null if the read failed. */
  readonly stock: number | null;
  /** Sum of the credits read (users whose read failed are left out). */
  readonly creditsSum: number;
  readonly paidOrders: number;
  readonly checks: readonly CheckResult[];
  /** Sum of the violations of every check. */
  readonly inconsistencies: number;
}

/** Setup did not complete (a batch_init, create or addItem was not answered 2xx). */
export class ScenarioSetupError extends Error {
  override readonly name = "ScenarioSetupError";
}

function jsonObject(text: string): Record<string, unknown> | null {
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The value at quantile q (0..1) of sorted numbers, nearest rank. */
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

function summarize(latencies: readonly number[]): LatencySummary {
  const sorted = latencies.slice().sort((a, b) => a - b);
  return { count: sorted.length, p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99), maxMs: sorted.at(-1) ?? Number.NaN };
}

function validate(options: ScenarioOptions): void {
  if (options.urls.length === 0) throw new RangeError("at least one URL is needed");
  const positive: [string, number][] = [
    ["users", options.users],
    ["orders", options.orders],
    ["concurrency", options.concurrency],
    ["timeoutMs", options.timeoutMs],
  ];
  for (const [name, value] of positive) {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  if (!Number.isSafeInteger(options.itemsStock) || options.itemsStock < 0) {
    throw new RangeError(`itemsStock must be a non-negative integer, got ${options.itemsStock}`);
  }
  if (!Number.isSafeInteger(options.seed)) throw new RangeError(`seed must be an integer, got ${options.seed}`);
}

interface OrderRead {
  readonly paid: boolean;
  readonly userId: unknown;
  readonly items: unknown;
  readonly totalCost: unknown;
}

const examplesMax = 5;

function check(name: string, expected: string, actual: string, violations: number, examples: readonly string[] = []): CheckResult {
  return { name, ok: violations === 0, expected, actual, violations, examples: examples.slice(0, examplesMax) };
}

/** One request to the next URL of the round robin. */
type Request = (method: string, path: string) => Promise<HttpOutcome>;

/**
 * Runs the scenario once against `options.urls` and returns what it saw and
 * checked. Throws ScenarioSetupError if the shop could not be set up, RangeError
 * on bad options; checkout and read failures are reported, not thrown.
 */
export async function runConsistencyScenario(options: ScenarioOptions): Promise<ScenarioReport> {
  validate(options);
  const urls = new RoundRobin(options.urls);
  const request: Request = (method, path) => send(urls.pick(), method, path, options.timeoutMs);

  const setupStarted = performance.now();
  const { orderUsers, orderIds } = await setUpShop(request, options);
  const setupMs = performance.now() - setupStarted;
  const distinctUsers = new Set(orderUsers).size;
  const expectedSuccesses = Math.min(options.itemsStock, distinctUsers);

  const checkoutStarted = performance.now();
  const checkoutOutcomes: HttpOutcome[] = new Array<HttpOutcome>(options.orders);
  await runPool(options.orders, options.concurrency, async (index) => {
    checkoutOutcomes[index] = await request("POST", `/orders/checkout/${orderIds[index] ?? ""}`);
  });
  const checkoutMs = performance.now() - checkoutStarted;

  const readStarted = performance.now();
  const readBack = await readShop(request, options, orderIds);
  const readMs = performance.now() - readStarted;

  const tally = tallyCheckouts(checkoutOutcomes, orderIds, readBack.orderReads);
  const paid = paidOrders(orderIds, orderUsers, readBack.orderReads);
  const creditsSum = [...readBack.credits.values()].reduce((sum, credit) => sum + credit, 0);
  const expected = { successes: expectedSuccesses, options };
  const checks = [
    ...checkoutChecks(tally, readBack, expected),
    ...orderChecks(tally, readBack, paid, expected),
    ...balanceChecks(readBack, paid, creditsSum, expected),
    ...chargeChecks(tally, readBack, paid),
  ];
  return {
    options,
    distinctUsers,
    expectedSuccesses,
    setupMs,
    checkoutMs,
    readMs,
    checkouts: { total: options.orders, ...tally.counts },
    checkoutLatency: summarize(tally.latencies),
    readsFailed: readBack.readFailures.length,
    stock: readBack.stock,
    creditsSum,
    paidOrders: paid.ids.size,
    checks,
    inconsistencies: checks.reduce((sum, result) => sum + result.violations, 0),
  };
}

/** Setup: the item, the users, and the orders, each for a seeded-random user with one unit of the item. */
async function setUpShop(request: Request, options: ScenarioOptions): Promise<{ orderUsers: string[]; orderIds: string[] }> {
  const setupOk = async (method: string, path: string): Promise<Extract<HttpOutcome, { kind: "answer" }>> => {
    const outcome = await request(method, path);
    if (!isOk(outcome)) throw new ScenarioSetupError(`setup: ${method} ${path} -> ${describeOutcome(outcome)}`);
    return outcome;
  };
  await setupOk("POST", `/stock/batch_init/1/${options.itemsStock}/${itemPrice}`);
  await setupOk("POST", `/payment/batch_init/${options.users}/${userCredit}`);
  const random = randomSource(options.seed);
  const orderUsers = Array.from({ length: options.orders }, () => String(random(options.users)));
  const orderIds: string[] = new Array<string>(options.orders).fill("");
  await runPool(options.orders, options.concurrency, async (index) => {
    const userId = orderUsers[index] ?? "";
    const created = await setupOk("POST", `/orders/create/${userId}`);
    const orderId = jsonObject(created.text)?.["order_id"];
    if (typeof orderId !== "string" || orderId === "") {
      throw new ScenarioSetupError(`setup: POST /orders/create/${userId} answered no order_id: ${created.text.slice(0, 200)}`);
    }
    orderIds[index] = orderId;
    await setupOk("POST", `/orders/addItem/${orderId}/${itemId}/1`);
  });
  return { orderUsers, orderIds };
}

interface ReadBack {
  readonly stock: number | null;
  readonly credits: Map<string, number>;
  readonly orderReads: Map<string, OrderRead>;
  readonly readFailures: string[];
}

/** Reads, with no pause after the checkouts: the item, then every user and every order. */
async function readShop(request: Request, options: ScenarioOptions, orderIds: readonly string[]): Promise<ReadBack> {
  const readFailures: string[] = [];
  const itemRead = await request("GET", `/stock/find/${itemId}`);
  let stock: number | null = null;
  if (isOk(itemRead) && typeof jsonObject(itemRead.text)?.["stock"] === "number") {
    stock = jsonObject(itemRead.text)?.["stock"] as number;
  } else {
    readFailures.push(`item ${itemId}: ${describeOutcome(itemRead)}`);
  }
  const credits = new Map<string, number>();
  const orderReads = new Map<string, OrderRead>();
  await runPool(options.users + options.orders, options.concurrency, async (index) => {
    if (index < options.users) {
      const userId = String(index);
      const outcome = await request("GET", `/payment/find_user/${userId}`);
      const credit = isOk(outcome) ? jsonObject(outcome.text)?.["credit"] : undefined;
      if (typeof credit === "number") credits.set(userId, credit);
      else readFailures.push(`user ${userId}: ${describeOutcome(outcome)}`);
    } else {
      const orderId = orderIds[index - options.users] ?? "";
      const outcome = await request("GET", `/orders/find/${orderId}`);
      const body = isOk(outcome) ? jsonObject(outcome.text) : null;
      if (body !== null && typeof body["paid"] === "boolean") {
        orderReads.set(orderId, { paid: body["paid"], userId: body["user_id"], items: body["items"], totalCost: body["total_cost"] });
      } else {
        readFailures.push(`order ${orderId}: ${describeOutcome(outcome)}`);
      }
    }
  });
  return { stock, credits, orderReads, readFailures };
}

interface Tally {
  readonly counts: Omit<CheckoutCounts, "total">;
  readonly latencies: number[];
  readonly answered2xx: Set<string>;
  readonly badStatuses: string[];
  readonly unknownExamples: string[];
  readonly unknownIds: Set<string>;
}

/** What the checkout answers said; a timeout or error is resolved by reading its order. */
function tallyCheckouts(outcomes: readonly (HttpOutcome | undefined)[], orderIds: readonly string[], orderReads: ReadonlyMap<string, OrderRead>): Tally {
  const counts = { ok2xx: 0, client4xx: 0, server5xx: 0, otherStatus: 0, timeouts: 0, errors: 0, unknownPaid: 0, unknownUnpaid: 0, unknownUnresolved: 0 };
  const tally: Tally = { counts, latencies: [], answered2xx: new Set(), badStatuses: [], unknownExamples: [], unknownIds: new Set() };
  for (const [index, outcome] of outcomes.entries()) {
    const orderId = orderIds[index] ?? "";
    if (outcome === undefined) continue;
    if (outcome.kind === "answer") {
      tally.latencies.push(outcome.ms);
      if (outcome.status >= 200 && outcome.status < 300) {
        counts.ok2xx++;
        tally.answered2xx.add(orderId);
      } else if (outcome.status >= 400 && outcome.status < 500) {
        counts.client4xx++;
      } else {
        if (outcome.status >= 500 && outcome.status < 600) counts.server5xx++;
        else counts.otherStatus++;
        tally.badStatuses.push(`order ${orderId}: ${describeOutcome(outcome)}`);
      }
      continue;
    }
    if (outcome.kind === "timeout") counts.timeouts++;
    else counts.errors++;
    tally.unknownIds.add(orderId);
    tally.unknownExamples.push(`order ${orderId}: ${describeOutcome(outcome)}`);
    const read = orderReads.get(orderId);
    if (read === undefined) counts.unknownUnresolved++;
    else if (read.paid) counts.unknownPaid++;
    else counts.unknownUnpaid++;
  }
  return tally;
}

interface Paid {
  readonly ids: Set<string>;
  readonly costByUser: Map<string, number>;
  readonly units: number;
  readonly cost: number;
  /** Orders that did not read back as created. */
  readonly shapeProblems: string[];
}

/** The orders that read paid, what they cost whom, and those that did not read back as created. */
function paidOrders(orderIds: readonly string[], orderUsers: readonly string[], orderReads: ReadonlyMap<string, OrderRead>): Paid {
  const paid = { ids: new Set<string>(), costByUser: new Map<string, number>(), units: 0, cost: 0, shapeProblems: [] as string[] };
  for (const [index, orderId] of orderIds.entries()) {
    const read = orderReads.get(orderId);
    if (read === undefined) continue;
    const userId = orderUsers[index] ?? "";
    const items = read.items;
    const line = Array.isArray(items) && items.length === 1 && Array.isArray(items[0]) ? (items[0] as unknown[]) : null;
    const shapeOk = read.userId === userId && line !== null && line.length === 2 && line[0] === itemId && line[1] === 1 && read.totalCost === itemPrice;
    if (!shapeOk) {
      paid.shapeProblems.push(
        `order ${orderId}: user ${JSON.stringify(read.userId)} items ${JSON.stringify(items)} total_cost ${JSON.stringify(read.totalCost)}`,
      );
    }
    if (read.paid) {
      paid.ids.add(orderId);
      const cost = typeof read.totalCost === "number" ? read.totalCost : itemPrice;
      paid.cost += cost;
      paid.units += 1;
      paid.costByUser.set(userId, (paid.costByUser.get(userId) ?? 0) + cost);
    }
  }
  return paid;
}

interface Expected {
  readonly successes: number;
  readonly options: ScenarioOptions;
}

/** As many successes as stock and distinct users allow, the rest refused, no 5xx, every read answered. */
function checkoutChecks({ counts, badStatuses }: Tally, { readFailures }: ReadBack, expected: Expected): CheckResult[] {
  const { ok2xx, client4xx, unknownPaid, unknownUnpaid } = counts;
  const expectedFailures = expected.options.orders - expected.successes;
  const successes = ok2xx + unknownPaid;
  const refusals = client4xx + unknownUnpaid;
  // A checkout answered 5xx (or 1xx/3xx) is neither a success nor a refusal; it is
  // counted once, under "no 5xx", and not a second time here.
  const badStatus = counts.server5xx + counts.otherStatus;
  return [
    check(
      "checkouts succeeded (2xx, or unknown and paid)",
      String(expected.successes),
      unknownPaid > 0 ? `${successes} (${ok2xx} 2xx + ${unknownPaid} unknown, paid)` : String(successes),
      Math.abs(successes - expected.successes),
    ),
    check(
      "checkouts refused (4xx, or unknown and unpaid)",
      String(expectedFailures),
      `${refusals}${unknownUnpaid > 0 ? ` (${client4xx} 4xx + ${unknownUnpaid} unknown, unpaid)` : ""}` +
        (badStatus > 0 ? `, + ${badStatus} 5xx/other counted under "no 5xx"` : ""),
      Math.abs(refusals + badStatus - expectedFailures),
    ),
    check("no 5xx (or other non-2xx/4xx status)", "0", String(badStatus), badStatus, badStatuses),
    check("every read answered", "0 failed", `${readFailures.length} failed`, readFailures.length, readFailures),
  ];
}

/** Orders read back as created, as many paid as expected, and paid exactly when answered 2xx. */
function orderChecks({ answered2xx, unknownIds }: Tally, { orderReads }: ReadBack, paid: Paid, expected: Expected): CheckResult[] {
  const lostPaid = [...answered2xx].filter((id) => orderReads.has(id) && !paid.ids.has(id));
  const phantomPaid = [...paid.ids].filter((id) => !answered2xx.has(id) && !unknownIds.has(id));
  return [
    check(
      `orders read back as created (user, [["${itemId}",1]], total_cost ${itemPrice})`,
      `${orderReads.size} ok`,
      `${orderReads.size - paid.shapeProblems.length} ok`,
      paid.shapeProblems.length,
      paid.shapeProblems,
    ),
    check("orders reading paid:true", String(expected.successes), String(paid.ids.size), paid.ids.size === expected.successes ? 0 : 1),
    check(
      "orders answered 2xx = orders reading paid (unknowns excluded)",
      "0 differ",
      `${lostPaid.length} answered 2xx but unpaid, ${phantomPaid.length} paid but not answered 2xx`,
      lostPaid.length + phantomPaid.length,
      [...lostPaid.map((id) => `order ${id}: answered 2xx, reads unpaid`), ...phantomPaid.map((id) => `order ${id}: reads paid, answered non-2xx`)],
    ),
  ];
}

/** Stock and credits where the expected successes leave them, and taken exactly for the paid orders. */
function balanceChecks({ stock, credits }: ReadBack, paid: Paid, creditsSum: number, { successes, options }: Expected): CheckResult[] {
  const expectedStock = options.itemsStock - successes;
  const expectedCreditsSum = options.users * userCredit - successes * itemPrice;
  const allCreditsRead = credits.size === options.users;
  return [
    check("item stock", String(expectedStock), String(stock), stock === expectedStock ? 0 : 1),
    check(
      "stock taken = units in paid orders",
      String(paid.units),
      stock === null ? "unread" : String(options.itemsStock - stock),
      stock !== null && options.itemsStock - stock === paid.units ? 0 : 1,
    ),
    check(
      "credits sum",
      String(expectedCreditsSum),
      allCreditsRead ? String(creditsSum) : `${creditsSum} over ${credits.size} of ${options.users} users`,
      allCreditsRead && creditsSum === expectedCreditsSum ? 0 : 1,
    ),
    check(
      "credit taken = cost of paid orders",
      String(paid.cost),
      allCreditsRead ? String(options.users * userCredit - creditsSum) : "not every user read",
      allCreditsRead && options.users * userCredit - creditsSum === paid.cost ? 0 : 1,
    ),
  ];
}

/** Each user charged exactly its paid orders, never beyond its credit, nothing negative, every unknown resolved. */
function chargeChecks({ counts, unknownIds, unknownExamples }: Tally, { stock, credits }: ReadBack, paid: Paid): CheckResult[] {
  const chargeProblems: string[] = [];
  let usersCharged = 0;
  for (const [userId, credit] of credits) {
    const cost = paid.costByUser.get(userId) ?? 0;
    if (cost > 0) usersCharged++;
    const expected = userCredit - cost;
    if (credit !== expected) chargeProblems.push(`user ${userId}: credit ${credit}, expected ${expected} (paid orders cost ${cost})`);
  }
  const usersPayingTwice = [...paid.costByUser].filter(([, cost]) => cost > userCredit).map(([userId, cost]) => `user ${userId}: paid orders cost ${cost}`);
  const negatives = [...credits].filter(([, credit]) => credit < 0).map(([userId, credit]) => `user ${userId}: credit ${credit}`);
  if (stock !== null && stock < 0) negatives.unshift(`item ${itemId}: stock ${stock}`);
  return [
    check(
      "each user charged exactly its paid orders",
      `${credits.size} users match`,
      `${credits.size - chargeProblems.length} match (${usersCharged} charged once, ${credits.size - usersCharged} untouched)`,
      chargeProblems.length,
      chargeProblems,
    ),
    check("no user with paid orders beyond its credit", "0", String(usersPayingTwice.length), usersPayingTwice.length, usersPayingTwice),
    check("nothing negative", "0", String(negatives.length), negatives.length, negatives),
    check(
      "unknown checkouts (timeouts, errors) resolved by reading the order",
      "0 unresolved",
      `${unknownIds.size} unknown, ${counts.unknownUnresolved} unresolved`,
      counts.unknownUnresolved,
      unknownExamples,
    ),
  ];
}
