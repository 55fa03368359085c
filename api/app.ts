// The HTTP face of a replica: every route of API.md, with strict input checks.
// Bad input is a 400 with a message and changes nothing; only bugs are 5xx.
// Every replica also serves the operations routes (health, readiness, metrics,
// OpenAPI, dashboard): read-only, and answered while the replica still catches up
// at start, when every other route waits.
import { createServer } from "node:http";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyServerFactory,
  type FastifyServerFactoryHandler,
  LogController,
  type RouteOptions,
  type onResponseHookHandler,
} from "fastify";
import type { Replica } from "../node/replica.js";
import { clusterRoutes } from "./clusterRoutes.js";
import { dashboardRoutes } from "./dashboardRoutes.js";
import { documentationPrefix, registerDocumentation } from "./documentation.js";
import { addIdempotencyHooks } from "./idempotencyHooks.js";
import { operationsRoutes } from "./operationsRoutes.js";
import { orderRoutes } from "./orderRoutes.js";
import { formatFailureMessage, paramFormats } from "./params.js";
import { paymentRoutes } from "./paymentRoutes.js";
import { Readiness } from "./readiness.js";
import { ReplicaMetrics, checkoutRoute } from "./replicaMetrics.js";
import { stockRoutes } from "./stockRoutes.js";

export interface AppOptions {
  readonly logLevel: string;
  /** What the admin routes (writes under /cluster) require; undefined closes them. */
  readonly adminToken: string | undefined;
  /** Makes the HTTP server (to share the request handler with a second server). */
  readonly serverFactory?: FastifyServerFactory;
  /** The process's pino logger (node/main.ts); by default fastify makes one at `logLevel`. */
  readonly logger?: FastifyBaseLogger;
  /** Where the replica is in its life (catching up, serving, stopping); by default serving. */
  readonly readiness?: Readiness;
  /** The metrics to serve, if the caller feeds some itself (group commit, peer messages); by default new ones. */
  readonly metrics?: ReplicaMetrics;
}

/** Levels at which each request is logged (with its request id); above them only failures are. */
const requestLoggingLevels: ReadonlySet<string> = new Set(["info", "debug", "trace"]);

/** No route reads a body; a client may still send one, up to this size. */
const bodyBytesMax = 4096;

export function buildApp(replica: Replica, options: AppOptions): FastifyInstance {
  const readiness = options.readiness ?? Readiness.serving();
  const metrics = options.metrics ?? new ReplicaMetrics();
  metrics.watch(replica, readiness);
  const app = Fastify({
    ...(options.logger === undefined ? { logger: { level: options.logLevel } } : { loggerInstance: options.logger }),
    logController: new LogController({ disableRequestLogging: !requestLoggingLevels.has(options.logLevel) }),
    bodyLimit: bodyBytesMax,
    routerOptions: { maxParamLength: 200 },
    // Ajv must not turn "1e3" or "" into numbers: params stay strings, checked by their formats.
    ajv: { customOptions: { coerceTypes: false, formats: paramFormats } },
    // A stop lets the requests in flight finish (their replies say Connection: close)
    // and closes idle keep-alive connections; requests arriving meanwhile on an open
    // connection are served, never refused with a 503 (clients count a 5xx as a success).
    forceCloseConnections: "idle",
    return503OnClosing: false,
    // Requests other than the operations routes wait here, before fastify sees them,
    // until the catch-up at start has ended: after that, one boolean check each.
    serverFactory: (handler, serverOptions) =>
      (options.serverFactory ?? ((plain) => createServer(plain)))(holdUntilCaughtUp(handler, readiness), serverOptions),
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
  app.setNotFoundHandler((request, reply) => {
    metrics.unmatchedDone(request.method, 404, reply.elapsedTime);
    return reply.code(404).send({ error: `no route ${request.method} ${request.url}` });
  });

  // Before every route: each one gets its own hooks (no per-request route lookup).
  app.addHook("onRoute", (route) => observeRoute(route, metrics));
  registerDocumentation(app);
  app.register(operationsRoutes, { replica, readiness, metrics });
  app.register(dashboardRoutes, { prefix: "/dashboard", replica, readiness, metrics });
  addIdempotencyHooks(app, replica);
  app.register(stockRoutes, { prefix: "/stock", replica });
  app.register(paymentRoutes, { prefix: "/payment", replica });
  app.register(orderRoutes, { prefix: "/orders", replica, metrics });
  app.register(clusterRoutes, { prefix: "/cluster", replica, adminToken: options.adminToken });
  return app;
}

/** A route's own hook: each answer is observed in the metrics (its latency; a checkout's outcome). */
function observeRoute(route: RouteOptions, metrics: ReplicaMetrics): void {
  const method = Array.isArray(route.method) ? route.method.join(",") : route.method;
  const recordAnswer = metrics.routeRecorder(method, route.url);
  const isCheckout = route.url === checkoutRoute;
  const observe: onResponseHookHandler = (_request, reply, done) => {
    recordAnswer(reply.statusCode, reply.elapsedTime);
    if (isCheckout) metrics.checkoutDone(reply.statusCode);
    done();
  };
  route.onResponse = [...hooksOf(route.onResponse), observe];
}

/** Paths served while the replica still catches up at start (they read nothing a catch-up changes). */
const operationsPaths = ["/health", "/ready", "/metrics", documentationPrefix, "/dashboard"];

function isOperationsPath(url: string): boolean {
  return operationsPaths.some((path) => url === path || (url.startsWith(path) && (url[path.length] === "/" || url[path.length] === "?")));
}

/** The HTTP handler, except that shop requests wait for the catch-up at start to end. */
function holdUntilCaughtUp(handler: FastifyServerFactoryHandler, readiness: Readiness): FastifyServerFactoryHandler {
  return (request, response) => {
    if (readiness.caughtUpNow || isOperationsPath(request.url ?? "")) handler(request, response);
    else void readiness.caughtUp.then(() => handler(request, response));
  };
}

function hooksOf<T>(hooks: T | T[] | undefined): T[] {
  return hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks];
}

function sendClientError(reply: FastifyReply, error: FastifyError): FastifyReply {
  return reply.code(error.statusCode ?? 400).send({ error: error.message });
}

/** A path parameter failing its format gets a message saying what it must be. */
function clientErrorMessage(error: FastifyError, params: unknown): string {
  const failure = error.validation?.[0];
  if (error.validationContext === "params" && failure?.keyword === "format") {
    const name = failure.instancePath.slice(1);
    const text = String((params as Record<string, unknown>)[name]);
    return formatFailureMessage(String(failure.params["format"]), name, text) ?? error.message;
  }
  return error.message;
}
