import type { FastifyPluginCallback } from "fastify";
import { newId } from "../node/idempotency.js";
import type { Replica } from "../node/replica.js";
import { idReplySchema } from "./answers.js";
import { shopRoute } from "./shopRoute.js";

const userViewSchema = {
  type: "object",
  properties: { user_id: { type: "string" }, credit: { type: "integer" } },
  required: ["user_id", "credit"],
} as const;

export const paymentRoutes: FastifyPluginCallback<{ readonly replica: Replica }> = (app, { replica }, done) => {
  shopRoute(app, {
    method: "POST",
    url: "/create_user",
    params: {},
    response: idReplySchema("user_id"),
    answer: async (_params, guard) => {
      const userId = newId(guard);
      const refusal = await replica.mutate((shop) => {
        shop.createUser(userId);
        return null;
      }, guard);
      return refusal ?? { user_id: userId };
    },
  });

  shopRoute(app, {
    method: "POST",
    url: "/batch_init/:n/:starting_money",
    params: { n: "batch-size", starting_money: "amount" },
    answer: async ({ n: count, starting_money: startingMoney }, guard) => {
      const refusal = await replica.mutate((shop) => shop.batchInitUsers(count, startingMoney, Date.now()), guard);
      return refusal ?? { msg: `Batch init for ${count} users successful` };
    },
  });

  shopRoute(app, {
    method: "GET",
    url: "/find_user/:user_id",
    params: { user_id: "id" },
    response: userViewSchema,
    answer: ({ user_id: userId }) => replica.read((shop) => shop.findUser(userId)),
  });

  shopRoute(app, {
    method: "POST",
    url: "/add_funds/:user_id/:amount",
    params: { user_id: "id", amount: "amount" },
    answer: async ({ user_id: userId, amount }, guard) => {
      const refusal = await replica.mutate((shop) => shop.addFunds(userId, amount), guard);
      return refusal ?? `User ${userId} credit increased by ${amount}`;
    },
  });

  shopRoute(app, {
    method: "POST",
    url: "/pay/:user_id/:amount",
    params: { user_id: "id", amount: "amount" },
    answer: async ({ user_id: userId, amount }, guard) => {
      const refusal = await replica.mutate((shop) => shop.pay(userId, amount), guard);
      return refusal ?? `User ${userId} paid ${amount}`;
    },
  });
  done();
};
