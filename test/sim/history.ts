// A Jepsen-style history of one simulated run: every client operation with the
// replica it went to, when it was invoked and when it completed, and how: ok, fail
// (a refusal: it changed nothing), unknown (its replica crashed before answering)
// or still pending.
import type { Actor } from "../../crdt/boundedCounter.js";

export type Op =
  | { readonly f: "createItem"; readonly item: string; readonly price: number }
  | { readonly f: "addStock"; readonly item: string; readonly amount: number }
  | { readonly f: "subtractStock"; readonly item: string; readonly amount: number }
  | { readonly f: "readItem"; readonly item: string }
  | { readonly f: "createUser"; readonly user: string }
  | { readonly f: "addFunds"; readonly user: string; readonly amount: number }
  | { readonly f: "pay"; readonly user: string; readonly amount: number }
  | { readonly f: "readUser"; readonly user: string }
  | { readonly f: "createOrder"; readonly order: string; readonly user: string }
  | { readonly f: "addItem"; readonly order: string; readonly item: string; readonly quantity: number }
  | { readonly f: "checkout"; readonly order: string }
  | { readonly f: "readOrder"; readonly order: string }
  // batch_init: keys "0".."count-1" (orders over items and users of those ids; `seed` draws their lines)
  | { readonly f: "batchInitItems"; readonly count: number; readonly amount: number; readonly price: number }
  | { readonly f: "batchInitUsers"; readonly count: number; readonly amount: number }
  | {
      readonly f: "batchInitOrders";
      readonly count: number;
      readonly itemCount: number;
      readonly userCount: number;
      readonly price: number;
      readonly seed: number;
    };

export type ReadValue =
  | { readonly kind: "item"; readonly stock: number; readonly price: number }
  | { readonly kind: "user"; readonly credit: number }
  | { readonly kind: "order"; readonly paid: boolean; readonly lines: readonly (readonly [string, number])[]; readonly totalCost: number }
  | { readonly kind: "not-found" };

export type Outcome = "pending" | "ok" | "fail" | "unknown";

export interface Invocation {
  readonly index: number;
  readonly client: number;
  readonly replicaId: string;
  /** The replica's incarnation when invoked: the actor whose row the operation writes. */
  readonly actor: Actor;
  readonly op: Op;
  readonly invokedAt: number;
  completedAt: number | undefined;
  outcome: Outcome;
  value: ReadValue | undefined;
  /** A refusal's reason, or why the outcome is unknown. */
  reason: string | undefined;
}

export class History {
  readonly invocations: Invocation[] = [];

  invoke(client: number, replicaId: string, actor: Actor, op: Op, now: number): Invocation {
    const invocation: Invocation = {
      index: this.invocations.length,
      client,
      replicaId,
      actor,
      op,
      invokedAt: now,
      completedAt: undefined,
      outcome: "pending",
      value: undefined,
      reason: undefined,
    };
    this.invocations.push(invocation);
    return invocation;
  }

  complete(invocation: Invocation, outcome: "ok" | "fail" | "unknown", now: number, value?: ReadValue, reason?: string): void {
    if (invocation.outcome !== "pending") return;
    invocation.outcome = outcome;
    invocation.completedAt = now;
    invocation.value = value;
    invocation.reason = reason;
  }

  pendingAt(replicaId: string): Invocation[] {
    return this.invocations.filter((invocation) => invocation.outcome === "pending" && invocation.replicaId === replicaId);
  }
}

export function describeOp(op: Op): string {
  switch (op.f) {
    case "createItem":
      return `createItem(${op.item}, price ${op.price})`;
    case "addStock":
    case "subtractStock":
      return `${op.f}(${op.item}, ${op.amount})`;
    case "readItem":
      return `readItem(${op.item})`;
    case "createUser":
      return `createUser(${op.user})`;
    case "addFunds":
    case "pay":
      return `${op.f}(${op.user}, ${op.amount})`;
    case "readUser":
      return `readUser(${op.user})`;
    case "createOrder":
      return `createOrder(${op.order}, ${op.user})`;
    case "addItem":
      return `addItem(${op.order}, ${op.item}, ${op.quantity})`;
    case "checkout":
    case "readOrder":
      return `${op.f}(${op.order})`;
    case "batchInitItems":
      return `batchInitItems(${op.count}, stock ${op.amount}, price ${op.price})`;
    case "batchInitUsers":
      return `batchInitUsers(${op.count}, credit ${op.amount})`;
    case "batchInitOrders":
      return `batchInitOrders(${op.count}, ${op.itemCount} items, ${op.userCount} users, price ${op.price})`;
  }
}

export function describeValue(value: ReadValue | undefined): string {
  if (value === undefined) return "";
  switch (value.kind) {
    case "item":
      return ` -> stock ${value.stock}`;
    case "user":
      return ` -> credit ${value.credit}`;
    case "order":
      return ` -> ${value.paid ? "paid" : "unpaid"} [${value.lines.map(([item, quantity]) => `${item}x${quantity}`).join(" ")}] total ${value.totalCost}`;
    case "not-found":
      return " -> not found";
  }
}

export function describeInvocation(invocation: Invocation): string {
  const times = `t=${invocation.invokedAt.toFixed(1)}..${invocation.completedAt === undefined ? "?" : invocation.completedAt.toFixed(1)}`;
  const reason = invocation.reason === undefined ? "" : ` (${invocation.reason})`;
  return `#${invocation.index} ${times} client ${invocation.client} at ${invocation.replicaId} ${describeOp(invocation.op)} ${invocation.outcome}${describeValue(invocation.value)}${reason}`;
}
