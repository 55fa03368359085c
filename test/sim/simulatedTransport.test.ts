// The simulated network does what the WebSocket transport can do and no more: a
// link is ordered and loss-free while up, nothing arrives before peerUp, a short
// cut only delays, a long one takes the link down on both sides (then it comes
// back), and a crash closes the dead replica's links at its peers.
import { describe, expect, it } from "vitest";
import type { PeerMessage } from "../../cluster/messages.js";
import { SimulatedNetwork, type SimulatedTransport } from "./simulatedTransport.js";
import { Random } from "../harness/random.js";
import { Scheduler } from "./scheduler.js";

interface Endpoint {
  readonly transport: SimulatedTransport;
  readonly log: string[];
}

function setup(seed: number, replayProbability = 0) {
  const scheduler = new Scheduler();
  const random = new Random(seed);
  const network = new SimulatedNetwork({
    clock: scheduler.clock(),
    random: () => random.next(),
    replicaIds: ["a", "b"],
    latencyMs: [1, 5],
    detectMs: [300, 600],
    redialMs: [5, 20],
    replayProbability,
  });
  const start = async (id: string): Promise<Endpoint> => {
    const transport = network.transport(id, `${id}/1`);
    const log: string[] = [];
    await transport.start({
      peerUp: (peer, actor) => log.push(`up ${peer} ${actor}`),
      peerDown: (peer) => log.push(`down ${peer}`),
      message: (peer, message) => log.push(`from ${peer} ${message.type === "ack" ? message.seq : message.type}`),
    });
    return { transport, log };
  };
  const run = (untilMs: number) => scheduler.runUntil(untilMs, () => {});
  return { scheduler, network, start, run };
}

const ack = (seq: number): PeerMessage => ({ type: "ack", seq });
const states = (seq: number): PeerMessage => ({ type: "states", seq, entries: [["i:x", new Uint8Array([seq])]] });

describe("the simulated network", () => {
  it("links both sides, and delivers each link's messages in order, none before peerUp", async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const { network, start, run, scheduler } = setup(seed);
      const a = await start("a");
      const b = await start("b");
      // Each side sends as soon as it sees the link up, as the replicator does.
      let sentByA = 0;
      let sentByB = 0;
      const pump = () => {
        if (a.log.includes("up b b/1") && sentByA < 50 && a.transport.send("b", ack(sentByA + 1))) sentByA += 1;
        if (b.log.includes("up a a/1") && sentByB < 50 && b.transport.send("a", ack(sentByB + 1))) sentByB += 1;
        if (sentByA < 50 || sentByB < 50) scheduler.after(0.5, pump);
      };
      pump();
      await run(1000);
      expect(network.fullyConnected()).toBe(true);
      for (const [endpoint, peer] of [
        [a, "b"],
        [b, "a"],
      ] as const) {
        expect(endpoint.log[0]).toBe(`up ${peer} ${peer}/1`);
        expect(endpoint.log.slice(1)).toEqual(Array.from({ length: 50 }, (_, index) => `from ${peer} ${index + 1}`));
      }
    }
  });

  it("a cut shorter than the ping timeout only delays; a longer one takes the link down on both sides until it heals", async () => {
    const { network, start, run } = setup(7);
    const a = await start("a");
    const b = await start("b");
    await run(100);
    network.setCuts([["a", "b"]]);
    expect(a.transport.send("b", ack(1))).toBe(true);
    await run(250);
    expect(b.log).not.toContain("from a 1");
    network.setCuts([]);
    await run(300);
    expect(b.log).toContain("from a 1");
    expect(a.log.filter((line) => line.startsWith("down"))).toEqual([]);

    network.setCuts([["a", "b"]]);
    expect(a.transport.send("b", ack(2))).toBe(true);
    await run(1000);
    expect(a.log).toContain("down b");
    expect(b.log).toContain("down a");
    expect(b.log).not.toContain("from a 2");
    expect(a.transport.send("b", ack(3))).toBe(false);
    await run(3000);
    expect(network.fullyConnected()).toBe(false);
    network.setCuts([]);
    await run(3100);
    expect(network.fullyConnected()).toBe(true);
    expect(a.log.at(-1)).toBe("up b b/1");
    expect(b.log.at(-1)).toBe("up a a/1");
  });

  it("a crash closes the dead replica's links at its peers, and a restart links again", async () => {
    const { network, start, run } = setup(3);
    await start("a");
    const b = await start("b");
    await run(100);
    network.crash("a");
    await run(200);
    expect(b.log.at(-1)).toBe("down a");
    const again = await start("a");
    await run(300);
    expect(again.log).toEqual(["up b b/1"]);
    expect(b.log.at(-1)).toBe("up a a/1");
  });

  it("a dropped link comes back by itself, and what was in flight arrives in order up to a point", async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const { network, start, run } = setup(seed);
      const a = await start("a");
      const b = await start("b");
      await run(100);
      for (let seq = 1; seq <= 10; seq++) a.transport.send("b", ack(seq));
      network.breakLink("a", "b");
      await run(500);
      const received = b.log.filter((line) => line.startsWith("from a")).map((line) => Number(line.split(" ")[2]));
      expect(received).toEqual(Array.from({ length: received.length }, (_, index) => index + 1));
      expect(a.log.filter((line) => line.startsWith("up")).length).toBe(2);
      expect(b.log.filter((line) => line.startsWith("up")).length).toBe(2);
      expect(network.fullyConnected()).toBe(true);
    }
  });

  it("replays old states frames to the process that got them, never to a restarted one", async () => {
    const { network, start, run } = setup(5, 1);
    const a = await start("a");
    const b = await start("b");
    await run(100);
    const received = (endpoint: Endpoint) => endpoint.log.filter((line) => line === "from a states").length;
    expect(a.transport.send("b", states(1))).toBe(true);
    await run(200);
    expect(received(b)).toBe(1);
    // Same process, new link: the frame may come again (a stale duplicate).
    network.breakLink("a", "b");
    await run(600);
    expect(received(b)).toBeGreaterThan(1);
    // A new process of b lacks what made that frame whole: nothing of it is replayed.
    network.crash("b");
    const restarted = await start("b");
    await run(1200);
    expect(restarted.log).toEqual(["up a a/1"]);
  });
});
