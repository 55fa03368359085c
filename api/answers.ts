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
  leaving: 409,
};

export function sendRefusal(reply: FastifyReply, refusal: Refusal): FastifyReply {
  return reply.code(statusByReason[refusal.reason]).send({ error: refusal.message });
}

/** `{ "<name>": "<id>" }`, the body of every create. */
export function idReplySchema(name: string): object {
  return { type: "object", properties: { [name]: { type: "string" } }, required: [name] };
}
