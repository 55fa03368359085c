// A TCP fault proxy for partition tests on one machine (127.0.0.0/8 only): one
// listening port per directed link "from -> to", forwarding to the real port of
// `to`. Give replica `from` the proxy port as its address of `to`, and every byte
// between them passes here, where it can be stopped.
//
// Controls, per link (or for both directions of a pair, or every link of a replica):
// - cut: a black hole, as an iptables DROP would make it. Open connections stay
//   open, but nothing moves in either direction (reading stops, so bytes pile up in
//   the kernel buffers and then in the sender's, like unacknowledged TCP segments);
//   a FIN or RST from one end does not reach the other either. New connections are
//   accepted and then held silent, never connected onwards, like dropped SYNs.
//   Only the replicas' own liveness checks (3 s of silence) can notice.
// - heal: traffic flows again. Held connections that survived resume where they
//   stopped, with nothing lost (TCP retransmission would deliver the same bytes);
//   one whose other end closed meanwhile is closed now; connections accepted while
//   cut (never connected onwards) are destroyed, as their dialer gave up on them.
// - reset: every open connection of the link is destroyed with an RST at once
//   (works whether the link is up or cut; the link keeps its mode).
//
// Bounded: at most connectionsPerLinkMax connections per link (the oldest goes).
// No timers: nothing happens here that a control call or a socket event did not cause.
import { type Server, type Socket, connect, createServer } from "node:net";

export interface ProxyRoute {
  /** The replica that dials (or is dialed) through this port. */
  readonly from: string;
  /** The replica whose real peer port the link forwards to. */
  readonly to: string;
  readonly targetPort: number;
}

export type LinkMode = "up" | "cut";

export interface LinkStats {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly mode: LinkMode;
  /** Connections open now (forwarding, or held by a cut). */
  readonly connectionsOpen: number;
  readonly connectionsAccepted: number;
  /** Bytes forwarded from `from`'s side to `to`'s side and back. */
  readonly bytesForward: number;
  readonly bytesBackward: number;
  readonly resets: number;
}

/** Open connections kept per link; a dialer retrying into a cut link cannot pile up more. */
const connectionsPerLinkMax = 64;
const host = "127.0.0.1";

interface Connection {
  readonly client: Socket;
  /** Null while held by a cut before it was ever connected onwards. */
  upstream: Socket | null;
  /** Per end: it sent FIN (closed its writing side cleanly). */
  readonly finished: Record<Side, boolean>;
  /** Per end: its socket closed. */
  readonly closed: Record<Side, boolean>;
}

type Side = "client" | "upstream";

class ProxyLink {
  mode: LinkMode = "up";
  readonly connections = new Set<Connection>();
  connectionsAccepted = 0;
  bytesForward = 0;
  bytesBackward = 0;
  resets = 0;

  constructor(
    readonly route: ProxyRoute,
    readonly server: Server,
  ) {}

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  accept(client: Socket): void {
    this.connectionsAccepted += 1;
    if (this.connections.size >= connectionsPerLinkMax) {
      const oldest = this.connections.values().next().value;
      if (oldest !== undefined) this.destroy(oldest, true);
    }
    const connection: Connection = {
      client,
      upstream: null,
      finished: { client: false, upstream: false },
      closed: { client: false, upstream: false },
    };
    this.connections.add(connection);
    client.setNoDelay(true);
    this.watchEnds(connection, client, "client");
    if (this.mode === "cut") {
      client.pause();
      return;
    }
    this.connectOnwards(connection);
  }

  cut(): void {
    this.mode = "cut";
    for (const { client, upstream } of this.connections) {
      client.pause();
      upstream?.pause();
    }
  }

  heal(): void {
    if (this.mode === "up") return;
    this.mode = "up";
    for (const connection of [...this.connections]) {
      const upstream = connection.upstream;
      if (upstream === null) {
        this.destroy(connection, false);
        continue;
      }
      this.deliverEnd(connection, "client");
      this.deliverEnd(connection, "upstream");
      if (!connection.client.destroyed) connection.client.resume();
      if (!upstream.destroyed) upstream.resume();
    }
  }

  reset(): void {
    for (const connection of [...this.connections]) this.destroy(connection, true);
    this.resets += 1;
  }

  stats(): LinkStats {
    return {
      from: this.route.from,
      to: this.route.to,
      port: this.port,
      mode: this.mode,
      connectionsOpen: this.connections.size,
      connectionsAccepted: this.connectionsAccepted,
      bytesForward: this.bytesForward,
      bytesBackward: this.bytesBackward,
      resets: this.resets,
    };
  }

  closeAll(): void {
    for (const connection of [...this.connections]) this.destroy(connection, false);
  }

  private connectOnwards(connection: Connection): void {
    const upstream = connect({ host, port: this.route.targetPort, allowHalfOpen: true });
    connection.upstream = upstream;
    upstream.setNoDelay(true);
    this.watchEnds(connection, upstream, "upstream");
    this.forward(connection.client, upstream, (bytes) => (this.bytesForward += bytes));
    this.forward(upstream, connection.client, (bytes) => (this.bytesBackward += bytes));
  }

  /** Copies `source` to `target`, pausing the source while the target's buffer is full. */
  private forward(source: Socket, target: Socket, count: (bytes: number) => void): void {
    source.on("data", (chunk: Buffer) => {
      count(chunk.length);
      if (!target.write(chunk)) source.pause();
    });
    target.on("drain", () => {
      if (this.mode === "up") source.resume();
    });
  }

  private watchEnds(connection: Connection, socket: Socket, side: Side): void {
    socket.on("error", () => undefined);
    socket.on("end", () => this.ended(connection, side, "finished"));
    socket.on("close", () => this.ended(connection, side, "closed"));
  }

  private ended(connection: Connection, side: Side, what: "finished" | "closed"): void {
    connection[what][side] = true;
    const upstream = connection.upstream;
    if (connection.client.destroyed && (upstream === null || upstream.destroyed)) {
      this.connections.delete(connection);
      return;
    }
    // A cut delivers no FIN or RST: the other end learns of it at heal.
    if (this.mode === "up") this.deliverEnd(connection, side);
  }

  /**
   * What `side` did reaches the other end: its FIN as end() (after the bytes still
   * queued), its abrupt close as destroy(). Safe to call again.
   */
  private deliverEnd(connection: Connection, side: Side): void {
    const other = side === "client" ? connection.upstream : connection.client;
    if (other === null || other.destroyed) return;
    if (connection.closed[side] && !connection.finished[side]) other.destroy();
    else if (connection.finished[side] && !other.writableEnded) other.end();
  }

  private destroy(connection: Connection, withReset: boolean): void {
    this.connections.delete(connection);
    for (const socket of [connection.client, connection.upstream]) {
      if (socket === null || socket.destroyed) continue;
      if (withReset) socket.resetAndDestroy();
      else socket.destroy();
    }
  }
}

export class FaultProxy {
  private constructor(private readonly links: Map<string, ProxyLink>) {}

  /** Listens on a free port of 127.0.0.1 per route. */
  static async start(routes: readonly ProxyRoute[]): Promise<FaultProxy> {
    const links = new Map<string, ProxyLink>();
    try {
      for (const route of routes) {
        const key = linkKey(route.from, route.to);
        if (links.has(key)) throw new RangeError(`link ${key} is listed twice`);
        const server = createServer({ allowHalfOpen: true, pauseOnConnect: false });
        const link = new ProxyLink(route, server);
        server.on("connection", (socket) => link.accept(socket));
        server.on("error", () => undefined);
        links.set(key, link);
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen({ host, port: 0, exclusive: true }, () => {
            server.off("error", reject);
            resolve();
          });
        });
      }
    } catch (error) {
      await new FaultProxy(links).close();
      throw error;
    }
    return new FaultProxy(links);
  }

  /** Routes for every directed pair of `replicas`, `targetPortOf` giving each one's real peer port. */
  static meshRoutes(replicas: readonly string[], targetPortOf: (replica: string) => number): ProxyRoute[] {
    return replicas.flatMap((from) => replicas.filter((to) => to !== from).map((to) => ({ from, to, targetPort: targetPortOf(to) })));
  }

  /** The port that `from` must use to reach `to`. */
  port(from: string, to: string): number {
    return this.link(from, to).port;
  }

  /** `from`'s peer list: every other replica at its proxy port. */
  peersOf(from: string): string {
    return [...this.links.values()]
      .filter((link) => link.route.from === from)
      .map((link) => `${link.route.to}=${host}:${link.port}`)
      .join(",");
  }

  /** Black-holes both directions between `a` and `b`. */
  cutBetween(a: string, b: string): void {
    this.link(a, b).cut();
    this.link(b, a).cut();
  }

  /** Cuts `replica` off from every other replica. */
  isolate(replica: string): void {
    for (const link of this.links.values()) if (link.route.from === replica || link.route.to === replica) link.cut();
  }

  healBetween(a: string, b: string): void {
    this.link(a, b).heal();
    this.link(b, a).heal();
  }

  healAll(): void {
    for (const link of this.links.values()) link.heal();
  }

  /** Destroys (RST) the open connections between `a` and `b`, both directions. */
  resetBetween(a: string, b: string): void {
    this.link(a, b).reset();
    this.link(b, a).reset();
  }

  /** Destroys (RST) the open connections of every link of `replica`. */
  resetAllOf(replica: string): void {
    for (const link of this.links.values()) if (link.route.from === replica || link.route.to === replica) link.reset();
  }

  stats(): LinkStats[] {
    return [...this.links.values()].map((link) => link.stats());
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.links.values()].map(async (link) => {
        link.closeAll();
        if (!link.server.listening) return;
        await new Promise<void>((resolve) => link.server.close(() => resolve()));
      }),
    );
  }

  private link(from: string, to: string): ProxyLink {
    const link = this.links.get(linkKey(from, to));
    if (link === undefined) throw new RangeError(`no proxy link ${linkKey(from, to)}`);
    return link;
  }
}

function linkKey(from: string, to: string): string {
  return `${from}->${to}`;
}
