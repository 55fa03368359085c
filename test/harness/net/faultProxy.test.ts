// The TCP fault proxy of the chaos runs (faultProxy.ts), against a plain
// TCP echo server: it forwards both ways; a cut is a black hole (the connection
// stays open, nothing arrives, not even a close) that a heal undoes with nothing
// lost; connections made during a cut never reach the server; reset is an RST.
import { type Server, type Socket, connect, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { FaultProxy } from "./faultProxy.js";

const servers: Server[] = [];
const proxies: FaultProxy[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** An echo server that counts the connections it accepted. */
async function echoServer(): Promise<{ port: number; accepted: () => number; peers: Socket[] }> {
  const peers: Socket[] = [];
  const server = createServer((socket) => {
    peers.push(socket);
    socket.on("error", () => undefined);
    socket.on("data", (chunk) => socket.write(chunk));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
  return { port: (server.address() as { port: number }).port, accepted: () => peers.length, peers };
}

async function proxyTo(port: number): Promise<FaultProxy> {
  const proxy = await FaultProxy.start([
    { from: "a", to: "b", targetPort: port },
    { from: "b", to: "a", targetPort: port },
  ]);
  proxies.push(proxy);
  return proxy;
}

/** A client socket that collects what it receives and remembers whether it was closed. */
async function client(port: number): Promise<{ socket: Socket; received: () => string; closed: () => string | null }> {
  const socket = connect({ host: "127.0.0.1", port });
  sockets.push(socket);
  let received = "";
  let closed: string | null = null;
  socket.on("data", (chunk) => (received += chunk.toString("utf8")));
  socket.on("error", (error: NodeJS.ErrnoException) => (closed = error.code ?? error.message));
  socket.on("close", () => (closed ??= "closed"));
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  return { socket, received: () => received, closed: () => closed };
}

async function until(condition: () => boolean, waitMs = 2_000): Promise<void> {
  const deadline = Date.now() + waitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(10);
  }
}

describe("FaultProxy", () => {
  it("forwards both ways and gives each directed pair its own port", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo.port);
    expect(proxy.port("a", "b")).not.toBe(proxy.port("b", "a"));
    expect(proxy.peersOf("a")).toBe(`b=127.0.0.1:${proxy.port("a", "b")}`);
    const { socket, received } = await client(proxy.port("a", "b"));
    socket.write("hello");
    await until(() => received() === "hello");
    const stats = proxy.stats().find((link) => link.from === "a")!;
    expect(stats).toMatchObject({ mode: "up", connectionsOpen: 1, connectionsAccepted: 1, bytesForward: 5, bytesBackward: 5 });
  });

  it("cut: the connection stays open and silent, a close does not pass; heal delivers what was held", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo.port);
    const { socket, received, closed } = await client(proxy.port("a", "b"));
    socket.write("one,");
    await until(() => received() === "one,");
    proxy.cutBetween("a", "b");
    socket.write("two,");
    await sleep(300);
    expect(received()).toBe("one,");
    expect(closed()).toBeNull();
    // The server side closing is not seen through a cut either.
    echo.peers[0]!.end();
    await sleep(200);
    expect(closed()).toBeNull();
    proxy.healAll();
    await until(() => closed() !== null);
    expect(received()).toBe("one,");
  });

  it("cut then heal with both ends alive: the held bytes arrive in order", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo.port);
    const { socket, received } = await client(proxy.port("a", "b"));
    proxy.cutBetween("a", "b");
    for (let index = 0; index < 50; index++) socket.write(`${index},`);
    await sleep(200);
    expect(received()).toBe("");
    proxy.healBetween("a", "b");
    const expected = Array.from({ length: 50 }, (_, index) => `${index},`).join("");
    await until(() => received() === expected);
  });

  it("a connection made during a cut never reaches the server and is dropped at heal", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo.port);
    proxy.isolate("a");
    const { socket, received, closed } = await client(proxy.port("a", "b"));
    socket.write("lost?");
    await sleep(300);
    expect(echo.accepted()).toBe(0);
    expect(received()).toBe("");
    expect(closed()).toBeNull();
    proxy.healAll();
    await until(() => closed() !== null);
    expect(echo.accepted()).toBe(0);
    // After the heal, new connections go through again.
    const again = await client(proxy.port("a", "b"));
    again.socket.write("back");
    await until(() => again.received() === "back");
  });

  it("reset destroys the open connections with an RST, whatever the mode", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo.port);
    const first = await client(proxy.port("a", "b"));
    first.socket.write("x");
    await until(() => first.received() === "x");
    proxy.resetBetween("a", "b");
    await until(() => first.closed() !== null);
    expect(first.closed()).toBe("ECONNRESET");
    proxy.cutBetween("a", "b");
    const second = await client(proxy.port("a", "b"));
    proxy.resetAllOf("b");
    await until(() => second.closed() !== null);
    expect(second.closed()).toBe("ECONNRESET");
    expect(proxy.stats().find((link) => link.from === "a")!.resets).toBe(2);
  });

  it("a refused upstream closes the client's connection", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo.port);
    await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
    const { closed } = await client(proxy.port("a", "b"));
    await until(() => closed() !== null);
  });
});
