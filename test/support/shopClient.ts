// A typed client of the shop API (API.md) over a real replica, for tests. The typed
// calls throw when the answer is not the success the contract promises, with the
// status and body in the message; raw calls return the answer as it came.
import { type HttpAnswer, type ReplicaProcess, jsonOf } from "./replicaProcess.js";

export type { ItemView, OrderView, UserView } from "../../crdt/shopState.js";
import type { ItemView, OrderView, UserView } from "../../crdt/shopState.js";

export class ShopClient {
  constructor(readonly replica: ReplicaProcess) {}

  post(path: string): Promise<HttpAnswer> {
    return this.replica.post(path);
  }

  get(path: string): Promise<HttpAnswer> {
    return this.replica.get(path);
  }

  /** POST that must answer 200. */
  async ok(path: string): Promise<HttpAnswer> {
    return expectOk(await this.post(path), `POST ${path}`);
  }

  async createItem(price: number): Promise<string> {
    return idOf(await this.ok(`/stock/item/create/${price}`), "item_id");
  }

  async createUser(): Promise<string> {
    return idOf(await this.ok("/payment/create_user"), "user_id");
  }

  async createOrder(userId: string): Promise<string> {
    return idOf(await this.ok(`/orders/create/${userId}`), "order_id");
  }

  async item(id: string): Promise<ItemView> {
    return jsonOf(expectOk(await this.get(`/stock/find/${id}`), `find item ${id}`)) as ItemView;
  }

  async user(id: string): Promise<UserView> {
    return jsonOf(expectOk(await this.get(`/payment/find_user/${id}`), `find user ${id}`)) as UserView;
  }

  async order(id: string): Promise<OrderView> {
    return jsonOf(expectOk(await this.get(`/orders/find/${id}`), `find order ${id}`)) as OrderView;
  }

  /** A new item with `stock` units at `price`. */
  async stockedItem(price: number, stock: number): Promise<string> {
    const id = await this.createItem(price);
    if (stock > 0) await this.ok(`/stock/add/${id}/${stock}`);
    return id;
  }

  /** A new user with `credit`. */
  async fundedUser(credit: number): Promise<string> {
    const id = await this.createUser();
    if (credit > 0) await this.ok(`/payment/add_funds/${id}/${credit}`);
    return id;
  }

  /** A new order of `userId` with the given lines, added in order. */
  async orderWith(userId: string, lines: readonly (readonly [string, number])[]): Promise<string> {
    const id = await this.createOrder(userId);
    for (const [itemId, quantity] of lines) await this.ok(`/orders/addItem/${id}/${itemId}/${quantity}`);
    return id;
  }
}

function expectOk(answer: HttpAnswer, what: string): HttpAnswer {
  if (answer.status !== 200) throw new Error(`${what}: expected 200, got ${answer.status} ${answer.text}`);
  return answer;
}

function idOf(answer: HttpAnswer, name: string): string {
  const body = jsonOf(answer);
  const id = typeof body === "object" && body !== null ? (body as Record<string, unknown>)[name] : undefined;
  if (typeof id !== "string" || id === "") throw new Error(`expected {"${name}": "<id>"}, got ${answer.text}`);
  return id;
}
