// The Idempotency-Key header on any POST (docs/API.md): the request carries a
// guard (node/idempotency.ts) that its route passes to Replica.mutate and newId, so
// its decision is recorded with its change; a repeat runs in replay and answers the
// same; the key reused for another request is a 422.
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from "fastify";
import type { RequestGuard } from "../node/idempotency.js";
import type { Replica } from "../node/replica.js";

const headerName = "idempotency-key";
/** Visible ASCII, as an HTTP token allows; a uuid or any client-made id fits. */
const keyPattern = /^[\x21-\x7e]{1,128}$/;

declare module "fastify" {
  interface FastifyRequest {
    /** Set when the request carries an Idempotency-Key: routes pass it to Replica.mutate and newId. */
    idempotencyGuard?: RequestGuard;
    /** Ends this request's hold on its Idempotency-Key at this replica. */
    releaseIdempotencyKey?: () => void;
  }
}

export function addIdempotencyHooks(app: FastifyInstance, replica: Replica): void {
  app.addHook("onRequest", (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    const header = request.headers[headerName];
    if (request.method !== "POST" || header === undefined) return done();
    if (typeof header !== "string" || !keyPattern.test(header)) {
      void reply.code(400).send({ error: "Idempotency-Key must be 1 to 128 visible ASCII characters, sent once" });
      return;
    }
    request.idempotencyGuard = { key: header, fingerprint: `POST ${request.url}`, replay: undefined, idsReplayed: 0, drawnIds: [] };
    done();
  });

  app.addHook("preHandler", async (request, reply) => {
    const guard = request.idempotencyGuard;
    if (guard === undefined) return;
    // One request with a key at a time here: a concurrent repeat waits for the first's answer.
    request.releaseIdempotencyKey = await replica.idempotency.hold(guard.key);
    const record = replica.idempotency.lookup(guard.key);
    if (record === undefined) return;
    if (record.fingerprint !== guard.fingerprint) {
      return reply.code(422).send({ error: `Idempotency-Key ${guard.key} was sent with ${record.fingerprint}, not with ${guard.fingerprint}` });
    }
    guard.replay = record;
  });

  app.addHook("onResponse", async (request) => request.releaseIdempotencyKey?.());
  app.addHook("onRequestAbort", async (request) => request.releaseIdempotencyKey?.());
}
