// A man in the middle between two real WsTransports: a TCP proxy that reads the
// WebSocket frames of the link, lets the handshake pass untouched, then flips a byte,
// injects a frame, replays one or drops one, in either direction. Each time the
// receiving side closes the link at the first frame whose tag fails, delivers nothing
// the proxy made or repeated, and the link comes back (a fresh handshake, fresh keys)
// and carries messages again. Without per-frame tags the injected frame is delivered.
import { randomBytes } from "node:crypto";
import { type Server, type Socket, connect, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import type { PeerMessage } from "../../cluster/messages.js";
import { encodeMessage } from "../../cluster/messages.js";
import { encodeFrame } from "../support/rawWebSocket.js";
import { type Replica, host, startReplica, waitFor, waitForMesh } from "./wsTransportHarness.js";

type Direction = "toAcceptor" | "toDialer";
type Attack = "none" | "flip" | "inject" | "replay" | "drop";

/** Data frames each side sends in the handshake (hello and proof; challenge and welcome). */
const handshakeFrames = 2;
const injected: PeerMessage = { type: "states", seq: 0, entries: [["i:injected", Uint8Array.of(1, 2, 3)]] };

interface WsFrame {
  readonly raw: Buffer;
  readonly opcode: number;
  /** Offset of the payload in `raw`. */
  readonly payloadAt: number;
  readonly masked: boolean;
}

/** Splits complete frames off the front of `buffer`; returns them and the rest. */
function takeFrames(buffer: Buffer): { frames: WsFrame[]; rest: Buffer } {
  const frames: WsFrame[] = [];
  let at = 0;
  while (at + 2 <= buffer.length) {
    const opcode = buffer[at]! & 0x0f;
    const masked = (buffer[at + 1]! & 0x80) !== 0;
    let length = buffer[at + 1]! & 0x7f;
    let header = 2;
    if (length === 126) {
      if (at + 4 > buffer.length) break;
      length = buffer.readUInt16BE(at + 2);
      header = 4;
    } else if (length === 127) {
      if (at + 10 > buffer.length) break;
      length = Number(buffer.readBigUInt64BE(at + 2));
      header = 10;
    }
    const payloadAt = header + (masked ? 4 : 0);
    if (at + payloadAt + length > buffer.length) break;
    frames.push({ raw: Buffer.from(buffer.subarray(at, at + payloadAt + length)), opcode, payloadAt, masked });
    at += payloadAt + length;
  }
  return { frames, rest: buffer.subarray(at) };
}

/** One direction of one proxied connection: HTTP head first, then frames. */
class Pipe {
  private buffer: Buffer = Buffer.alloc(0);
  private inHead = true;
  private dataFrames = 0;
  private held: Buffer | null = null;

  constructor(
    private readonly to: Socket,
    private readonly attack: Attack,
  ) {}

  push(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    if (this.inHead) {
      const end = this.buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      this.to.write(this.buffer.subarray(0, end + 4));
      this.buffer = this.buffer.subarray(end + 4);
      this.inHead = false;
    }
    const { frames, rest } = takeFrames(this.buffer);
    this.buffer = rest;
    for (const frame of frames) for (const out of this.tamper(frame)) this.to.write(out);
  }

  /** What to forward for `frame`: control frames and the handshake pass as they are. */
  private tamper(frame: WsFrame): Buffer[] {
    if (frame.opcode !== 2) return [frame.raw];
    const index = this.dataFrames++;
    const first = handshakeFrames;
    if (this.attack === "flip" && index === first) {
      const flipped = Buffer.from(frame.raw);
      flipped[frame.payloadAt]! ^= 0x01;
      return [flipped];
    }
    if (this.attack === "inject" && index === first) {
      // A valid message, and the same with a made-up tag behind it.
      const forged = [encodeMessage(injected), Buffer.concat([encodeMessage(injected), randomBytes(32)])];
      return [...forged.map((payload) => encodeFrame(2, payload, { masked: frame.masked })), frame.raw];
    }
    if (this.attack === "replay" && index === first) this.held = frame.raw;
    if (this.attack === "replay" && index === first + 1 && this.held !== null) return [frame.raw, this.held];
    if (this.attack === "drop" && index === first) return [];
    return [frame.raw];
  }
}

/** A TCP proxy whose first connection suffers `attack` in `direction`; later ones pass untouched. */
class MitmProxy {
  private readonly sockets = new Set<Socket>();
  connections = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number, attack: Attack, direction: Direction): Promise<MitmProxy> {
    const server = createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    const proxy = new MitmProxy(server, address.port);
    server.on("connection", (client) => {
      const upstream = connect({ host, port: targetPort });
      const attacked = proxy.connections++ === 0 ? attack : "none";
      const toAcceptor = new Pipe(upstream, direction === "toAcceptor" ? attacked : "none");
      const toDialer = new Pipe(client, direction === "toDialer" ? attacked : "none");
      for (const socket of [client, upstream]) {
        proxy.sockets.add(socket);
        socket.on("error", () => undefined);
        socket.on("close", () => proxy.sockets.delete(socket));
      }
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
      client.on("data", (chunk: Buffer) => toAcceptor.push(chunk));
      upstream.on("data", (chunk: Buffer) => toDialer.push(chunk));
      client.resume();
    });
    return proxy;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const started: Replica[] = [];
const proxies: MitmProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
  const replicas = started.splice(0);
  await Promise.all(replicas.map((made) => made.transport.close()));
  for (const made of replicas) expect(made.recorder.violations, `${made.id}'s event grammar`).toEqual([]);
});

/** Dialer "a" reaches acceptor "b" only through the proxy ("b" never dials "a": its id sorts after). */
async function linkThroughProxy(attack: Attack, direction: Direction): Promise<{ a: Replica; b: Replica; proxy: MitmProxy }> {
  const a = await startReplica("a");
  const b = await startReplica("b");
  started.push(a, b);
  const proxy = await MitmProxy.start(b.transport.port, attack, direction);
  proxies.push(proxy);
  a.transport.setPeers([{ replicaId: "b", address: `${host}:${proxy.port}` }]);
  b.transport.setPeers([a.address]);
  await waitForMesh([a, b]);
  return { a, b, proxy };
}

const ack = (seq: number): PeerMessage => ({ type: "ack", seq });

describe("WsTransport under a man in the middle (after an honest handshake)", () => {
  for (const direction of ["toAcceptor", "toDialer"] as const) {
    it(`passes an untouched link (${direction}): the proxy itself is faithful`, async () => {
      const { a, b } = await linkThroughProxy("none", direction);
      const [sender, receiver] = direction === "toAcceptor" ? [a, b] : [b, a];
      for (let seq = 1; seq <= 5; seq++) {
        expect(sender.transport.send(receiver.id, ack(seq))).toBe(true);
        await sleep(5);
      }
      await waitFor("all 5 arrive", () => receiver.recorder.messagesFrom(sender.id).length === 5);
      expect(receiver.recorder.messagesFrom(sender.id)).toEqual([1, 2, 3, 4, 5].map(ack));
      expect(receiver.recorder.count("down", sender.id)).toBe(0);
    });

    for (const attack of ["flip", "inject", "replay", "drop"] as const) {
      it(`${attack} (${direction}): the link closes at the first bad frame, nothing forged or repeated arrives, the link comes back`, async () => {
        const { a, b, proxy } = await linkThroughProxy(attack, direction);
        const [sender, receiver] = direction === "toAcceptor" ? [a, b] : [b, a];
        // Separate turns, so separate frames: the proxy counts frames.
        expect(sender.transport.send(receiver.id, ack(1))).toBe(true);
        await sleep(20);
        sender.transport.send(receiver.id, ack(2));
        await waitFor(
          "the receiver drops the link",
          () => receiver.recorder.count("down", sender.id) >= 1,
          5_000,
          () => `delivered: ${JSON.stringify(receiver.recorder.messagesFrom(sender.id))}\n${receiver.recorder.dump()}`,
        );
        const delivered = receiver.recorder.messagesFrom(sender.id);
        const expected = { flip: [], inject: [], drop: [], replay: [ack(1), ack(2)] }[attack];
        expect(delivered).toEqual(expected);
        expect(receiver.recorder.logged("warn", /: down, bad frame tag/)).toHaveLength(1);
        // A fresh link (the proxy leaves later connections alone) carries messages again.
        await waitFor("the sender sees the link down", () => sender.recorder.count("down", receiver.id) >= 1);
        await waitForMesh([a, b]);
        expect(proxy.connections).toBeGreaterThanOrEqual(2);
        expect(sender.transport.send(receiver.id, ack(3))).toBe(true);
        await waitFor("a message on the new link", () =>
          receiver.recorder.messagesFrom(sender.id).some((message) => message.type === "ack" && message.seq === 3),
        );
        const all = receiver.recorder.messagesFrom(sender.id);
        expect(all.some((message) => message.type === "states")).toBe(false);
        expect(all.filter((message) => message.type === "ack" && message.seq === 1).length).toBeLessThanOrEqual(1);
      });
    }
  }
});
