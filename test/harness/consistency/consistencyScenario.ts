// The checkout consistency scenario from the issue tracker, as a function:
// 1 item with `itemsStock` units at price 1, `users` users with credit 1, `orders`
// orders of one unit each for seeded-random users, then every order checked out
// with about `concurrency` requests in flight, round robin over the given URLs,
// each on a fresh connection; then, with no pause, the item, every user and every
// order are read back and checked against what the answers said.
//
// No printing and no process.exit here: the CLI (consistency.ts) and the tests
// call `runConsistencyScenario` and read the report.
import { type HttpOutcome, RoundRobin, runPool, send } from "../net/httpClient.js";
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


function describe(outcome: HttpOutcome): string {
  switch (outcome.kind) {
    case "answer":
      return `${outcome.status} ${outcome.text.slice(0, 200)}`;
    case "timeout":
      return `timeout after ${outcome.ms.toFixed(0)} ms`;
    case "error":
      return `error ${outcome.message}`;
  }
}

function is2xx(outcome: HttpOutcome): outcome is Extract<HttpOutcome, { kind: "answer" }> {
  return outcome.kind === "answer" && outcome.status >= 200 && outcome.status < 300;
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

/**
 * Runs the scenario once against `options.urls` and returns what it saw and
 * checked. Throws ScenarioSetupError if the shop could not be set up, RangeError
 * on bad options; checkout and read failures are reported, not thrown.
 */
export async function runConsistencyScenario(options: ScenarioOptions): Promise<ScenarioReport> {
  validate(options);
  const urls = new RoundRobin(options.urls);
  const request = (method: string, path: string): Promise<HttpOutcome> => send(urls.pick(), method, path, options.timeoutMs);
  const setupOk = async (method: string, path: string): Promise<Extract<HttpOutcome, { kind: "answer" }>> => {
    const outcome = await request(method, path);
    if (!is2xx(outcome)) throw new ScenarioSetupError(`setup: ${method} ${path} -> ${describe(outcome)}`);
    return outcome;
  };

  // --- Setup: item, users, orders. --------------------------------------------
  const setupStarted = performance.now();
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
  const setupMs = performance.now() - setupStarted;
  const distinctUsers = new Set(orderUsers).size;
  const expectedSuccesses = Math.min(options.itemsStock, distinctUsers);

  // --- Checkouts. ---------------------------------------------------------------
  const checkoutStarted = performance.now();
  const checkoutOutcomes: HttpOutcome[] = new Array<HttpOutcome>(options.orders);
  await runPool(options.orders, options.concurrency, async (index) => {
    checkoutOutcomes[index] = await request("POST", `/orders/checkout/${orderIds[index] ?? ""}`);
  });
  const checkoutMs = performance.now() - checkoutStarted;

  // --- Reads, with no pause: the item, then every user and every order. --------
  const readStarted = performance.now();
  const readFailures: string[] = [];
  const itemRead = await request("GET", `/stock/find/${itemId}`);
  let stock: number | null = null;
  if (is2xx(itemRead) && typeof jsonObject(itemRead.text)?.["stock"] === "number") {
    stock = jsonObject(itemRead.text)?.["stock"] as number;
  } else {
    readFailures.push(`item ${itemId}: ${describe(itemRead)}`);
  }
  const credits = new Map<string, number>();
  const orderReads = new Map<string, OrderRead>();
  await runPool(options.users + options.orders, options.concurrency, async (index) => {
    if (index < options.users) {
      const userId = String(index);
      const outcome = await request("GET", `/payment/find_user/${userId}`);
      const credit = is2xx(outcome) ? jsonObject(outcome.text)?.["credit"] : undefined;
      if (typeof credit === "number") credits.set(userId, credit);
      else readFailures.push(`user ${userId}: ${describe(outcome)}`);
    } else {
      const orderId = orderIds[index - options.users] ?? "";
      const outcome = await request("GET", `/orders/find/${orderId}`);
      const body = is2xx(outcome) ? jsonObject(outcome.text) : null;
      if (body !== null && typeof body["paid"] === "boolean") {
        orderReads.set(orderId, { paid: body["paid"], userId: body["user_id"], items: body["items"], totalCost: body["total_cost"] });
      } else {
        readFailures.push(`order ${orderId}: ${describe(outcome)}`);
      }
    }
  });
  const readMs = performance.now() - readStarted;

  // --- Tally. ---------------------------------------------------------------------
  let ok2xx = 0;
  let client4xx = 0;
  let server5xx = 0;
  let otherStatus = 0;
  let timeouts = 0;
  let errors = 0;
  let unknownPaid = 0;
  let unknownUnpaid = 0;
  let unknownUnresolved = 0;
  const latencies: number[] = [];
  const answered2xx = new Set<string>();
  const badStatuses: string[] = [];
  const unknownExamples: string[] = [];
  const unknownIds = new Set<string>();
  for (let index = 0; index < options.orders; index++) {
    const outcome = checkoutOutcomes[index];
    const orderId = orderIds[index] ?? "";
    if (outcome === undefined) continue;
    if (outcome.kind === "answer") {
      latencies.push(outcome.ms);
      if (outcome.status >= 200 && outcome.status < 300) {
        ok2xx++;
        answered2xx.add(orderId);
      } else if (outcome.status >= 400 && outcome.status < 500) {
        client4xx++;
      } else {
        if (outcome.status >= 500 && outcome.status < 600) server5xx++;
        else otherStatus++;
        badStatuses.push(`order ${orderId}: ${describe(outcome)}`);
      }
      continue;
    }
    if (outcome.kind === "timeout") timeouts++;
    else errors++;
    unknownIds.add(orderId);
    unknownExamples.push(`order ${orderId}: ${describe(outcome)}`);
    const read = orderReads.get(orderId);
    if (read === undefined) unknownUnresolved++;
    else if (read.paid) unknownPaid++;
    else unknownUnpaid++;
  }

  // --- Checks. --------------------------------------------------------------------
  const checks: CheckResult[] = [];
  const expectedFailures = options.orders - expectedSuccesses;
  const successes = ok2xx + unknownPaid;
  const refusals = client4xx + unknownUnpaid;
  checks.push(
    check(
      "checkouts succeeded (2xx, or unknown and paid)",
      String(expectedSuccesses),
      unknownPaid > 0 ? `${successes} (${ok2xx} 2xx + ${unknownPaid} unknown, paid)` : String(successes),
      Math.abs(successes - expectedSuccesses),
    ),
  );
  // A checkout answered 5xx (or 1xx/3xx) is neither a success nor a refusal; it is
  // counted once, under "no 5xx", and not a second time here.
  const badStatus = server5xx + otherStatus;
  checks.push(
    check(
      "checkouts refused (4xx, or unknown and unpaid)",
      String(expectedFailures),
      `${refusals}${unknownUnpaid > 0 ? ` (${client4xx} 4xx + ${unknownUnpaid} unknown, unpaid)` : ""}` +
        (badStatus > 0 ? `, + ${badStatus} 5xx/other counted under "no 5xx"` : ""),
      Math.abs(refusals + badStatus - expectedFailures),
    ),
  );
  checks.push(check("no 5xx (or other non-2xx/4xx status)", "0", String(badStatus), badStatus, badStatuses));
  checks.push(check("every read answered", "0 failed", `${readFailures.length} failed`, readFailures.length, readFailures));

  const paidIds = new Set<string>();
  const paidCostByUser = new Map<string, number>();
  let paidUnits = 0;
  let paidCost = 0;
  const shapeProblems: string[] = [];
  for (let index = 0; index < options.orders; index++) {
    const orderId = orderIds[index] ?? "";
    const read = orderReads.get(orderId);
    if (read === undefined) continue;
    const userId = orderUsers[index] ?? "";
    const items = read.items;
    const line = Array.isArray(items) && items.length === 1 && Array.isArray(items[0]) ? (items[0] as unknown[]) : null;
    const shapeOk =
      read.userId === userId && line !== null && line.length === 2 && line[0] === itemId && line[1] === 1 && read.totalCost === itemPrice;
    if (!shapeOk) {
      shapeProblems.push(`order ${orderId}: user ${JSON.stringify(read.userId)} items ${JSON.stringify(items)} total_cost ${JSON.stringify(read.totalCost)}`);
    }
    if (read.paid) {
      paidIds.add(orderId);
      const cost = typeof read.totalCost === "number" ? read.totalCost : itemPrice;
      paidCost += cost;
      paidUnits += 1;
      paidCostByUser.set(userId, (paidCostByUser.get(userId) ?? 0) + cost);
    }
  }
  checks.push(
    check(
      `orders read back as created (user, [["${itemId}",1]], total_cost ${itemPrice})`,
      `${orderReads.size} ok`,
      `${orderReads.size - shapeProblems.length} ok`,
      shapeProblems.length,
      shapeProblems,
    ),
  );
  checks.push(check("orders reading paid:true", String(expectedSuccesses), String(paidIds.size), paidIds.size === expectedSuccesses ? 0 : 1));

  const lostPaid = [...answered2xx].filter((id) => orderReads.has(id) && !paidIds.has(id));
  const phantomPaid = [...paidIds].filter((id) => !answered2xx.has(id) && !unknownIds.has(id));
  checks.push(
    check(
      "orders answered 2xx = orders reading paid (unknowns excluded)",
      "0 differ",
      `${lostPaid.length} answered 2xx but unpaid, ${phantomPaid.length} paid but not answered 2xx`,
      lostPaid.length + phantomPaid.length,
      [...lostPaid.map((id) => `order ${id}: answered 2xx, reads unpaid`), ...phantomPaid.map((id) => `order ${id}: reads paid, answered non-2xx`)],
    ),
  );

  const expectedStock = options.itemsStock - expectedSuccesses;
  checks.push(check("item stock", String(expectedStock), String(stock), stock === expectedStock ? 0 : 1));
  checks.push(
    check(
      "stock taken = units in paid orders",
      String(paidUnits),
      stock === null ? "unread" : String(options.itemsStock - stock),
      stock !== null && options.itemsStock - stock === paidUnits ? 0 : 1,
    ),
  );

  const expectedCreditsSum = options.users * userCredit - expectedSuccesses * itemPrice;
  const creditsSum = [...credits.values()].reduce((sum, credit) => sum + credit, 0);
  const allCreditsRead = credits.size === options.users;
  checks.push(
    check(
      "credits sum",
      String(expectedCreditsSum),
      allCreditsRead ? String(creditsSum) : `${creditsSum} over ${credits.size} of ${options.users} users`,
      allCreditsRead && creditsSum === expectedCreditsSum ? 0 : 1,
    ),
  );
  checks.push(
    check(
      "credit taken = cost of paid orders",
      String(paidCost),
      allCreditsRead ? String(options.users * userCredit - creditsSum) : "not every user read",
      allCreditsRead && options.users * userCredit - creditsSum === paidCost ? 0 : 1,
    ),
  );

  const chargeProblems: string[] = [];
  let usersCharged = 0;
  for (const [userId, credit] of credits) {
    const cost = paidCostByUser.get(userId) ?? 0;
    if (cost > 0) usersCharged++;
    const expected = userCredit - cost;
    if (credit !== expected) chargeProblems.push(`user ${userId}: credit ${credit}, expected ${expected} (paid orders cost ${cost})`);
  }
  const usersPayingTwice = [...paidCostByUser].filter(([, cost]) => cost > userCredit).map(([userId, cost]) => `user ${userId}: paid orders cost ${cost}`);
  checks.push(
    check(
      "each user charged exactly its paid orders",
      `${credits.size} users match`,
      `${credits.size - chargeProblems.length} match (${usersCharged} charged once, ${credits.size - usersCharged} untouched)`,
      chargeProblems.length,
      chargeProblems,
    ),
  );
  checks.push(
    check("no user with paid orders beyond its credit", "0", String(usersPayingTwice.length), usersPayingTwice.length, usersPayingTwice),
  );

  const negatives = [...credits].filter(([, credit]) => credit < 0).map(([userId, credit]) => `user ${userId}: credit ${credit}`);
  if (stock !== null && stock < 0) negatives.unshift(`item ${itemId}: stock ${stock}`);
  checks.push(check("nothing negative", "0", String(negatives.length), negatives.length, negatives));
  checks.push(
    check(
      "unknown checkouts (timeouts, errors) resolved by reading the order",
      "0 unresolved",
      `${unknownIds.size} unknown, ${unknownUnresolved} unresolved`,
      unknownUnresolved,
      unknownExamples,
    ),
  );

  return {
    options,
    distinctUsers,
    expectedSuccesses,
    setupMs,
    checkoutMs,
    readMs,
    checkouts: { total: options.orders, ok2xx, client4xx, server5xx, otherStatus, timeouts, errors, unknownPaid, unknownUnpaid, unknownUnresolved },
    checkoutLatency: summarize(latencies),
    readsFailed: readFailures.length,
    stock,
    creditsSum,
    paidOrders: paidIds.size,
    checks,
    inconsistencies: checks.reduce((sum, result) => sum + result.violations, 0),
  };
}
