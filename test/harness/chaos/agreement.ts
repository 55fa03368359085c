// After a fault heals: poll until every replica reads the same values for the
// whole shop, and read the state they agree on for the ledger.
import { Agent, get as httpGet } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { type HttpOutcome, describeOutcome, isOk, runPool } from "../net/httpClient.js";
import { type ChaosCluster, clusterView } from "./chaosCluster.js";
import type { AgreedState, OrderRead } from "./chaosLedger.js";
import type { ShopShape } from "./chaosLoad.js";
import type { ChaosOptions } from "./chaosOptions.js";

export interface Agreement {
  readonly agreed: AgreedState | null;
  readonly convergeMs: number | null;
  /** Full reads of every replica it took. */
  readonly polls: number;
  readonly differences: string[];
}

/**
 * Polls until every replica's links are up and caught up, and every replica reads
 * the same value for every item, user and order the load touched; within the bound.
 * Then reads every order at r1 for the ledger (an order never sent to checkout must
 * read unpaid there).
 */
/** What the agreement polls of a cluster: each replica's address and incarnation. */
export type PolledCluster = Pick<ChaosCluster, "urls" | "replicas">;

export async function waitForAgreement(
  cluster: PolledCluster,
  options: ChaosOptions,
  touchedOrders: readonly string[],
  sinceHealMs: () => number,
): Promise<Agreement> {
  let polls = 0;
  let differences: string[] = [];
  const keys = shopKeys(options.shape, touchedOrders);
  for (;;) {
    const caughtUp = await linksCaughtUp(cluster);
    if (caughtUp.length === 0) {
      polls += 1;
      const views = await Promise.all(cluster.urls.map((url) => readShop(url, keys)));
      differences = compareViews(views);
      if (differences.length === 0) {
        const doneMs = sinceHealMs();
        const allOrders = await readShop(cluster.urls[0]!, shopKeys({ ...options.shape, items: 0, users: 0 }, null));
        const orders = new Map([...allOrders.state.orders, ...views[0]!.state.orders]);
        return { agreed: { ...views[0]!.state, orders }, convergeMs: doneMs, polls, differences };
      }
    } else {
      differences = caughtUp;
    }
    if (sinceHealMs() > options.convergeWaitMsMax) return { agreed: null, convergeMs: null, polls, differences };
    await sleep(caughtUp.length === 0 ? 100 : 20);
  }
}

/** Why the mesh is not complete and idle (links down, lagging, batches unacked); empty when it is. */
async function linksCaughtUp(cluster: PolledCluster): Promise<string[]> {
  const why: string[] = [];
  const views = await Promise.all(cluster.replicas.map((replica) => clusterView(replica.url)));
  for (const [index, view] of views.entries()) {
    const replica = cluster.replicas[index]!;
    if (view === null) {
      why.push(`${replica.replicaId} does not answer GET /cluster`);
      continue;
    }
    for (const other of cluster.replicas) {
      if (other === replica) continue;
      const link = view.peers.find((peer) => peer.replicaId === other.replicaId && peer.actor.endsWith(other.incarnation));
      if (link === undefined || !link.up || link.lagging || link.lag > 0) {
        why.push(
          `${replica.replicaId}'s link to ${other.replicaId}: ${link === undefined ? "never up" : `up ${link.up}, lagging ${link.lagging}, lag ${link.lag}`}`,
        );
      }
    }
  }
  return why;
}

type ShopKey = readonly [kind: "item" | "user" | "order", id: string, path: string];

/** Every item and user, and the orders given (all of them when null). */
function shopKeys(shape: ShopShape, orders: readonly string[] | null): ShopKey[] {
  const keys: ShopKey[] = [];
  for (let index = 0; index < shape.items; index++) keys.push(["item", String(index), `/stock/find/${index}`]);
  for (let index = 0; index < shape.users; index++) keys.push(["user", String(index), `/payment/find_user/${index}`]);
  const orderIds = orders ?? Array.from({ length: shape.orders }, (_, index) => String(index));
  for (const id of orderIds) keys.push(["order", id, `/orders/find/${id}`]);
  return keys;
}

interface ShopRead {
  readonly state: AgreedState;
  /** Keys that could not be read, with why. */
  readonly failures: string[];
  /** One line per key, for comparison. */
  readonly lines: Map<string, string>;
}

async function readShop(url: string, keys: readonly ShopKey[]): Promise<ShopRead> {
  const stock = new Map<string, number>();
  const credit = new Map<string, number>();
  const orders = new Map<string, OrderRead>();
  const failures: string[] = [];
  const lines = new Map<string, string>();
  const agent = new Agent({ keepAlive: true, maxSockets: readsInFlightMax });
  await runPool(keys.length, readsInFlightMax, async (index) => {
    const [kind, id, path] = keys[index]!;
    const outcome = await getKeptAlive(agent, url, path);
    if (!isOk(outcome)) {
      failures.push(`${kind} ${id} at ${url}: ${describeOutcome(outcome)}`);
      return;
    }
    lines.set(`${kind} ${id}`, outcome.text);
    const body = JSON.parse(outcome.text) as Record<string, unknown>;
    if (kind === "item") stock.set(id, body["stock"] as number);
    else if (kind === "user") credit.set(id, body["credit"] as number);
    else orders.set(id, body as unknown as OrderRead);
  });
  agent.destroy();
  return { state: { stock, credit, orders }, failures, lines };
}

/** Reads in flight per replica while polling for agreement. */
const readsInFlightMax = 32;
const readWaitMsMax = 5_000;

/** A GET on a kept-alive connection (polling reads many keys; fresh connections would halve the pace). */
function getKeptAlive(agent: Agent, baseUrl: string, path: string): Promise<HttpOutcome> {
  const started = performance.now();
  const elapsedMs = () => performance.now() - started;
  return new Promise((resolve) => {
    const request = httpGet(baseUrl + path, { agent, timeout: readWaitMsMax }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", (error) => resolve({ kind: "error", message: error.message, ms: elapsedMs() }));
      response.on("end", () => resolve({ kind: "answer", status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8"), ms: elapsedMs() }));
    });
    request.on("timeout", () => {
      request.destroy();
      resolve({ kind: "timeout", ms: elapsedMs() });
    });
    request.on("error", (error) => resolve({ kind: "error", message: error.message, ms: elapsedMs() }));
  });
}

/** How the replicas' reads differ (a few examples and a count); empty when they are identical. */
function compareViews(views: readonly ShopRead[]): string[] {
  const examples: string[] = [];
  let count = 0;
  for (const view of views) {
    count += view.failures.length;
    examples.push(...view.failures.slice(0, 2));
  }
  const first = views[0]!;
  for (const [index, view] of views.entries()) {
    for (const [key, line] of first.lines) {
      const other = view.lines.get(key);
      if (index === 0 || other === undefined || other === line) continue;
      count += 1;
      if (examples.length < 4) examples.push(`${key}: r1 ${line} vs r${index + 1} ${other}`);
    }
  }
  return count === 0 ? [] : [`${count} keys differ or unread`, ...examples];
}

/** Every key whose agreed value differs between two reads of the shop (or is in one only), as "kind id: a vs b". */
export function agreedDifferences(before: AgreedState, after: AgreedState): string[] {
  const differences: string[] = [];
  for (const [kind, a, b] of [
    ["item", before.stock, after.stock],
    ["user", before.credit, after.credit],
    ["order", before.orders, after.orders],
  ] as const) {
    for (const id of new Set([...a.keys(), ...b.keys()])) {
      const [was, is] = [JSON.stringify(a.get(id) ?? null), JSON.stringify(b.get(id) ?? null)];
      if (was !== is) differences.push(`${kind} ${id}: ${was} vs ${is}`);
    }
  }
  return differences;
}
