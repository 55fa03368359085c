// The HTTP face of a replica: every route of API.md, with strict input checks.
// Bad input is a 400 with a message and changes nothing; only bugs are 5xx.
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyServerFactory, LogController } from "fastify";
import type { Replica } from "../node/replica.js";
import { clusterRoutes } from "./clusterRoutes.js";
import { orderRoutes } from "./orderRoutes.js";
import { amountMessage, amountSchema } from "./params.js";
import { paymentRoutes } from "./paymentRoutes.js";
import { stockRoutes } from "./stockRoutes.js";

export interface AppOptions {
  readonly logLevel: string;
  /** What the admin routes (writes under /cluster) require; undefined closes them. */
  readonly adminToken: string | undefined;
  /** Makes the HTTP server (to share the request handler with a second server). */
  readonly serverFactory?: FastifyServerFactory;
}

/** No route reads a body; a client may still send one, up to this size. */
const bodyBytesMax = 4096;

export function buildApp(replica: Replica, options: AppOptions): FastifyInstance {
  const app = Fastify({
    logger: { level: options.logLevel },
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: bodyBytesMax,
    routerOptions: { maxParamLength: 200 },
    // Ajv must not turn "1e3" or "" into numbers; params are strings checked by us.
    ajv: { customOptions: { coerceTypes: false } },
    forceCloseConnections: true,
    ...(options.serverFactory === undefined ? {} : { serverFactory: options.serverFactory }),
    // A malformed percent-encoding or an overlong id gets the same {"error"} body as every refusal.
    frameworkErrors: (error, _request, reply) => void sendClientError(reply as FastifyReply, error),
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_request, _body, done) => done(null, undefined));

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const statusCode = error.statusCode ?? 500;
    if (statusCode >= 500) {
      request.log.error({ err: error, url: request.url }, "request failed");
      return reply.code(500).send({ error: "internal error" });
    }
    return reply.code(statusCode).send({ error: clientErrorMessage(error, request.params) });
  });
  app.setNotFoundHandler((request, reply) => reply.code(404).send({ error: `no route ${request.method} ${request.url}` }));

  app.register(stockRoutes(replica), { prefix: "/stock" });
  app.register(paymentRoutes(replica), { prefix: "/payment" });
  app.register(orderRoutes(replica), { prefix: "/orders" });
  app.register(clusterRoutes(replica, options.adminToken), { prefix: "/cluster" });
  return app;
}

function sendClientError(reply: FastifyReply, error: FastifyError): FastifyReply {
  return reply.code(error.statusCode ?? 400).send({ error: error.message });
}

/** Schema failures on an amount get the same message as the bound checks. */
function clientErrorMessage(error: FastifyError, params: unknown): string {
  const failure = error.validation?.[0];
  if (failure?.keyword === "pattern" && failure.params["pattern"] === amountSchema.pattern) {
    const name = failure.instancePath.slice(1);
    return amountMessage(name, (params as Record<string, unknown>)[name]);
  }
  return error.message;
}
