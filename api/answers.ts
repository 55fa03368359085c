// How refusals of the shop become HTTP answers. Every refusal is a 4xx: clients
// count a 5xx as a success, so a 5xx for a refused checkout would be a lie.
import type { FastifyReply } from "fastify";
import type { Refusal, RefusalReason } from "../crdt/shopState.js";

const statusByReason: Record<RefusalReason, number> = {
  "not-found": 404,
  "bad-reference": 400,
  insufficient: 400,
  paid: 400,
  overflow: 400,
  "rights-elsewhere": 409,
};

export function sendRefusal(reply: FastifyReply, refusal: Refusal): FastifyReply {
  return reply.code(statusByReason[refusal.reason]).send({ error: refusal.message });
}

/** `okText` with 200, or the refusal's 4xx. */
export function sendOutcome(reply: FastifyReply, refusal: Refusal | null, okText: string): FastifyReply {
  if (refusal !== null) return sendRefusal(reply, refusal);
  return reply.type("text/plain; charset=utf-8").send(okText);
}

export const errorBodySchema = {
  type: "object",
  properties: { error: { type: "string" } },
  required: ["error"],
} as const;

/** `{ "<name>": "<id>" }`, the body of every create. */
export function idReplySchema(name: string): object {
  return { type: "object", properties: { [name]: { type: "string" } }, required: [name] };
}
