// Client operations on a simulated replica, through the same Replica.mutate and
// Replica.read closures as the API routes (api/*Routes.ts); a refusal is the 4xx.
import { type Refusal, isRefusal } from "../../crdt/shopState.js";
import type { Replica } from "../../node/replica.js";
import type { Op, ReadValue } from "./history.js";

export type OperationResult = { readonly ok: true; readonly value?: ReadValue } | { readonly ok: false; readonly reason: string };

export async function perform(replica: Replica, op: Op): Promise<OperationResult> {
  switch (op.f) {
    case "createItem":
      return answer(await replica.mutate((shop) => (shop.createItem(op.item, op.price), null)));
    case "addStock":
      return answer(await replica.mutate((shop) => shop.addStock(op.item, op.amount)));
    case "subtractStock":
      return answer(await replica.mutate((shop) => shop.subtractStock(op.item, op.amount)));
    case "readItem": {
      const view = await replica.read((shop) => shop.findItem(op.item));
      return { ok: true, value: isRefusal(view) ? { kind: "not-found" } : { kind: "item", stock: view.stock, price: view.price } };
    }
    case "createUser":
      return answer(await replica.mutate((shop) => (shop.createUser(op.user), null)));
    case "addFunds":
      return answer(await replica.mutate((shop) => shop.addFunds(op.user, op.amount)));
    case "pay":
      return answer(await replica.mutate((shop) => shop.pay(op.user, op.amount)));
    case "readUser": {
      const view = await replica.read((shop) => shop.findUser(op.user));
      return { ok: true, value: isRefusal(view) ? { kind: "not-found" } : { kind: "user", credit: view.credit } };
    }
    case "createOrder":
      return answer(await replica.mutate((shop) => shop.createOrder(op.order, op.user)));
    case "addItem":
      return answer(await replica.mutate((shop) => shop.addItem(op.order, op.item, op.quantity)));
    case "checkout":
      return answer((await replica.checkout(op.order)).refusal);
    case "batchInitItems":
      return answer(await replica.mutate((shop) => shop.batchInitItems(op.count, op.amount, op.price)));
    case "batchInitUsers":
      return answer(await replica.mutate((shop) => shop.batchInitUsers(op.count, op.amount)));
    case "batchInitOrders":
      return answer(await replica.mutate((shop) => shop.batchInitOrders(op.count, op.itemCount, op.userCount, op.price, () => op.seed)));
    case "readOrder": {
      const view = await replica.read((shop) => shop.findOrder(op.order));
      return {
        ok: true,
        value: isRefusal(view) ? { kind: "not-found" } : { kind: "order", paid: view.paid, lines: view.items, totalCost: view.total_cost },
      };
    }
  }
}

function answer(refusal: Refusal | null): OperationResult {
  return refusal === null ? { ok: true } : { ok: false, reason: `${refusal.reason}: ${refusal.message}` };
}
