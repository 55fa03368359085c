// The cap on lines a remote can provoke: per kind, at most N a window, then one count of the rest.
import { describe, expect, it } from "vitest";
import { RateLimitedLog } from "../../cluster/rateLimitedLog.js";

describe("RateLimitedLog", () => {
  it("passes the first lines of each kind in a window, counts the rest, and reports the count when the window ends", () => {
    const lines: string[] = [];
    const log = new RateLimitedLog((level, message) => lines.push(`${level}: ${message}`), 3, 10_000);
    for (let index = 0; index < 100; index++) log.write("connection", "warn", `refused ${index}`, 1_000 + index);
    log.write("ticket", "warn", "a bad ticket", 1_200); // a flood of one kind hides no other
    expect(lines).toEqual(["warn: refused 0", "warn: refused 1", "warn: refused 2", "warn: a bad ticket"]);
    log.roll(5_000); // not over yet
    expect(lines).toHaveLength(4);
    log.roll(11_000);
    expect(lines[4]).toBe("warn: 97 more connection lines left out in the last 10000 ms");
    log.write("connection", "info", "next window", 11_001);
    log.roll(30_000); // nothing was left out: nothing to say
    expect(lines.slice(5)).toEqual(["info: next window"]);
  });
});
