// Requests waiting for a peer's answer (rights requests, forwarded checkouts): each
// wait ends exactly once, with the answer of the peer it was sent to, after its
// wait, or when that peer's link goes down.
import { describe, expect, it } from "vitest";
import { PendingRequests } from "../../cluster/pendingRequests.js";
import { Scheduler } from "../sim/scheduler.js";

type Answer = string;
const unanswered = (why: "waited" | "link down"): Answer => `no answer: ${why}`;

describe("PendingRequests", () => {
  it("ends each wait once: with its peer's answer, after its wait, or when its peer's link goes down", async () => {
    const scheduler = new Scheduler();
    const pending = new PendingRequests<Answer>(scheduler.clock());
    const ends: string[] = [];
    const track = (name: string, wait: Promise<Answer>) => void wait.then((answer) => ends.push(`${name} at ${scheduler.now}: ${answer}`));
    const [a, b, c, d] = [pending.newId(), pending.newId(), pending.newId(), pending.newId()];
    expect(new Set([a, b, c, d]).size).toBe(4);
    track("a", pending.wait(a, "r2", 100, unanswered));
    track("b", pending.wait(b, "r2", 100, unanswered));
    track("c", pending.wait(c, "r3", 100, unanswered));
    track("d", pending.wait(d, "r3", 50, unanswered));
    pending.answered("r3", a, "from the wrong peer");
    pending.answered("r2", 999, "to no request");
    pending.answered("r2", a, "granted");
    pending.answered("r2", a, "a second answer");
    await scheduler.runUntil(10, () => {});
    pending.peerDown("r2", unanswered);
    await scheduler.runUntil(200, () => {});
    pending.answered("r3", c, "too late");
    await scheduler.runUntil(300, () => {});
    expect(ends).toEqual(["a at 0: granted", "b at 10: no answer: link down", "d at 50: no answer: waited", "c at 100: no answer: waited"]);
  });
});
