// The ledger of the chaos runs (chaosLedger.ts) must catch what it is
// there for (G1, G2, G4) and must not cry wolf over outcomes the client could not
// know: a timed-out write may have happened or not, a refused connection did not.
import { describe, expect, it } from "vitest";
import { type AgreedState, type OrderRead, checkLedger } from "./chaosLedger.js";
import type { OpKind, OpRecord, Outcome, ShopShape } from "./chaosLoad.js";

const shape: ShopShape = { items: 2, itemStock: 10, users: 2, userCredit: 100, orders: 3 };

function record(kind: OpKind, id: string, amount: number, outcome: Outcome): OpRecord {
  return { kind, replicaIndex: 0, id, amount, outcome, status: outcome === "2xx" ? 200 : outcome === "4xx" ? 400 : 0, startedMs: 0, endedMs: 1, detail: "" };
}

function order(paid: boolean, user = "0"): OrderRead {
  return {
    paid,
    items: [
      ["0", 1],
      ["1", 1],
    ],
    user_id: user,
    total_cost: 2,
  };
}

/** Initial values, orders unpaid, then `change` applied. */
function agreed(change: (state: { stock: Map<string, number>; credit: Map<string, number>; orders: Map<string, OrderRead> }) => void): AgreedState {
  const state = {
    stock: new Map([
      ["0", 10],
      ["1", 10],
    ]),
    credit: new Map([
      ["0", 100],
      ["1", 100],
    ]),
    orders: new Map([
      ["0", order(false)],
      ["1", order(false)],
      ["2", order(false, "1")],
    ]),
  };
  change(state);
  return state;
}

describe("checkLedger", () => {
  it("balances acknowledged writes and paid orders exactly", () => {
    const records = [
      record("addStock", "0", 5, "2xx"),
      record("subtract", "1", 3, "2xx"),
      record("subtract", "1", 50, "4xx"),
      record("addFunds", "1", 7, "2xx"),
      record("pay", "0", 9, "2xx"),
      record("checkout", "0", 0, "2xx"),
      record("checkout", "1", 0, "4xx"),
    ];
    const state = agreed((s) => {
      s.stock.set("0", 10 + 5 - 1).set("1", 10 - 3 - 1);
      s.credit.set("0", 100 - 9 - 2).set("1", 107);
      s.orders.set("0", order(true));
    });
    const report = checkLedger(shape, records, state);
    expect(report.examples).toEqual([]);
    expect(report.violations).toBe(0);
    expect(report.paidOrders).toBe(1);
    expect(report.writes).toEqual({ ok2xx: 5, client4xx: 2, unknown: 0, refused: 0, server5xx: 0 });
  });

  it("lets an unknown outcome count either way, a refused connection never", () => {
    const records = [
      record("addStock", "0", 5, "unknown"),
      record("pay", "1", 4, "unknown"),
      record("checkout", "2", 0, "unknown"),
      record("addFunds", "0", 3, "refused"),
    ];
    for (const happened of [false, true]) {
      const state = agreed((s) => {
        if (happened) {
          s.stock.set("0", 15 - 1).set("1", 9);
          s.credit.set("1", 100 - 4 - 2);
          s.orders.set("2", order(true, "1"));
        }
      });
      expect(checkLedger(shape, records, state).violations).toBe(0);
    }
    // The refused add_funds did not happen: reading it applied is an invented increment.
    expect(
      checkLedger(
        shape,
        records,
        agreed((s) => s.credit.set("0", 103)),
      ).examples.join(),
    ).toMatch(/credit of user 0 is 103.*invented/);
  });

  it("catches a lost acknowledged increment, an invented decrement, and negatives (G1, G2)", () => {
    const records = [record("addStock", "0", 5, "2xx"), record("subtract", "1", 3, "4xx")];
    const report = checkLedger(
      shape,
      records,
      agreed((s) => s.stock.set("0", 10).set("1", -3)),
    );
    expect(report.violations).toBe(3);
    expect(report.examples.join("\n")).toMatch(/stock of item 0 is 10, acknowledged writes allow \[15, 15\]: below/);
    expect(report.examples.join("\n")).toMatch(/stock of item 1 is -3: negative \(G1\)/);
  });

  it("catches a 2xx checkout that reads unpaid, a paid order nobody paid, and a 5xx (G2, G4)", () => {
    const records = [record("checkout", "0", 0, "2xx"), record("checkout", "1", 0, "4xx"), record("findItem", "0", 0, "5xx")];
    const state = agreed((s) => {
      s.orders.set("1", order(true)).set("2", order(true, "1"));
      s.stock.set("0", 8).set("1", 8);
      s.credit.set("0", 98).set("1", 98);
    });
    const report = checkLedger(shape, records, state);
    const text = report.examples.join("\n");
    expect(text).toMatch(/order 0: checkout answered 2xx, but it reads unpaid/);
    expect(text).toMatch(/order 1: reads paid, but every checkout answered 4xx/);
    expect(text).toMatch(/order 2: reads paid, but never checked out/);
    expect(text).toMatch(/5xx answer: findItem 0/);
  });
});
