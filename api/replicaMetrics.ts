// What GET /metrics (Prometheus text) and the dashboard show about one replica.
// One Registry per app, never prom-client's global one, so several apps can live in
// one process (tests). The request path pays one histogram observe (FastHistogram:
// a few array writes) and, for a checkout, a count and two bounded top-N touches.
// Counters are plain numbers until a scrape; every gauge is read at scrape time
// from what the replica already keeps (Replica.status(), the maps of the shop state).
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { PeerMessage } from "../cluster/messages.js";
import { itemKey, userKey } from "../crdt/shopState.js";
import type { BatchWritten } from "../node/groupCommit.js";
import type { CheckedOutOrder, Replica } from "../node/replica.js";
import { FastHistogram, type HistogramSeries } from "./fastHistogram.js";
import { type HotKey, HotKeys } from "./hotKeys.js";
import type { Readiness } from "./readiness.js";

/** The route label of requests that matched no route (one label, whatever their path). */
export const unmatchedRoute = "unmatched";
export const checkoutRoute = "/orders/checkout/:order_id";
/** The dashboard's own poll: not counted in the request rate it shows. */
const dashboardDataRoute = "/dashboard/data";

/** Latency buckets, in seconds: a local checkout takes well under a millisecond, a rights transfer a few. */
const requestSecondsBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const batchWriteSecondsBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5];
/** Keys the top-N trackers keep per kind (items, users). */
const hotKeysTracked = 32;

/** Running totals the dashboard turns into rates. */
export interface ActivityTotals {
  readonly requests: number;
  readonly checkoutsOk: number;
  readonly checkoutsRefused: number;
}

/** A hot key and how its rights are spread over the replicas (by replica id; all incarnations summed). */
export interface HotKeyView extends HotKey {
  readonly id: string;
  /** Stock (items) or credit (users) as this replica sees it; undefined if the key is gone. */
  readonly value: number | undefined;
  readonly rightsByReplica: Record<string, number>;
}

export class ReplicaMetrics {
  readonly registry = new Registry();
  private readonly requestSeconds: FastHistogram;
  private readonly unmatchedRecorders = new Map<string, (statusCode: number, elapsedMs: number) => void>();
  private readonly batchWriteSeconds: { readonly synced: HistogramSeries; readonly unsynced: HistogramSeries };
  private readonly totals = { requests: 0, checkoutsOk: 0, checkoutsRefused: 0 };
  /** Rights requests and grants (that moved rights), by direction. */
  private readonly rightsMessages = { sentRequest: 0, receivedRequest: 0, sentGrant: 0, receivedGrant: 0 };
  /** Checkouts handed to the token's holder (sent) and run here for a peer (received). */
  private readonly checkoutForwards = { sent: 0, received: 0 };
  private readonly hotItems = new HotKeys(hotKeysTracked);
  private readonly hotUsers = new HotKeys(hotKeysTracked);
  private watched: { readonly replica: Replica; readonly readiness: Readiness } | undefined;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.requestSeconds = new FastHistogram(
      "http_request_duration_seconds",
      "HTTP requests by method, route and status, and how long they took (from arrival to the reply sent)",
      ["method", "route", "status_code"],
      requestSecondsBuckets,
      this.registry,
    );
    const totals = this.totals;
    new Counter({
      name: "shop_checkouts_total",
      help: "Checkouts answered: ok (2xx) or refused (4xx: not enough stock or credit, unknown order, rights unreachable)",
      labelNames: ["outcome"],
      registers,
      collect() {
        this.reset();
        this.labels("ok").inc(totals.checkoutsOk);
        this.labels("refused").inc(totals.checkoutsRefused);
      },
    });
    const rights = this.rightsMessages;
    new Counter({
      name: "shop_rights_messages_total",
      help: "Rights transfers between replicas: requests, and grants that moved at least one right, sent and received",
      labelNames: ["direction", "type"],
      registers,
      collect() {
        this.reset();
        this.labels("sent", "request").inc(rights.sentRequest);
        this.labels("received", "request").inc(rights.receivedRequest);
        this.labels("sent", "grant").inc(rights.sentGrant);
        this.labels("received", "grant").inc(rights.receivedGrant);
      },
    });
    const forwards = this.checkoutForwards;
    new Counter({
      name: "shop_checkout_forwards_total",
      help: "Checkouts handed to the replica that holds the order's token (sent), and run here for a peer (received)",
      labelNames: ["direction"],
      registers,
      collect() {
        this.reset();
        this.labels("sent").inc(forwards.sent);
        this.labels("received").inc(forwards.received);
      },
    });
    const batchWriteSeconds = new FastHistogram(
      "shop_group_commit_write_seconds",
      "Group-commit batches written to LevelDB, and the time each took (with its fsync when synced: this replica's own changes)",
      ["synced"],
      batchWriteSecondsBuckets,
      this.registry,
    );
    this.batchWriteSeconds = { synced: batchWriteSeconds.series(["true"]), unsynced: batchWriteSeconds.series(["false"]) };
  }

  /** Start the gauges read at scrape time from `replica`. Called once, by buildApp. */
  watch(replica: Replica, readiness: Readiness): void {
    if (this.watched !== undefined) throw new Error("these metrics already watch a replica");
    this.watched = { replica, readiness };
    const registers = [this.registry];
    new Gauge({
      name: "shop_ready",
      help: "1 when this replica is ready (caught up at start, not retired, not shutting down), else 0",
      registers,
      collect() {
        this.set(readiness.notReadyReason() === undefined && !isRetired(replica) ? 1 : 0);
      },
    });
    new Gauge({
      name: "shop_keys",
      help: "Keys by kind, those of batch_init records included",
      labelNames: ["kind"],
      registers,
      collect() {
        this.set({ kind: "item" }, replica.shop.stateCount("i"));
        this.set({ kind: "user" }, replica.shop.stateCount("u"));
        this.set({ kind: "order" }, replica.shop.stateCount("o"));
      },
    });
    new Gauge({
      name: "shop_durable_seq",
      help: "Number of this replica's last fsynced group-commit batch",
      registers,
      collect() {
        this.set(replica.status().durableSeq);
      },
    });
    const peerGauge = (name: string, help: string, read: (peer: ReturnType<Replica["status"]>["peers"][number]) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ["peer"],
        registers,
        collect() {
          this.reset();
          for (const peer of replica.status().peers) this.set({ peer: peer.replicaId }, read(peer));
        },
      });
    peerGauge("shop_peer_up", "1 while the link to the peer is open", (peer) => (peer.up ? 1 : 0));
    peerGauge("shop_peer_lagging", "1 while the peer is not waited for (it did not ack in time)", (peer) => (peer.lagging ? 1 : 0));
    peerGauge("shop_peer_lag_batches", "Batches sent live to the peer and not yet acked", (peer) => peer.lag);
  }

  /**
   * What records the answers of one route (its onResponse hook calls it): one
   * histogram observe per request, its series looked up by status code only.
   */
  routeRecorder(method: string, route: string): (statusCode: number, elapsedMs: number) => void {
    const countsAsActivity = route !== dashboardDataRoute;
    const seriesByStatus = new Map<number, HistogramSeries>();
    return (statusCode, elapsedMs) => {
      if (countsAsActivity) this.totals.requests += 1;
      let series = seriesByStatus.get(statusCode);
      if (series === undefined) {
        series = this.requestSeconds.series([method, route, String(statusCode)]);
        seriesByStatus.set(statusCode, series);
      }
      series.observe(elapsedMs / 1000);
    };
  }

  /** An answer outside any route (404, a malformed request): under the route label "unmatched". */
  unmatchedDone(method: string, statusCode: number, elapsedMs: number): void {
    // Methods are the HTTP parser's known ones: a small set.
    let record = this.unmatchedRecorders.get(method);
    if (record === undefined) {
      record = this.routeRecorder(method, unmatchedRoute);
      this.unmatchedRecorders.set(method, record);
    }
    record(statusCode, elapsedMs);
  }

  /** A checkout was answered with `statusCode`. */
  checkoutDone(statusCode: number): void {
    if (statusCode < 300) this.totals.checkoutsOk += 1;
    else if (statusCode < 500) this.totals.checkoutsRefused += 1;
  }

  /** A checkout of `order` is answered: its user and items count towards the hottest. */
  checkoutOf(order: CheckedOutOrder): void {
    this.hotUsers.touch(order.userId);
    for (const [itemId] of order.lines) this.hotItems.touch(itemId);
  }

  /** A group-commit batch reached LevelDB. */
  batchWritten(batch: BatchWritten): void {
    (batch.synced ? this.batchWriteSeconds.synced : this.batchWriteSeconds.unsynced).observe(batch.writeMs / 1000);
  }

  /** A peer message went out or came in: rights requests and grants are counted. */
  peerMessage(direction: "sent" | "received", message: PeerMessage): void {
    if (message.type === "rightsRequest") {
      if (direction === "sent") this.rightsMessages.sentRequest += 1;
      else this.rightsMessages.receivedRequest += 1;
    } else if (message.type === "rightsGrant" && message.granted.length > 0) {
      if (direction === "sent") this.rightsMessages.sentGrant += 1;
      else this.rightsMessages.receivedGrant += 1;
    } else if (message.type === "checkoutForward") {
      this.checkoutForwards[direction] += 1;
    }
  }

  activityTotals(): ActivityTotals {
    return { ...this.totals };
  }

  /** The hottest items and users of the checkouts seen here, with their rights per replica. */
  hotKeys(limit: number): { items: HotKeyView[]; users: HotKeyView[] } {
    const shop = this.watched?.replica.shop;
    const view = (hot: HotKey, key: string): HotKeyView => {
      const counter = shop?.counterAt(key);
      const rightsByReplica: Record<string, number> = {};
      for (const [actor, rights] of counter?.rightsByActor() ?? []) {
        const replicaId = replicaIdOf(actor);
        rightsByReplica[replicaId] = (rightsByReplica[replicaId] ?? 0) + rights;
      }
      return { ...hot, id: hot.key, value: counter?.value(), rightsByReplica };
    };
    return {
      items: this.hotItems.top(limit).map((hot) => view(hot, itemKey(hot.key))),
      users: this.hotUsers.top(limit).map((hot) => view(hot, userKey(hot.key))),
    };
  }
}

/** The replica id an actor names: actors are `<replica id>/<incarnation>` (node/identity.ts). */
function replicaIdOf(actor: string): string {
  const slash = actor.indexOf("/");
  return slash > 0 ? actor.slice(0, slash) : actor;
}

/** This replica left the cluster for good, in its own view. */
export function isRetired(replica: Replica): boolean {
  const status = replica.status();
  return status.members.some((member) => member.replicaId === status.replicaId && member.state === "retired");
}
