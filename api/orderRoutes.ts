import type { FastifyPluginCallback } from "fastify";
import { isRefusal } from "../crdt/shopState.js";
import { newId } from "../node/idempotency.js";
import type { Replica } from "../node/replica.js";
import { idReplySchema, sendOutcome, sendRefusal } from "./answers.js";
import { BadInput, paramsSchema, readAmount, readBatchSize } from "./params.js";

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

export function orderRoutes(replica: Replica): FastifyPluginCallback {
  return (app, _options, done) => {
    app.post<{ Params: { user_id: string } }>(
      "/create/:user_id",
      { schema: { params: paramsSchema(["user_id"], []), response: { 200: idReplySchema("order_id") } } },
      async (request, reply) => {
        const orderId = newId(request.idempotencyGuard);
        const refusal = await replica.mutate((shop) => shop.createOrder(orderId, request.params.user_id), request.idempotencyGuard);
        return refusal === null ? { order_id: orderId } : sendRefusal(reply, refusal);
      },
    );

    app.post<{ Params: { n: string; n_items: string; n_users: string; item_price: string } }>(
      "/batch_init/:n/:n_items/:n_users/:item_price",
      { schema: { params: paramsSchema([], ["n", "n_items", "n_users", "item_price"]) } },
      async (request, reply) => {
        const count = readBatchSize("n", request.params.n);
        const itemCount = readAmount("n_items", request.params.n_items);
        const userCount = readAmount("n_users", request.params.n_users);
        const price = readAmount("item_price", request.params.item_price);
        if (count > 0 && (itemCount === 0 || userCount === 0)) throw new BadInput("n_items and n_users must be at least 1");
        if (!Number.isSafeInteger(2 * price)) throw new BadInput(`an order's total cost 2 * item_price must be at most ${Number.MAX_SAFE_INTEGER}`);
        const refusal = await replica.mutate((shop) => shop.batchInitOrders(count, itemCount, userCount, price, pickIndex, Date.now()), request.idempotencyGuard);
        return refusal === null ? { msg: `Batch init for ${count} orders successful` } : sendRefusal(reply, refusal);
      },
    );

    app.get<{ Params: { order_id: string } }>(
      "/find/:order_id",
      { schema: { params: paramsSchema(["order_id"], []), response: { 200: orderViewSchema } } },
      async (request, reply) => {
        const view = await replica.read((shop) => shop.findOrder(request.params.order_id));
        return isRefusal(view) ? sendRefusal(reply, view) : view;
      },
    );

    app.post<{ Params: { order_id: string; item_id: string; quantity: string } }>(
      "/addItem/:order_id/:item_id/:quantity",
      { schema: { params: paramsSchema(["order_id", "item_id"], ["quantity"]) } },
      async (request, reply) => {
        const { order_id: orderId, item_id: itemId } = request.params;
        const quantity = readAmount("quantity", request.params.quantity);
        const refusal = await replica.mutate((shop) => shop.addItem(orderId, itemId, quantity), request.idempotencyGuard);
        return sendOutcome(reply, refusal, `Item ${itemId} added to order ${orderId}`);
      },
    );

    app.post<{ Params: { order_id: string } }>(
      "/checkout/:order_id",
      { schema: { params: paramsSchema(["order_id"], []) } },
      async (request, reply) => {
        const refusal = await replica.mutate((shop) => shop.checkout(request.params.order_id), request.idempotencyGuard);
        return sendOutcome(reply, refusal, `Checkout of order ${request.params.order_id} successful`);
      },
    );
    done();
  };
}

/** Uniform in [0, n); batch_init's random items and users. */
function pickIndex(n: number): number {
  return Math.floor(Math.random() * n);
}
