// GET /dashboard: one self-contained HTML page (no build step, nothing fetched from
// elsewhere) that polls GET /dashboard/data every second and draws this replica's
// view of the cluster, its request and checkout rates, and how the rights of the
// hottest items and users are spread over the replicas. Read-only, like /cluster.
import type { FastifyPluginCallback } from "fastify";
import { dashboardPage } from "./dashboardPage.js";
import type { OperationsRoutesOptions } from "./operationsRoutes.js";
import { isRetired } from "./replicaMetrics.js";

/** Hot items and users shown. */
const hotKeysShown = 5;

const hotKeySchema = {
  type: "object",
  properties: {
    id: { type: "string" },
    count: { type: "integer" },
    overcount: { type: "integer" },
    value: { type: "number" },
    rightsByReplica: { type: "object", additionalProperties: { type: "number" } },
  },
  required: ["id", "count", "overcount", "rightsByReplica"],
} as const;

const dashboardDataSchema = {
  type: "object",
  properties: {
    replicaId: { type: "string" },
    atMs: { type: "number" },
    ready: { type: "boolean" },
    notReadyReason: { type: "string" },
    totals: {
      type: "object",
      properties: { requests: { type: "integer" }, checkoutsOk: { type: "integer" }, checkoutsRefused: { type: "integer" } },
      required: ["requests", "checkoutsOk", "checkoutsRefused"],
    },
    cluster: { type: "object", additionalProperties: true, description: "The same view as GET /cluster" },
    hot: {
      type: "object",
      properties: { items: { type: "array", items: hotKeySchema }, users: { type: "array", items: hotKeySchema } },
      required: ["items", "users"],
    },
  },
  required: ["replicaId", "atMs", "ready", "totals", "cluster", "hot"],
} as const;

export const dashboardRoutes: FastifyPluginCallback<OperationsRoutesOptions> = (app, { replica, readiness, metrics }, done) => {
  app.get(
    "/",
    {
      schema: { summary: "The dashboard: an HTML page that polls /dashboard/data every second", tags: ["operations"], produces: ["text/html"] },
    },
    async (_request, reply) => reply.type("text/html; charset=utf-8").header("cache-control", "no-store").send(dashboardPage),
  );

  app.get(
    "/data",
    {
      schema: {
        summary: "What the dashboard shows: this replica's view, its running totals, the hottest keys",
        tags: ["operations"],
        response: { 200: dashboardDataSchema },
      },
    },
    async (_request, reply) => {
      const notReadyReason = readiness.notReadyReason() ?? (isRetired(replica) ? "retired" : undefined);
      reply.header("cache-control", "no-store");
      return {
        replicaId: replica.identity.replicaId,
        atMs: Date.now(),
        ready: notReadyReason === undefined,
        ...(notReadyReason === undefined ? {} : { notReadyReason }),
        totals: metrics.activityTotals(),
        cluster: replica.status(),
        hot: metrics.hotKeys(hotKeysShown),
      };
    },
  );
  done();
};
