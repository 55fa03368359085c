// What the benchmark asks of the shop over HTTP: the course's init, the small
// init of the contention mode, reads of stock, and waiting for a replica to answer.
import { setTimeout as sleep } from "node:timers/promises";
import { describeOutcome, runPool, send } from "../net/httpClient.js";

/** batch_init of 100,000 keys takes seconds; a wait this long means something is wrong. */
const initTimeoutMs = 600_000;
const requestTimeoutMs = 30_000;
/** Requests in flight while creating the contention mode's orders. */
const setupConcurrency = 32;

/** The course's figures (its locust setup): stock and credit that never run out. */
export const courseStartingStock = 1_000_000;
export const courseStartingMoney = 1_000_000;
export const courseItemPrice = 1;

/** Sends one request and returns the answer's text and time; throws unless it is 2xx. */
async function expect2xx(baseUrl: string, method: string, path: string, timeoutMs = requestTimeoutMs): Promise<{ text: string; ms: number }> {
  const outcome = await send(baseUrl, method, path, timeoutMs);
  if (outcome.kind !== "answer" || outcome.status < 200 || outcome.status >= 300) {
    throw new Error(`${method} ${baseUrl}${path} -> ${describeOutcome(outcome)}`);
  }
  return { text: outcome.text, ms: outcome.ms };
}

export interface InitTimes {
  readonly stockMs: number;
  readonly paymentMs: number;
  readonly ordersMs: number;
  readonly totalMs: number;
}

/** The course's three batch_init calls, one after another, each timed. `n` items, users and orders. */
export async function courseInit(url: string, n: number): Promise<InitTimes> {
  const stock = await expect2xx(url, "POST", `/stock/batch_init/${n}/${courseStartingStock}/${courseItemPrice}`, initTimeoutMs);
  const payment = await expect2xx(url, "POST", `/payment/batch_init/${n}/${courseStartingMoney}`, initTimeoutMs);
  const orders = await expect2xx(url, "POST", `/orders/batch_init/${n}/${n}/${n}/${courseItemPrice}`, initTimeoutMs);
  return { stockMs: stock.ms, paymentMs: payment.ms, ordersMs: orders.ms, totalMs: stock.ms + payment.ms + orders.ms };
}

export interface ContentionShape {
  /** Items "0".."items-1", each with `stockPerItem` units at price 1. */
  readonly items: number;
  readonly stockPerItem: number;
  /** Orders of one unit each; order i is user i's and buys item i % items. */
  readonly orders: number;
}

/** Users' credit in the contention mode: far more than one unit costs. */
const contentionCredit = 1_000_000;

/** Sets up the contention mode and returns the ids of its orders. */
export async function contentionInit(url: string, shape: ContentionShape): Promise<string[]> {
  await expect2xx(url, "POST", `/stock/batch_init/${shape.items}/${shape.stockPerItem}/1`, initTimeoutMs);
  await expect2xx(url, "POST", `/payment/batch_init/${shape.orders}/${contentionCredit}`, initTimeoutMs);
  const orderIds = new Array<string>(shape.orders).fill("");
  await runPool(shape.orders, setupConcurrency, async (index) => {
    const created = await expect2xx(url, "POST", `/orders/create/${index}`);
    const orderId = (JSON.parse(created.text) as { order_id?: unknown }).order_id;
    if (typeof orderId !== "string" || orderId === "") throw new Error(`orders/create answered no order_id: ${created.text.slice(0, 200)}`);
    await expect2xx(url, "POST", `/orders/addItem/${orderId}/${index % shape.items}/1`);
    orderIds[index] = orderId;
  });
  return orderIds;
}

/** Stock of items "0".."items-1" summed, as read at `url`. */
export async function stockSum(url: string, items: number): Promise<number> {
  let sum = 0;
  for (let item = 0; item < items; item++) {
    const found = await expect2xx(url, "GET", `/stock/find/${item}`);
    const stock = (JSON.parse(found.text) as { stock?: unknown }).stock;
    if (typeof stock !== "number") throw new Error(`stock/find/${item} answered no stock: ${found.text.slice(0, 200)}`);
    sum += stock;
  }
  return sum;
}

/**
 * Polls GET `path` at `url` until it answers 200; resolves with the time that took
 * from `sinceMs` (performance.now()), or null after `waitMsMax`.
 */
export async function waitForOk(url: string, path: string, sinceMs: number, waitMsMax: number): Promise<number | null> {
  const pollMs = 20;
  while (performance.now() - sinceMs < waitMsMax) {
    const outcome = await send(url, "GET", path, 1000);
    if (outcome.kind === "answer" && outcome.status === 200) return performance.now() - sinceMs;
    await sleep(pollMs);
  }
  return null;
}
