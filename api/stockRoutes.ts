import type { FastifyPluginCallback } from "fastify";
import { newId } from "../node/idempotency.js";
import type { Replica } from "../node/replica.js";
import { idReplySchema } from "./answers.js";
import { shopRoute } from "./shopRoute.js";

const itemViewSchema = {
  type: "object",
  properties: { stock: { type: "integer" }, price: { type: "integer" } },
  required: ["stock", "price"],
} as const;

export const stockRoutes: FastifyPluginCallback<{ readonly replica: Replica }> = (app, { replica }, done) => {
  shopRoute(app, {
    method: "POST",
    url: "/item/create/:price",
    params: { price: "amount" },
    response: idReplySchema("item_id"),
    answer: async ({ price }, guard) => {
      const itemId = newId(guard);
      const refusal = await replica.mutate((shop) => {
        shop.createItem(itemId, price);
        return null;
      }, guard);
      return refusal ?? { item_id: itemId };
    },
  });

  shopRoute(app, {
    method: "POST",
    url: "/batch_init/:n/:starting_stock/:item_price",
    params: { n: "batch-size", starting_stock: "amount", item_price: "amount" },
    answer: async ({ n: count, starting_stock: startingStock, item_price: price }, guard) => {
      const refusal = await replica.mutate((shop) => shop.batchInitItems(count, startingStock, price, Date.now()), guard);
      return refusal ?? { msg: `Batch init for ${count} items successful` };
    },
  });

  shopRoute(app, {
    method: "GET",
    url: "/find/:item_id",
    params: { item_id: "id" },
    response: itemViewSchema,
    answer: ({ item_id: itemId }) => replica.read((shop) => shop.findItem(itemId)),
  });

  shopRoute(app, {
    method: "POST",
    url: "/add/:item_id/:amount",
    params: { item_id: "id", amount: "amount" },
    answer: async ({ item_id: itemId, amount }, guard) => {
      const refusal = await replica.mutate((shop) => shop.addStock(itemId, amount), guard);
      return refusal ?? `Item ${itemId} stock increased by ${amount}`;
    },
  });

  shopRoute(app, {
    method: "POST",
    url: "/subtract/:item_id/:amount",
    params: { item_id: "id", amount: "amount" },
    answer: async ({ item_id: itemId, amount }, guard) => {
      const refusal = await replica.mutate((shop) => shop.subtractStock(itemId, amount), guard);
      return refusal ?? `Item ${itemId} stock decreased by ${amount}`;
    },
  });
  done();
};
