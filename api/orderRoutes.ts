import type { FastifyPluginCallback } from "fastify";
import { newId } from "../node/idempotency.js";
import type { Replica } from "../node/replica.js";
import type { ReplicaMetrics } from "./replicaMetrics.js";
import { idReplySchema } from "./answers.js";
import { BadInput } from "./params.js";
import { shopRoute } from "./shopRoute.js";

const orderViewSchema = {
  type: "object",
  properties: {
    order_id: { type: "string" },
    paid: { type: "boolean" },
    items: { type: "array", items: { type: "array", items: [{ type: "string" }, { type: "integer" }] } },
    user_id: { type: "string" },
    total_cost: { type: "integer" },
  },
  required: ["order_id", "paid", "items", "user_id", "total_cost"],
} as const;

export const orderRoutes: FastifyPluginCallback<{ readonly replica: Replica; readonly metrics: ReplicaMetrics }> = (app, { replica, metrics }, done) => {
  shopRoute(app, {
    method: "POST",
    url: "/create/:user_id",
    params: { user_id: "id" },
    response: idReplySchema("order_id"),
    answer: async ({ user_id: userId }, guard) => {
      const orderId = newId(guard);
      const refusal = await replica.mutate((shop) => shop.createOrder(orderId, userId), guard);
      return refusal ?? { order_id: orderId };
    },
  });

  shopRoute(app, {
    method: "POST",
    url: "/batch_init/:n/:n_items/:n_users/:item_price",
    params: { n: "batch-size", n_items: "amount", n_users: "amount", item_price: "amount" },
    answer: async ({ n: count, n_items: itemCount, n_users: userCount, item_price: price }, guard) => {
      // What no single parameter's schema can say.
      if (count > 0 && (itemCount === 0 || userCount === 0)) throw new BadInput("n_items and n_users must be at least 1");
      if (!Number.isSafeInteger(2 * price)) throw new BadInput(`an order's total cost 2 * item_price must be at most ${Number.MAX_SAFE_INTEGER}`);
      const refusal = await replica.mutate((shop) => shop.batchInitOrders(count, itemCount, userCount, price, pickIndex, Date.now()), guard);
      return refusal ?? { msg: `Batch init for ${count} orders successful` };
    },
  });

  shopRoute(app, {
    method: "GET",
    url: "/find/:order_id",
    params: { order_id: "id" },
    response: orderViewSchema,
    answer: ({ order_id: orderId }) => replica.read((shop) => shop.findOrder(orderId)),
  });

  shopRoute(app, {
    method: "POST",
    url: "/addItem/:order_id/:item_id/:quantity",
    params: { order_id: "id", item_id: "id", quantity: "amount" },
    answer: async ({ order_id: orderId, item_id: itemId, quantity }, guard) => {
      const refusal = await replica.mutate((shop) => shop.addItem(orderId, itemId, quantity), guard);
      return refusal ?? `Item ${itemId} added to order ${orderId}`;
    },
  });

  shopRoute(app, {
    method: "POST",
    url: "/checkout/:order_id",
    params: { order_id: "id" },
    answer: async ({ order_id: orderId }, guard) => {
      const { refusal, order } = await replica.checkout(orderId, guard);
      if (order !== undefined) metrics.checkoutOf(order);
      return refusal ?? `Checkout of order ${orderId} successful`;
    },
  });
  done();
};

/** Uniform in [0, n); batch_init's random items and users. */
function pickIndex(n: number): number {
  return Math.floor(Math.random() * n);
}
