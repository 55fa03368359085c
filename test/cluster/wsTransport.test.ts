// WsTransport over real sockets on free ports. A transport delivers only authenticated
// peers' valid messages, in order per link (the Transport contract replication builds
// G2/G3 on); nothing a remote sends crashes it or reaches the replica unauthenticated;
// links heal after restarts and partitions; close() leaves nothing running.
// Every Recorder also checks the event grammar per peer: (up message* down)*.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { type Socket, connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { encodeHandshake, nonceBytes, startDialer } from "../../cluster/handshake.js";
import { type PeerMessage, bytesPerFrameMax, encodeMessage } from "../../cluster/messages.js";
import { upgradeTicketHeader } from "../../cluster/upgradeTicket.js";
import { WsTransport, linkPath, reconnectDelayMs, wsTransportTimingDefaults } from "../../cluster/wsTransport.js";
import { FaultProxy } from "../harness/net/faultProxy.js";
import {
  type Replica,
  type ReplicaOptions,
  RogueAcceptor,
  type RogueLink,
  closedCode,
  connectAll,
  host,
  rogueDial,
  startReplica,
  testSecret,
  ticketHeaders,
  waitFor,
  waitForMesh,
} from "./wsTransportHarness.js";

const started: Replica[] = [];
const cleanups: Array<() => Promise<void>> = [];

async function replica(id: string, options: ReplicaOptions = {}): Promise<Replica> {
  const made = await startReplica(id, options);
  started.push(made);
  return made;
}

/** A configured peer that is never reached by dialing: rogue tests dial in under its id. */
function unreachablePeer(replicaId: string): { replicaId: string; address: string } {
  return { replicaId, address: "127.0.0.1:1" };
}

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
  const replicas = started.splice(0);
  await Promise.all(replicas.map((made) => made.transport.close()));
  for (const made of replicas) expect(made.recorder.violations, `${made.id}'s event grammar`).toEqual([]);
});

/** Messages as plain data, bytes as hex, for deep equality whatever the byte class. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return `bytes ${Buffer.from(value).toString("hex")}`;
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([key, field]) => [key, plain(field)]));
}

function messageNumber(from: string, to: string, index: number): PeerMessage {
  switch (index % 3) {
    case 0:
      return { type: "ack", seq: index };
    case 1:
      return { type: "states", seq: index, entries: [[`i:${from}-${to}`, Uint8Array.of(index % 256, 7)]] };
    default:
      return { type: "membership", sync: Buffer.alloc(index % 50, index % 256) };
  }
}

const fast = { handshakeTimeoutMs: 1_000, pingIntervalMs: 100, pongTimeoutMs: 600 } as const;

describe("WsTransport options", () => {
  const base = {
    selfId: "a",
    selfActor: "a/1",
    listenHost: host,
    listenPort: 0,
    peers: [],
    secret: testSecret,
    log: () => undefined,
  };

  it("refuses a short secret, bad ids, ports, addresses and timings", () => {
    expect(() => new WsTransport({ ...base, secret: "fifteen chars.." })).toThrow(/at least 16/);
    expect(() => new WsTransport({ ...base, selfId: "" })).toThrow(RangeError);
    expect(() => new WsTransport({ ...base, listenPort: 70000 })).toThrow(RangeError);
    expect(() => new WsTransport({ ...base, peers: [{ replicaId: "a", address: "h:1" }] })).toThrow(/this replica/);
    const twice = [
      { replicaId: "b", address: "h:1" },
      { replicaId: "b", address: "h:2" },
    ];
    expect(() => new WsTransport({ ...base, peers: twice })).toThrow(/twice/);
    for (const address of ["h", "h:0", "h:99999", "ws://h:1", "h:1/x", ""]) {
      expect(() => new WsTransport({ ...base, peers: [{ replicaId: "b", address }] }), address).toThrow(/host:port/);
    }
    expect(() => new WsTransport({ ...base, timing: { pongTimeoutMs: 500, pingIntervalMs: 1000 } })).toThrow(RangeError);
    expect(() => new WsTransport({ ...base, timing: { handshakeTimeoutMs: 0 } })).toThrow(RangeError);
    expect(new WsTransport({ ...base, peers: [{ replicaId: "b", address: "[::1]:7000" }] })).toBeInstanceOf(WsTransport);
  });

  it("has no port before start, and cannot start after close", async () => {
    const transport = new WsTransport(base);
    expect(() => transport.port).toThrow(/not listening/);
    await transport.close();
    await expect(transport.start({ peerUp() {}, peerDown() {}, message() {} })).rejects.toThrow(/closed/);
  });

  it("reconnect delays double from the minimum up to the cap, jitter taking at most half", () => {
    const timing = wsTransportTimingDefaults;
    for (const random of [0, 0.5, 0.999]) {
      expect(reconnectDelayMs(0, timing, random)).toBeGreaterThan(25);
      expect(reconnectDelayMs(0, timing, random)).toBeLessThanOrEqual(50);
      expect(reconnectDelayMs(3, timing, random)).toBeLessThanOrEqual(400);
      expect(reconnectDelayMs(1000, timing, random)).toBeGreaterThan(1000);
      expect(reconnectDelayMs(1000, timing, random)).toBeLessThanOrEqual(2000);
    }
    expect(reconnectDelayMs(5, timing, 0)).toBe(1600);
    expect(reconnectDelayMs(6, timing, 0)).toBe(2000);
  });
});

describe("WsTransport mesh", () => {
  it("three replicas form a full mesh (lower id dials) and exchange messages both ways, in order", async () => {
    const replicas = [await replica("a"), await replica("b"), await replica("c")];
    connectAll(replicas);
    await waitForMesh(replicas);
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    expect(a.recorder.lastActor("b")).toBe(b.actor);
    expect(c.recorder.lastActor("a")).toBe(a.actor);
    // a dials b and c, b dials c; each accepts from the lower ids.
    expect(a.recorder.logged("info", /^link b .*: up, dialed$/)).toHaveLength(1);
    expect(a.recorder.logged("info", /^link c .*: up, dialed$/)).toHaveLength(1);
    expect(b.recorder.logged("info", /^link a .*: up, from 127\.0\.0\.1:/)).toHaveLength(1);
    expect(b.recorder.logged("info", /^link c .*: up, dialed$/)).toHaveLength(1);
    expect(c.recorder.logged("info", /^link [ab] .*: up, from /)).toHaveLength(2);

    const count = 600;
    for (let index = 0; index < count; index++) {
      for (const from of replicas) {
        for (const to of replicas) {
          if (from !== to) expect(from.transport.send(to.id, messageNumber(from.id, to.id, index))).toBe(true);
        }
      }
    }
    for (const to of replicas) {
      for (const from of replicas) {
        if (from === to) continue;
        await waitFor(`${to.id} gets ${count} from ${from.id}`, () => to.recorder.messagesFrom(from.id).length >= count);
        const expected = Array.from({ length: count }, (_, index) => plain(messageNumber(from.id, to.id, index)));
        expect(to.recorder.messagesFrom(from.id).map(plain)).toEqual(expected);
      }
    }
    expect(a.transport.send("nobody", { type: "ack", seq: 1 })).toBe(false);
    expect(a.transport.send("a", { type: "ack", seq: 1 })).toBe(false);
    for (const made of replicas) {
      expect(made.recorder.events.filter((event) => event.kind !== "message")).toHaveLength(2);
      expect(made.recorder.logs.filter((line) => line.level !== "info")).toEqual([]);
    }
  });

  it("a joiner dials its seed address whatever the seed's id, stops dialing seeds once linked, and keeps the link as that member's", async () => {
    const [a, b] = [await replica("a"), await replica("b")];
    connectAll([a, b]);
    await waitForMesh([a, b]);
    // "z" is no configured peer of b: b takes any id, as a replica open to joins does; its first seed is down.
    const open = { acceptsPeer: () => true };
    const openB = await replica("y", open);
    const z = await replica("z", { seeds: ["127.0.0.1:1", openB.address.address] });
    await waitFor("z links to its seed", () => z.recorder.isUp("y") && openB.recorder.isUp("z"));
    expect(z.recorder.lastActor("y")).toBe(openB.actor);
    expect(z.recorder.logged("info", /^link y .*: up, dialed$/)).toHaveLength(1);
    expect(z.transport.send("y", { type: "ack", seq: 7 })).toBe(true);
    await waitFor("y gets z's message", () => openB.recorder.messagesFrom("z").length === 1);
    // A configured-only replica refuses the same joiner.
    const refusing = await replica("x", { seeds: [b.address.address] });
    await waitFor("b refuses x", () => b.recorder.logged("warn", /replica x may not link/).length > 0);
    expect(refusing.recorder.isUp("b")).toBe(false);
    // Once both know each other from the membership document, the seed's link stays y's link: no second dial, no churn.
    openB.transport.setPeers([z.address]);
    z.transport.setPeers([openB.address]);
    await sleep(300);
    expect([z.recorder.count("up", "y"), openB.recorder.count("up", "z")]).toEqual([1, 1]);
  });

  it("a joiner whose every link drops dials its seeds again (nobody else knows it yet)", async () => {
    const open = { acceptsPeer: () => true };
    const seeds = [await replica("p", open), await replica("q", open)];
    const z = await replica("z", { seeds: seeds.map((seed) => seed.address.address) });
    await waitFor("z links to one seed", () => seeds.some((seed) => z.recorder.isUp(seed.id)));
    await sleep(300);
    const [first, second] = z.recorder.isUp("p") ? seeds : [seeds[1]!, seeds[0]!];
    // While a link is up, the other seed is not dialed.
    expect(z.recorder.isUp(second!.id)).toBe(false);
    await first!.transport.close();
    await waitFor("z dials its seeds again and links to the other", () => z.recorder.isUp(second!.id));
  });

  it("refuses to send a frame over bytesPerFrameMax (the caller must split)", async () => {
    const replicas = [await replica("a"), await replica("b")];
    connectAll(replicas);
    await waitForMesh(replicas);
    const huge: PeerMessage = { type: "membership", sync: new Uint8Array(bytesPerFrameMax) };
    expect(() => replicas[0]?.transport.send("b", huge)).toThrow(/bytesPerFrameMax/);
  });

  it("a peer that restarts on the same port is reconnected with its new actor, whichever side dials", async () => {
    const replicas = [await replica("a"), await replica("b"), await replica("c")];
    connectAll(replicas);
    await waitForMesh(replicas);
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    for (const restarting of [b, a]) {
      const others = replicas.filter((made) => made.id !== restarting.id);
      await restarting.transport.close();
      for (const other of others) {
        await waitFor(`${other.id} sees ${restarting.id} down`, () => !other.recorder.isUp(restarting.id));
      }
      const again = await replica(restarting.id, { listenPort: restarting.transport.port });
      expect(again.actor).not.toBe(restarting.actor);
      again.transport.setPeers(others.map((made) => made.address));
      replicas[replicas.indexOf(restarting)] = again;
      for (const other of others) {
        await waitFor(`${other.id} sees ${restarting.id} again`, () => other.recorder.lastActor(restarting.id) === again.actor);
        await waitFor(`${other.id} sees ${restarting.id} up`, () => other.recorder.isUp(restarting.id));
      }
      await waitForMesh(replicas);
    }
    // The survivor c saw each restart as exactly one down and one up.
    expect(c.recorder.count("up", "a")).toBe(2);
    expect(c.recorder.count("down", "b")).toBe(1);
    const [a2, b2] = replicas as [Replica, Replica];
    expect(a2.transport.send("b", { type: "ack", seq: 9 })).toBe(true);
    await waitFor("b2 gets a2's ack", () => b2.recorder.messagesFrom("a").length === 1);
    expect(b2.recorder.lastActor("a")).toBe(a2.actor);
    expect(a.recorder.logged("info", /replication transport closed/)).toHaveLength(1);
  });

  it("close() sends peerDown for its links, the peers see an orderly close, and send() is then false", async () => {
    const replicas = [await replica("a"), await replica("b")];
    connectAll(replicas);
    await waitForMesh(replicas);
    const [a, b] = replicas as [Replica, Replica];
    await a.transport.close();
    expect(a.recorder.events.map((event) => event.kind)).toEqual(["up", "down"]);
    expect(a.transport.send("b", { type: "ack", seq: 1 })).toBe(false);
    await waitFor("b sees a down", () => !b.recorder.isUp("a"));
    expect(b.recorder.logged("info", /link a .*: down, closed by the peer \(code 1001/)).toHaveLength(1);
    await a.transport.close(); // idempotent
  });
});

describe("WsTransport authentication", () => {
  it("a peer with the wrong secret is refused on both sides, dialing or dialed, and never comes up", async () => {
    const a = await replica("a");
    const b = await replica("b");
    const lowBad = await replica("0", { secret: "one wrong cluster secret" }); // sorts before a: it dials a
    const highBad = await replica("z", { secret: "another wrong cluster secret" }); // a dials it
    connectAll([a, b, lowBad, highBad]);
    await waitForMesh([a, b]);
    const atLeastTwice = async (who: Replica, pattern: RegExp): Promise<void> =>
      waitFor(
        `${who.id} logs ${pattern} twice`,
        () => who.recorder.logged("warn", pattern).length >= 2,
        15_000,
        () => who.recorder.dump(),
      );
    // The upgrade ticket is made with the secret: the acceptor refuses it before any WebSocket, with a 401.
    await atLeastTwice(a, /^dial z .*: refused, the peer refused our upgrade ticket \(HTTP 401\)/);
    await atLeastTwice(highBad, /^from .*: refused, upgrade ticket with a wrong mac$/);
    await atLeastTwice(lowBad, /^dial a .*: refused, the peer refused our upgrade ticket \(HTTP 401\)/);
    await atLeastTwice(a, /^from .*: refused, upgrade ticket with a wrong mac$/);
    const upPeers = (made: Replica): string[] => made.recorder.events.flatMap((event) => (event.kind === "up" ? [event.peer] : []));
    expect(upPeers(a)).toEqual(["b"]);
    expect(upPeers(b)).toEqual(["a"]);
    for (const bad of [lowBad, highBad]) expect(bad.recorder.events).toEqual([]);
    for (const made of [a, b, lowBad, highBad]) {
      for (const line of made.recorder.logs) expect(line.message).not.toContain(testSecret);
    }
  });

  it("a dialer that forges its proof is refused by the acceptor", async () => {
    const a = await replica("a", { peers: [unreachablePeer("m")] });
    const ws = new WebSocket(`ws://${host}:${a.transport.port}${linkPath}`, { perMessageDeflate: false, headers: ticketHeaders(testSecret, "a") });
    ws.on("error", () => undefined);
    const closed = closedCode(ws);
    const received: Buffer[] = [];
    ws.on("message", (data) => received.push(data as Buffer));
    await new Promise((resolve) => ws.once("open", resolve));
    const credentials = { replicaId: "m", actor: "m/1", secret: "not the secret at all" };
    ws.send(startDialer(credentials, "a", randomBytes(nonceBytes)).hello);
    await waitFor("the challenge", () => received.length === 1);
    ws.send(encodeHandshake({ type: "proof", proof: randomBytes(32) }));
    await closed;
    expect(received).toHaveLength(1);
    expect(a.recorder.logged("warn", /^from .*: refused, replica m failed the proof/)).toHaveLength(1);
    expect(a.recorder.events).toEqual([]);
  });
});

/** Raw TCP: writes `bytes`, resolves with all it got back once the server closes. */
function rawTcp(port: number, bytes: Uint8Array | null): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket: Socket = connect({ host, port }, () => {
      if (bytes !== null) socket.write(bytes);
    });
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("error", () => undefined);
    socket.on("close", () => resolve(Buffer.concat(chunks)));
  });
}

/** A plain ws client: sends `frames` once open, resolves with what it received once closed. */
interface PlainWsResult {
  readonly received: number;
  readonly opened: boolean;
}

function plainWs(port: number, path: string, frames: ReadonlyArray<string | Uint8Array>, headers: Record<string, string> = {}): Promise<PlainWsResult> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://${host}:${port}${path}`, { perMessageDeflate: false, handshakeTimeout: 5_000, headers });
    let received = 0;
    let opened = false;
    ws.on("open", () => {
      opened = true;
      for (const frame of frames) ws.send(frame);
    });
    ws.on("message", () => (received += 1));
    ws.on("error", () => undefined);
    ws.on("close", () => resolve({ received, opened }));
  });
}

describe("WsTransport and strangers", () => {
  it("a stranger on the peer port gets nothing and is closed; the real peers keep working", async () => {
    const a = await replica("a", { timing: { handshakeTimeoutMs: 500 }, limits: { refusalLinesPerWindowMax: 100 } });
    const b = await replica("b");
    connectAll([a, b]);
    await waitForMesh([a, b]);
    const port = a.transport.port;
    const message = encodeMessage({ type: "ack", seq: 1 });
    // Without a good upgrade ticket there is no WebSocket at all.
    const strangers = await Promise.all([
      plainWs(port, linkPath, []),
      plainWs(port, linkPath, ["hello"], ticketHeaders(testSecret, "b")),
      plainWs(port, linkPath, [message], { [upgradeTicketHeader]: "v1.1.AAAA.BBBB" }),
      plainWs(port, "/", [], ticketHeaders(testSecret, "a")),
    ]);
    expect(strangers).toEqual(Array(4).fill({ received: 0, opened: false }));
    // Past the ticket (made with the secret here), the handshake still lets nothing through.
    const attempts = await Promise.all([
      plainWs(port, linkPath, [], ticketHeaders(testSecret, "a")),
      plainWs(port, linkPath, ["hello"], ticketHeaders(testSecret, "a")),
      plainWs(port, linkPath, [Buffer.alloc(64, 0xc1)], ticketHeaders(testSecret, "a")),
      plainWs(port, linkPath, [message, message], ticketHeaders(testSecret, "a")),
    ]);
    expect(attempts).toEqual(Array(4).fill({ received: 0, opened: true }));
    const raw = await Promise.all([
      rawTcp(port, Buffer.alloc(300, 0xff)),
      rawTcp(port, Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")),
      rawTcp(port, Buffer.from(`GET ${linkPath} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`)),
      rawTcp(port, null),
    ]);
    expect(raw.map((bytes) => bytes.toString("latin1").split("\r\n")[0])).toEqual(["", "", "HTTP/1.1 401 Unauthorized", ""]);
    const reasons = a.recorder.logs
      .filter((line) => line.level === "warn" && /^from .*: refused, /.test(line.message))
      .map((line) => line.message.replace(/^from [^ ]+: refused, /, ""));
    const expected = [
      /^no upgrade ticket$/,
      /^upgrade ticket with a wrong mac$/,
      /^malformed upgrade ticket$/,
      /^wrong path "\/"$/,
      /^not authenticated within 500 ms$/,
      /^text frame during the handshake$/,
      /^handshake frame is not msgpack/,
      // A peer message (its first field 2 is the protocol version) is not a handshake frame.
      /^unknown handshake frame type or wrong field count$/,
      /^bad HTTP: /,
      /^plain HTTP request$/,
      /^no upgrade ticket$/,
      /^no valid upgrade within 500 ms$/,
    ];
    expect(reasons, reasons.join("\n")).toHaveLength(expected.length);
    for (const pattern of expected) {
      const index = reasons.findIndex((reason) => pattern.test(reason));
      expect(index, `${pattern} in\n${reasons.join("\n")}`).toBeGreaterThanOrEqual(0);
      reasons.splice(index, 1);
    }
    expect(a.recorder.events.filter((event) => event.kind !== "message")).toEqual([{ kind: "up", peer: "b", actor: b.actor }]);
    expect(a.transport.send("b", { type: "ack", seq: 5 })).toBe(true);
    expect(b.transport.send("a", { type: "ack", seq: 6 })).toBe(true);
    await waitFor("a and b still talk", () => a.recorder.messagesFrom("b").length === 1 && b.recorder.messagesFrom("a").length === 1);
  });

  it("beyond connectionsUnauthenticatedMax, new connections are dropped at once", async () => {
    const a = await replica("a", { limits: { connectionsUnauthenticatedMax: 2 } });
    const hanging = [connect({ host, port: a.transport.port }), connect({ host, port: a.transport.port })];
    cleanups.push(async () => {
      for (const socket of hanging) socket.destroy();
    });
    for (const socket of hanging) socket.on("error", () => undefined);
    await Promise.all(hanging.map((socket) => new Promise((resolve) => socket.once("connect", resolve))));
    // The kernel hands connections over in order, so a has both before the third.
    const third = await rawTcp(a.transport.port, null);
    expect(third.length).toBe(0);
    expect(a.recorder.logged("warn", /too many unauthenticated connections/)).toHaveLength(1);
  });
});

describe("WsTransport and misbehaving authenticated peers", () => {
  it("a hello naming a bad id, an id that is not a configured peer, or another replica's actor is refused before any challenge", async () => {
    const a = await replica("a", { peers: [unreachablePeer("m")] });
    const impostors = [
      { replicaId: "m.1", actor: "m.1/1", reason: /refused, an id must match/ },
      { replicaId: "stranger", actor: "stranger/1", reason: /refused, replica stranger may not link \(not a peer, or retired\)/ },
      { replicaId: "m", actor: "n/1", reason: /refused, an actor must be m\/<incarnation>/ },
    ];
    for (const { replicaId, actor, reason } of impostors) {
      await expect(rogueDial(a.transport.port, "a", { replicaId, actor, secret: testSecret })).rejects.toThrow(/closed during the handshake/);
      expect(a.recorder.logged("warn", reason)).toHaveLength(1);
    }
    expect(a.recorder.events).toEqual([]);
  });

  it("an event handler that throws on a peer's message closes that link only; the other links go on", async () => {
    const a = await replica("a", { peers: [unreachablePeer("r"), unreachablePeer("s")] });
    const record = a.recorder.message.bind(a.recorder);
    a.recorder.message = (peer: string, message: PeerMessage) => {
      if (message.type === "ack" && message.seq === 666) throw new RangeError("a bug the peer's input reached");
      record(peer, message);
    };
    const r = await rogueDial(a.transport.port, "a", { replicaId: "r", actor: "r/1", secret: testSecret });
    const s = await rogueDial(a.transport.port, "a", { replicaId: "s", actor: "s/1", secret: testSecret });
    cleanups.push(async () => {
      r.terminate();
      s.terminate();
    });
    await waitFor("a sees r and s", () => a.recorder.isUp("r") && a.recorder.isUp("s"));
    const rClosed = closedCode(r);
    r.send(encodeMessage({ type: "ack", seq: 666 }));
    expect(await rClosed).toBe(1011);
    await waitFor("a drops r", () => !a.recorder.isUp("r"));
    expect(a.recorder.logged("error", /^link r \(r\/1\): down, a handler threw: RangeError: a bug the peer's input reached$/)).toHaveLength(1);
    s.send(encodeMessage({ type: "ack", seq: 7 }));
    await waitFor("s's message still arrives", () => a.recorder.messagesFrom("s").length === 1);
    expect(a.recorder.isUp("s")).toBe(true);
  });

  it("garbage, truncated, oversize and text frames from a dialed peer close the link; the transport reconnects cleanly", async () => {
    const a = await replica("a");
    const credentials = { replicaId: "m", actor: "m/1", secret: testSecret };
    const valid = encodeMessage({ type: "states", seq: 3, entries: [["i:7", Uint8Array.of(1, 2, 3)]] });
    const misdeeds: Array<(link: RogueLink) => void> = [
      (link) => link.send(randomBytes(100)),
      (link) => link.send(valid.subarray(0, valid.length - 2)),
      (link) => link.send(new Uint8Array(bytesPerFrameMax + 1)),
      (link) => link.send("text is not a message"),
      (link) => link.send(encodeHandshake({ type: "welcome" })),
      (link) => link.sendUnsealed(encodeMessage({ type: "ack", seq: 41 })),
      (link) => link.send(encodeMessage({ type: "ack", seq: 42 })),
    ];
    const rogue = await RogueAcceptor.start(credentials, (link, index) => misdeeds[index]?.(link));
    cleanups.push(() => rogue.close());
    a.transport.setPeers([{ replicaId: "m", address: rogue.address }]);
    await waitFor(
      "the good message after the misdeeds",
      () => a.recorder.messagesFrom("m").length === 1,
      15_000,
      () => a.recorder.dump(),
    );
    expect(a.recorder.messagesFrom("m")).toEqual([{ type: "ack", seq: 42 }]);
    expect(a.recorder.count("up", "m")).toBe(misdeeds.length);
    expect(a.recorder.count("down", "m")).toBe(misdeeds.length - 1);
    const downs = a.recorder.logs.filter((line) => /^link m .*: down, /.test(line.message));
    expect(downs.map((line) => line.level)).toEqual(["warn", "warn", "warn", "warn", "warn", "warn"]);
    expect(downs[0]?.message).toMatch(/down, protocol error: frame is not msgpack/);
    expect(downs[1]?.message).toMatch(/down, protocol error: frame is not msgpack/);
    expect(downs[2]?.message).toMatch(/down, Max payload size exceeded$/);
    expect(downs[3]?.message).toMatch(/down, protocol error: text frame$/);
    expect(downs[4]?.message).toMatch(/down, protocol error: frame must be an array/);
    expect(downs[5]?.message).toMatch(/down, bad frame tag/);
    expect(a.recorder.logs.filter((line) => line.level !== "info")).toHaveLength(6);
    expect(a.transport.send("m", { type: "ack", seq: 1 })).toBe(true);
  });

  it("a dialing peer that sends garbage loses its link and can come back", async () => {
    const a = await replica("a", { peers: [unreachablePeer("r")] });
    const credentials = { replicaId: "r", actor: "r/1", secret: testSecret };
    const first = await rogueDial(a.transport.port, "a", credentials);
    await waitFor("a sees r", () => a.recorder.isUp("r"));
    const firstClosed = closedCode(first);
    first.send(Buffer.from([0x93, 0x01]));
    expect(await firstClosed).toBe(1002);
    await waitFor("a drops r", () => !a.recorder.isUp("r"));
    const second = await rogueDial(a.transport.port, "a", credentials);
    cleanups.push(async () => void second.terminate());
    second.send(encodeMessage({ type: "syncRequest", cursor: 5, mergedOnly: false }));
    await waitFor("a gets r's request", () => a.recorder.messagesFrom("r").length === 1);
    expect(a.recorder.messagesFrom("r")).toEqual([{ type: "syncRequest", cursor: 5, mergedOnly: false }]);
    expect(a.recorder.logged("warn", /^link r .*: down, protocol error/)).toHaveLength(1);
  });

  it("of two links to one peer, the newer wins and the older is closed", async () => {
    const a = await replica("a", { peers: [unreachablePeer("r")] });
    const credentials = { replicaId: "r", actor: "r/1", secret: testSecret };
    const older = await rogueDial(a.transport.port, "a", credentials);
    const olderClosed = closedCode(older);
    await waitFor("a sees r", () => a.recorder.isUp("r"));
    const newer = await rogueDial(a.transport.port, "a", { ...credentials, actor: "r/2" });
    cleanups.push(async () => void newer.terminate());
    expect(await olderClosed).toBe(1000);
    expect(a.recorder.events.map((event) => [event.kind, event.kind === "up" ? event.actor : ""])).toEqual([
      ["up", "r/1"],
      ["down", ""],
      ["up", "r/2"],
    ]);
    expect(a.transport.send("r", { type: "ack", seq: 77 })).toBe(true);
    await waitFor("the newer link gets the ack", () => newer.received.length === 1);
    expect(Buffer.from(newer.received[0] ?? []).equals(Buffer.from(encodeMessage({ type: "ack", seq: 77 })))).toBe(true);
    expect(newer.badFrames).toBe(0);
  });
});

describe("WsTransport liveness and bounds", () => {
  it("a black-holed link (no FIN, no RST) is detected on both sides, and comes back when the partition heals", async () => {
    const a = await replica("a", { timing: fast });
    const b = await replica("b", { timing: fast });
    const proxy = await FaultProxy.start([{ from: "a", to: "b", targetPort: b.transport.port }]);
    cleanups.push(() => proxy.close());
    a.transport.setPeers([{ replicaId: "b", address: `${host}:${proxy.port("a", "b")}` }]);
    b.transport.setPeers([a.address]);
    await waitForMesh([a, b]);
    proxy.isolate("b");
    await waitFor("both sides see the link down", () => !a.recorder.isUp("b") && !b.recorder.isUp("a"));
    expect(a.recorder.logged("warn", /^link b .*: down, silent for \d+ ms/)).toHaveLength(1);
    expect(b.recorder.logged("warn", /^link a .*: down, silent for \d+ ms/)).toHaveLength(1);
    // Its TCP connect succeeds (into the proxy), the WebSocket upgrade never does: unreachable, logged as info.
    const redialFailed = /^dial b .*: refused, (not authenticated within|Opening handshake has timed out)/;
    await waitFor("a's redial times out in the partition", () => a.recorder.logged("info", redialFailed).length >= 1);
    proxy.healAll();
    await waitForMesh([a, b]);
    expect(a.transport.send("b", { type: "ack", seq: 1 })).toBe(true);
    await waitFor("b gets the ack", () => b.recorder.messagesFrom("a").length === 1);
  });

  it("a link whose send buffer passes the limit is terminated, and reconnects", async () => {
    const limits = { bytesBufferedPerLinkMax: 1024 * 1024 };
    const a = await replica("a", { limits });
    const b = await replica("b");
    connectAll([a, b]);
    await waitForMesh([a, b]);
    // b runs in this process, so it reads nothing while this loop runs: the buffer must fill.
    const chunk: PeerMessage = { type: "membership", sync: randomBytes(256 * 1024) };
    let sent = 0;
    while (sent < 400 && a.transport.send("b", chunk)) sent += 1;
    expect(sent).toBeGreaterThan(4);
    expect(sent).toBeLessThan(400);
    expect(a.transport.send("b", chunk)).toBe(false);
    expect(a.recorder.isUp("b")).toBe(true); // peerDown comes from the close event, not from inside send()
    await waitFor("a drops b", () => !a.recorder.isUp("b"));
    expect(a.recorder.logged("warn", /^link b .*: down, send buffer over 1048576 bytes/)).toHaveLength(1);
    await waitForMesh([a, b]);
    expect(b.recorder.messagesFrom("a").length).toBeLessThanOrEqual(sent);
  });
});

describe("WsTransport close", () => {
  const scriptPath = fileURLToPath(new URL("../../dist/test/cluster/wsTransportExitScript.js", import.meta.url));
  const sources = ["../../cluster/wsTransport.ts", "../../cluster/handshake.ts", "./wsTransportHarness.ts", "./wsTransportExitScript.ts"];
  const sourcePaths = sources.map((relative) => fileURLToPath(new URL(relative, import.meta.url)));

  it("leaves no timer or socket behind: a process using it exits on its own", async () => {
    const newestSourceMs = Math.max(...sourcePaths.map((path) => statSync(path).mtimeMs));
    if (!existsSync(scriptPath) || statSync(scriptPath).mtimeMs < newestSourceMs) {
      throw new Error(`${scriptPath} is missing or older than the source: run \`npx tsc -p .\` first`);
    }
    const child = spawn(process.execPath, [scriptPath], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    cleanups.push(async () => void child.kill("SIGKILL"));
    await waitFor(
      "the script closes its transports",
      () => output.includes("closed\n"),
      20_000,
      () => output,
    );
    const closedAt = Date.now();
    await waitFor(
      "the process exits by itself",
      () => child.exitCode !== null,
      5_000,
      () => output,
    );
    expect(await exited).toBe(0);
    expect(Date.now() - closedAt).toBeLessThan(5_000);
  });

  it("close() in this process returns the handles it used", async () => {
    const counted = ["TCPServerWrap", "TCPSocketWrap", "Timeout"];
    const handles = (): number => process.getActiveResourcesInfo().filter((name) => counted.includes(name)).length;
    const before = handles();
    const replicas = [await replica("a"), await replica("b"), await replica("c")];
    connectAll(replicas);
    await waitForMesh(replicas);
    expect(handles()).toBeGreaterThan(before);
    await Promise.all(replicas.map((made) => made.transport.close()));
    await waitFor(
      "handles released",
      () => handles() <= before,
      5_000,
      () => process.getActiveResourcesInfo().join(","),
    );
  });
});
