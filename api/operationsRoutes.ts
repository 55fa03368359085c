// The operations routes: liveness, readiness and Prometheus metrics. Readable by
// anyone who reaches the replica; they change nothing. They answer while the
// replica still catches up at start (every other route waits for that).
import type { FastifyPluginCallback } from "fastify";
import type { Replica } from "../node/replica.js";
import type { Readiness } from "./readiness.js";
import { type ReplicaMetrics, isRetired } from "./replicaMetrics.js";

const readySchema = {
  type: "object",
  properties: {
    ready: { type: "boolean" },
    reason: { type: "string" },
    notCaughtUpWith: { type: "array", items: { type: "string" } },
  },
  required: ["ready"],
} as const;

export interface OperationsRoutesOptions {
  readonly replica: Replica;
  readonly readiness: Readiness;
  readonly metrics: ReplicaMetrics;
}

export const operationsRoutes: FastifyPluginCallback<OperationsRoutesOptions> = (app, { replica, readiness, metrics }, done) => {
  app.get(
    "/health",
    {
      schema: {
        summary: "The process runs (liveness)",
        tags: ["operations"],
        response: { 200: { type: "object", properties: { status: { type: "string", enum: ["ok"] } }, required: ["status"] } },
      },
    },
    async () => ({ status: "ok" }),
  );

  app.get(
    "/ready",
    {
      schema: {
        summary: "Caught up with the peers at start, not retired and not shutting down (readiness); else 503 with the reason",
        tags: ["operations"],
        response: { 200: readySchema, 503: readySchema },
      },
    },
    async (_request, reply) => {
      const reason =
        readiness.notReadyReason() ??
        (isRetired(replica) ? "retired: this replica left the cluster for good; it answers reads, and every write with 409" : undefined);
      if (reason !== undefined) return reply.code(503).send({ ready: false, reason });
      const notCaughtUpWith = readiness.gaveUpOn;
      return notCaughtUpWith.length === 0 ? { ready: true } : { ready: true, notCaughtUpWith: [...notCaughtUpWith] };
    },
  );

  app.get(
    "/metrics",
    {
      schema: {
        summary: "Prometheus metrics of this replica (text exposition format)",
        tags: ["operations"],
        produces: ["text/plain"],
        response: { 200: { type: "string" } },
      },
    },
    async (_request, reply) => {
      const text = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(text);
    },
  );
  done();
};
