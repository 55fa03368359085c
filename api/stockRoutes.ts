import type { FastifyPluginCallback } from "fastify";
import { isRefusal } from "../crdt/shopState.js";
import { newId } from "../node/idempotency.js";
import type { Replica } from "../node/replica.js";
import { idReplySchema, sendOutcome, sendRefusal } from "./answers.js";
import { paramsSchema, readAmount, readBatchSize } from "./params.js";

const itemViewSchema = {
  type: "object",
  properties: { stock: { type: "integer" }, price: { type: "integer" } },
  required: ["stock", "price"],
} as const;

export function stockRoutes(replica: Replica): FastifyPluginCallback {
  return (app, _options, done) => {
    app.post<{ Params: { price: string } }>(
      "/item/create/:price",
      { schema: { params: paramsSchema([], ["price"]), response: { 200: idReplySchema("item_id") } } },
      async (request, reply) => {
        const price = readAmount("price", request.params.price);
        const itemId = newId(request.idempotencyGuard);
        const refusal = await replica.mutate((shop) => (shop.createItem(itemId, price), null), request.idempotencyGuard);
        return refusal === null ? { item_id: itemId } : sendRefusal(reply, refusal);
      },
    );

    app.post<{ Params: { n: string; starting_stock: string; item_price: string } }>(
      "/batch_init/:n/:starting_stock/:item_price",
      { schema: { params: paramsSchema([], ["n", "starting_stock", "item_price"]) } },
      async (request, reply) => {
        const count = readBatchSize("n", request.params.n);
        const startingStock = readAmount("starting_stock", request.params.starting_stock);
        const price = readAmount("item_price", request.params.item_price);
        const refusal = await replica.mutate((shop) => shop.batchInitItems(count, startingStock, price, Date.now()), request.idempotencyGuard);
        return refusal === null ? { msg: `Batch init for ${count} items successful` } : sendRefusal(reply, refusal);
      },
    );

    app.get<{ Params: { item_id: string } }>(
      "/find/:item_id",
      { schema: { params: paramsSchema(["item_id"], []), response: { 200: itemViewSchema } } },
      async (request, reply) => {
        const view = await replica.read((shop) => shop.findItem(request.params.item_id));
        return isRefusal(view) ? sendRefusal(reply, view) : view;
      },
    );

    app.post<{ Params: { item_id: string; amount: string } }>(
      "/add/:item_id/:amount",
      { schema: { params: paramsSchema(["item_id"], ["amount"]) } },
      async (request, reply) => {
        const amount = readAmount("amount", request.params.amount);
        const refusal = await replica.mutate((shop) => shop.addStock(request.params.item_id, amount), request.idempotencyGuard);
        return sendOutcome(reply, refusal, `Item ${request.params.item_id} stock increased by ${amount}`);
      },
    );

    app.post<{ Params: { item_id: string; amount: string } }>(
      "/subtract/:item_id/:amount",
      { schema: { params: paramsSchema(["item_id"], ["amount"]) } },
      async (request, reply) => {
        const amount = readAmount("amount", request.params.amount);
        const refusal = await replica.mutate((shop) => shop.subtractStock(request.params.item_id, amount), request.idempotencyGuard);
        return sendOutcome(reply, refusal, `Item ${request.params.item_id} stock decreased by ${amount}`);
      },
    );
    done();
  };
}
