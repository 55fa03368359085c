import { describe, expect, it } from "vitest";
import { Random } from "./random.js";

describe("Random", () => {
  it("gives nearby seeds independent first draws: each seed's plan is its own", () => {
    const first = Array.from({ length: 3000 }, (_, index) => new Random(index + 1).next());
    const share = first.filter((draw) => draw < 1 / 3).length / first.length;
    expect(share).toBeGreaterThan(0.3);
    expect(share).toBeLessThan(0.37);
    const mean = first.reduce((sum, draw) => sum + draw, 0) / first.length;
    let covariance = 0;
    let variance = 0;
    for (let index = 0; index < first.length; index++) {
      variance += (first[index]! - mean) ** 2;
      if (index > 0) covariance += (first[index]! - mean) * (first[index - 1]! - mean);
    }
    expect(Math.abs(covariance / variance)).toBeLessThan(0.1);
  });

  it("replays: one seed, one stream", () => {
    const a = new Random(42);
    const b = new Random(42);
    expect(Array.from({ length: 5 }, () => a.int(0, 1000))).toEqual(Array.from({ length: 5 }, () => b.int(0, 1000)));
  });
});
