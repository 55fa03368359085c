import type { FastifyPluginCallback } from "fastify";
import { isRefusal } from "../crdt/shopState.js";
import { newId } from "../node/idempotency.js";
import type { Replica } from "../node/replica.js";
import { idReplySchema, sendOutcome, sendRefusal } from "./answers.js";
import { paramsSchema, readAmount, readBatchSize } from "./params.js";

const userViewSchema = {
  type: "object",
  properties: { user_id: { type: "string" }, credit: { type: "integer" } },
  required: ["user_id", "credit"],
} as const;

export function paymentRoutes(replica: Replica): FastifyPluginCallback {
  return (app, _options, done) => {
    app.post("/create_user", { schema: { response: { 200: idReplySchema("user_id") } } }, async (request, reply) => {
      const userId = newId(request.idempotencyGuard);
      const refusal = await replica.mutate((shop) => (shop.createUser(userId), null), request.idempotencyGuard);
      return refusal === null ? { user_id: userId } : sendRefusal(reply, refusal);
    });

    app.post<{ Params: { n: string; starting_money: string } }>(
      "/batch_init/:n/:starting_money",
      { schema: { params: paramsSchema([], ["n", "starting_money"]) } },
      async (request, reply) => {
        const count = readBatchSize("n", request.params.n);
        const startingMoney = readAmount("starting_money", request.params.starting_money);
        const refusal = await replica.mutate((shop) => shop.batchInitUsers(count, startingMoney, Date.now()), request.idempotencyGuard);
        return refusal === null ? { msg: `Batch init for ${count} users successful` } : sendRefusal(reply, refusal);
      },
    );

    app.get<{ Params: { user_id: string } }>(
      "/find_user/:user_id",
      { schema: { params: paramsSchema(["user_id"], []), response: { 200: userViewSchema } } },
      async (request, reply) => {
        const view = await replica.read((shop) => shop.findUser(request.params.user_id));
        return isRefusal(view) ? sendRefusal(reply, view) : view;
      },
    );

    app.post<{ Params: { user_id: string; amount: string } }>(
      "/add_funds/:user_id/:amount",
      { schema: { params: paramsSchema(["user_id"], ["amount"]) } },
      async (request, reply) => {
        const amount = readAmount("amount", request.params.amount);
        const refusal = await replica.mutate((shop) => shop.addFunds(request.params.user_id, amount), request.idempotencyGuard);
        return sendOutcome(reply, refusal, `User ${request.params.user_id} credit increased by ${amount}`);
      },
    );

    app.post<{ Params: { user_id: string; amount: string } }>(
      "/pay/:user_id/:amount",
      { schema: { params: paramsSchema(["user_id"], ["amount"]) } },
      async (request, reply) => {
        const amount = readAmount("amount", request.params.amount);
        const refusal = await replica.mutate((shop) => shop.pay(request.params.user_id, amount), request.idempotencyGuard);
        return sendOutcome(reply, refusal, `User ${request.params.user_id} paid ${amount}`);
      },
    );
    done();
  };
}
