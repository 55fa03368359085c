// The peer port under resource exhaustion (issue 8, item 4), over real sockets on free
// ports. Other hosts are other loopback addresses (127.0.0.2...), the real peers dial
// from 127.0.0.1:
// - the whole pre-auth pool held by idle connections from one address, re-opened as
//   they close, does not keep real peers from linking (before: 39 of 40 dials failed);
// - an 8 MiB frame before authentication is refused after a few KiB, so memory does not
//   grow with it (before: buffered whole, +23 MB RSS for 3 connections);
// - refusals are logged through a cap with a count of the rest (before: a line each);
// - an idle connection is closed at the upgrade deadline.
import { type Socket, connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { addressKeyOf } from "../../cluster/wsTransport.js";
import { linkPath } from "../../cluster/wsTransport.js";
import { RawConnection } from "../support/rawWebSocket.js";
import { type Replica, type ReplicaOptions, host, startReplica, testSecret, ticketHeaders, waitFor } from "./wsTransportHarness.js";

const started: Replica[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

async function replica(id: string, options: ReplicaOptions = {}): Promise<Replica> {
  const made = await startReplica(id, options);
  started.push(made);
  return made;
}

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
  const replicas = started.splice(0);
  await Promise.all(replicas.map((made) => made.transport.close()));
  for (const made of replicas) expect(made.recorder.violations, `${made.id}'s event grammar`).toEqual([]);
});

/**
 * `count` idle TCP connections to `port` from `localAddress`, each re-opened
 * `reopenDelayMs` after it closes, until stopped. Returns the number of connects.
 */
function idleFlood(port: number, localAddress: string, count: number, reopenDelayMs: number): { stop: () => void; connects: () => number } {
  let stopped = false;
  let connects = 0;
  const sockets = new Set<Socket>();
  const open = (): void => {
    if (stopped) return;
    const socket = connect({ host, port, localAddress });
    sockets.add(socket);
    socket.on("connect", () => (connects += 1));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      sockets.delete(socket);
      setTimeout(open, reopenDelayMs);
    });
  };
  for (let index = 0; index < count; index++) open();
  return {
    stop: () => {
      stopped = true;
      for (const socket of sockets) socket.destroy();
    },
    connects: () => connects,
  };
}

describe("WsTransport limits before authentication", () => {
  it("the whole pre-auth pool held by idle connections from one address does not keep real peers from linking", async () => {
    const target = await replica("t");
    const flood = idleFlood(target.transport.port, "127.0.0.2", 32, 20);
    cleanups.push(() => flood.stop());
    await waitFor("the flood is on", () => flood.connects() >= 32);
    // Real dials, one fresh dialer after another, each must link at once.
    const linkMs: number[] = [];
    for (let round = 0; round < 8; round++) {
      const dialer = await startReplica(`d${round}`);
      const startedAt = Date.now();
      target.transport.setPeers([dialer.address]);
      dialer.transport.setPeers([target.address]);
      await waitFor(
        `d${round} links with t under the flood`,
        () => dialer.recorder.isUp("t") && target.recorder.isUp(`d${round}`),
        3_000,
        () => `${dialer.recorder.dump()}\n--- t:\n${target.recorder.dump().slice(-2_000)}`,
      );
      linkMs.push(Date.now() - startedAt);
      await dialer.transport.close();
    }
    flood.stop();
    expect(flood.connects()).toBeGreaterThan(64); // the flood kept at it
    expect(target.recorder.logs.filter((line) => /^from 127\.0\.0\.1:.*refused/.test(line.message))).toEqual([]);
    expect(target.recorder.logged("warn", /too many unauthenticated connections from 127\.0\.0\.2$/).length).toBeGreaterThan(0);
    console.log(`links under a 32-connection idle flood from one address: ${linkMs.join(", ")} ms; ${flood.connects()} flood connects`);
  });

  it("of many addresses, each gets at most its share; another address still gets a slot", async () => {
    const target = await replica("t", { limits: { connectionsUnauthenticatedPerAddressMax: 2 } });
    const opened = await Promise.all([2, 2, 2, 3].map((last) => RawConnection.open(target.transport.port, `127.0.0.${last}`)));
    cleanups.push(() => opened.forEach((connection) => connection.destroy()));
    await waitFor("the third from 127.0.0.2 is refused", () => opened.slice(0, 3).filter((connection) => connection.isClosed).length === 1);
    expect(opened[3]!.isClosed).toBe(false);
    expect(target.recorder.logged("warn", /^from 127\.0\.0\.2:\d+: refused, too many unauthenticated connections from 127\.0\.0\.2$/)).toHaveLength(1);
  });

  it("an 8 MiB frame before authentication is refused after a few KiB, without growing memory with it", async () => {
    const target = await replica("t", { limits: { refusalLinesPerWindowMax: 100 } });
    const connections = 8;
    const payloadBytes = 8 * 1024 * 1024 - 64;
    // One masked client frame, mask 0 so that every connection shares the same payload bytes.
    const header = Buffer.alloc(14);
    header[0] = 0x82;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(payloadBytes), 2);
    const payload = Buffer.alloc(payloadBytes, 0x41);
    const sampled = { peakBytes: 0 };
    const bufferBytes = (): number => process.memoryUsage().arrayBuffers;
    const baselineBytes = bufferBytes();
    const sampler = setInterval(() => (sampled.peakBytes = Math.max(sampled.peakBytes, bufferBytes() - baselineBytes)), 2);
    cleanups.push(() => clearInterval(sampler));
    const raws = await Promise.all(
      Array.from({ length: connections }, async (_, index) => {
        const connection = await RawConnection.open(target.transport.port, `127.0.1.${index + 2}`);
        cleanups.push(() => connection.destroy());
        // Half with a good ticket (a secret holder, or a man in the middle passing a real dial on),
        // half with none (a stranger: refused before any WebSocket).
        const withTicket = index % 2 === 0;
        const upgraded = await connection.upgrade(linkPath, withTicket ? ticketHeaders(testSecret, "t") : {});
        connection.write(header.subarray(0, 10));
        connection.write(Buffer.alloc(4)); // the mask key
        connection.write(payload);
        return { connection, upgraded, withTicket };
      }),
    );
    const closed = await Promise.all(raws.map(({ connection }) => connection.closedWithin(3_000)));
    await sleep(50);
    clearInterval(sampler);
    // Buffered whole, each would hold 8 MiB (16 while ws joins the chunks): 32+ MiB here.
    expect(sampled.peakBytes).toBeLessThan(4 * 1024 * 1024);
    expect(raws.map(({ upgraded }) => upgraded)).toEqual(raws.map(({ withTicket }) => withTicket));
    expect(closed.every(Boolean)).toBe(true);
    expect(target.recorder.logged("warn", /refused, over 4096 bytes before authentication$/)).toHaveLength(connections / 2);
    expect(target.recorder.logged("warn", /refused, no upgrade ticket$/)).toHaveLength(connections / 2);
    console.log(`buffer memory peak while ${connections} connections sent 8 MiB frames before authentication: +${(sampled.peakBytes / 1024).toFixed(0)} KiB`);
  });

  it("refusals are logged through a cap per kind, with a count of the rest", async () => {
    const target = await replica("t", { timing: { refusalLogWindowMs: 1_500 } });
    const attempts = 120;
    for (let batch = 0; batch < attempts / 20; batch++) {
      await Promise.all(
        Array.from({ length: 20 }, async (_, index) => {
          const connection = await RawConnection.open(target.transport.port, `127.0.2.${index + 2}`);
          await connection.upgrade(linkPath); // no ticket
          await connection.closedWithin(2_000);
          connection.destroy();
        }),
      );
    }
    const refused = target.recorder.logged("warn", /refused, no upgrade ticket$/);
    expect(refused.length).toBeGreaterThanOrEqual(10);
    expect(refused.length).toBeLessThan(attempts / 2);
    await waitFor(
      "the count of the lines left out",
      () => target.recorder.logged("warn", /^\d+ more ticket lines left out in the last \d+ ms$/).length > 0,
      5_000,
    );
    const leftOut = target.recorder.logged("warn", /more ticket lines left out/).map((line) => Number(line.message.split(" ")[0]));
    expect(refused.length + leftOut.reduce((sum, count) => sum + count, 0)).toBe(attempts);
  });

  it("an idle connection is closed at the upgrade deadline, a stalled handshake at the handshake deadline", async () => {
    const target = await replica("t", { timing: { upgradeTimeoutMs: 300, handshakeTimeoutMs: 900 } });
    const idle = await RawConnection.open(target.transport.port);
    const stalled = await RawConnection.open(target.transport.port, "127.0.0.2");
    expect(await stalled.upgrade(linkPath, ticketHeaders(testSecret, "t"))).toBe(true);
    const openedAt = Date.now();
    expect(await idle.closedWithin(2_000)).toBe(true);
    const idleMs = Date.now() - openedAt;
    expect(await stalled.closedWithin(2_000)).toBe(true);
    const stalledMs = Date.now() - openedAt;
    expect(idleMs).toBeLessThan(700);
    expect(stalledMs).toBeGreaterThan(idleMs);
    expect(target.recorder.logged("warn", /refused, no valid upgrade within 300 ms$/)).toHaveLength(1);
    expect(target.recorder.logged("warn", /refused, not authenticated within 900 ms$/)).toHaveLength(1);
  });

  it("counts IPv4 addresses one by one and IPv6 ones by their /64", () => {
    expect(addressKeyOf("10.0.0.7")).toBe("10.0.0.7");
    expect(addressKeyOf("::ffff:10.0.0.7")).toBe("10.0.0.7");
    expect(addressKeyOf("2001:db8:1:2:3:4:5:6")).toBe("2001:db8:1:2::/64");
    expect(addressKeyOf("2001:db8:1:2::9")).toBe("2001:db8:1:2::/64");
    expect(addressKeyOf("2001:DB8:0001:0002:ffff::1")).toBe("2001:db8:1:2::/64");
    expect(addressKeyOf("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(addressKeyOf("::1")).toBe("0:0:0:0::/64");
    expect(addressKeyOf("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(addressKeyOf(undefined)).toBe("?");
  });
});
