// The real Transport: a full mesh of WebSocket links (ws) between replicas.
//
// - A replica dials every configured peer whose id sorts after its own (plain JS string
//   order) and accepts authenticated links from the peers `acceptsPeer` names (by
//   default the configured ones; a hello naming any other replica id is refused). A
//   replica that joins also dials its seed addresses, whose ids it does not know yet,
//   whenever it has no link up. If two links to one peer ever exist, the newer wins
//   and the older is closed. Dials retry forever with exponential backoff plus
//   jitter, until close().
// - Before any WebSocket work, an accepted connection must send, within upgradeTimeoutMs,
//   an upgrade request on linkPath carrying a fresh upgrade ticket for this replica
//   (upgradeTicket.ts: an HMAC of the secret, single use). Until it is authenticated it
//   holds one of connectionsUnauthenticatedMax slots, at most
//   connectionsUnauthenticatedPerAddressMax of them per address (per /64 for IPv6), and
//   may send at most bytesUnauthenticatedPerConnectionMax bytes after the upgrade request.
// - A link is usable only after the mutual HMAC handshake (handshake.ts), which must
//   finish within handshakeTimeoutMs of the TCP connection. Anything else is refused.
//   Refusals of accepted connections are logged through a cap (RateLimitedLog).
// - Afterwards every frame carries an HMAC tag under the link's session key for its
//   direction and a sequence number both ends count (frameAuth.ts). A frame whose tag
//   fails (altered, forged, replayed, reordered, one missing before it) closes the link
//   before it is decoded. Every frame must be a binary frame that decodeFrame accepts;
//   anything else (text, bad msgpack, oversize: ws enforces maxPayload) closes that
//   link. A remote can make us close its link, never throw out of here: an event
//   handler that throws on a peer's message (or its peerUp) closes that link (logged as
//   an error, code 1011), and the other links go on.
// - Liveness: a ping every pingIntervalMs; a link silent for pongTimeoutMs is
//   terminated (a DROP partition sends no RST). A send buffer over
//   bytesBufferedPerLinkMax also terminates the link: the peer catches up by
//   anti-entropy when it reconnects.
// - Events: peerUp / message* / peerDown per link, in that order, once each. peerDown
//   of a replaced link comes before peerUp of its replacement. send() never calls
//   back into the events synchronously.
import { randomBytes } from "node:crypto";
import { type IncomingMessage, type Server, type ServerOptions as HttpServerOptions, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import WebSocket, { type ClientOptions, type RawData, type ServerOptions, WebSocketServer } from "ws";
import type { Actor } from "../crdt/boundedCounter.js";
import { idLengthMax } from "../crdt/codec.js";
import { FrameOpener, FrameSealer, tagBytes } from "./frameAuth.js";
import {
  type Credentials,
  type HandshakeState,
  type SessionKeys,
  handshakeStep,
  nonceBytes,
  secretLengthMin,
  startAcceptor,
  startDialer,
} from "./handshake.js";
import { type PeerMessage, ProtocolError, bytesPerFrameMax, decodeFrame, encodeMessage } from "./messages.js";
import { RateLimitedLog } from "./rateLimitedLog.js";
import type { PeerAddress, PeerId, Transport, TransportEvents } from "./transport.js";
import { UpgradeTicketChecker, seedTicketTarget, upgradeClockSkewMsMax, upgradeNonceBytes, upgradeTicket, upgradeTicketHeader } from "./upgradeTicket.js";

export type LogLevel = "info" | "warn" | "error";
export type LogFunction = (level: LogLevel, message: string) => void;

export interface WsTransportTiming {
  /** From TCP connection to authenticated link, both roles. */
  readonly handshakeTimeoutMs: number;
  /** Acceptors: from TCP connection to a valid upgrade request (at most handshakeTimeoutMs). */
  readonly upgradeTimeoutMs: number;
  readonly pingIntervalMs: number;
  /** A link that has sent nothing (pong, ping or message) for this long is terminated. */
  readonly pongTimeoutMs: number;
  /** First reconnect delay; doubles per failed dial up to reconnectDelayMsMax, then jitter takes up to half off. */
  readonly reconnectDelayMsMin: number;
  readonly reconnectDelayMsMax: number;
  /** How long a closing link waits for the peer's close frame before its socket is destroyed. */
  readonly closeTimeoutMs: number;
  /** The window of limits.refusalLinesPerWindowMax. */
  readonly refusalLogWindowMs: number;
}

export interface WsTransportLimits {
  /** A link whose ws.bufferedAmount is above this when sending is terminated. */
  readonly bytesBufferedPerLinkMax: number;
  /** Accepted TCP connections not yet authenticated; more are dropped at once. */
  readonly connectionsUnauthenticatedMax: number;
  /** Of those, the most from one address (IPv4) or /64 (IPv6): one host cannot take them all. */
  readonly connectionsUnauthenticatedPerAddressMax: number;
  /** Bytes an accepted connection may send after its upgrade request and before it is authenticated. */
  readonly bytesUnauthenticatedPerConnectionMax: number;
  /** Refusal lines (and bad-tag link drops) logged per timing.refusalLogWindowMs and kind; the rest are counted. */
  readonly refusalLinesPerWindowMax: number;
}

export const wsTransportTimingDefaults: WsTransportTiming = {
  handshakeTimeoutMs: 2_000,
  upgradeTimeoutMs: 1_000,
  pingIntervalMs: 1_000,
  pongTimeoutMs: 3_000,
  reconnectDelayMsMin: 50,
  reconnectDelayMsMax: 2_000,
  closeTimeoutMs: 1_000,
  refusalLogWindowMs: 10_000,
};

export const wsTransportLimitsDefaults: WsTransportLimits = {
  bytesBufferedPerLinkMax: 64 * 1024 * 1024,
  // Each holds at most bytesUnauthenticatedPerConnectionMax plus one socket read (64 KiB).
  connectionsUnauthenticatedMax: 32,
  connectionsUnauthenticatedPerAddressMax: 4,
  // The handshake frames of a dialer are under 600 bytes with ws framing.
  bytesUnauthenticatedPerConnectionMax: 4 * 1024,
  refusalLinesPerWindowMax: 10,
};

export interface WsTransportOptions {
  /** This replica's configured id. */
  readonly selfId: PeerId;
  /** This replica's current incarnation, announced to peers. */
  readonly selfActor: Actor;
  readonly listenHost: string;
  /** 0 picks a free port; read it from `port` after start(). */
  readonly listenPort: number;
  /** The other replicas; may be empty and given later with setPeers(). */
  readonly peers: readonly PeerAddress[];
  /** host:port of members to dial while no link is up, whatever their id (a join). */
  readonly seeds?: readonly string[];
  /** Which replica ids may link to us; default: the peers of the last setPeers(). */
  readonly acceptsPeer?: (replicaId: PeerId) => boolean;
  /** The cluster secret, at least secretLengthMin characters. Never sent. */
  readonly secret: string;
  readonly log: LogFunction;
  readonly timing?: Partial<WsTransportTiming>;
  readonly limits?: Partial<WsTransportLimits>;
}

/** The request path of the replication WebSocket. */
export const linkPath = "/cluster/v1";
/**
 * Messages queued in one turn go out as one frame up to this size; bigger ones go
 * alone. Small frames keep each receive step short, so pings still get answered.
 */
const outboxBytesMax = 256 * 1024;
/** Largest exponent of the reconnect backoff (2^20 times the minimum is past any sane cap). */
const backoffExponentMax = 20;
/** The most fragments of one message we accept; our sender never fragments. */
const fragmentsPerMessageMax = 1024;
/** ws's own default, stated: receive chunks buffered before a message is complete. */
const chunksBufferedMax = 256 * 1024;
/** ws's own default, stated: pongs queued behind a full send buffer before ws gives up. */
const autoPongsPendingMax = 60;
const unauthorizedAnswer = "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
const addressPattern = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/;

/** Dial targets of seed addresses are keyed by this prefix and the address: never a replica id. */
const seedKeyPrefix = "seed ";

function isSeedKey(key: string): boolean {
  return key.startsWith(seedKeyPrefix);
}

/** Reconnect delay after `attempt` failed dials: min·2^attempt capped at max, minus up to half by `random01`. */
export function reconnectDelayMs(attempt: number, timing: WsTransportTiming, random01: number): number {
  const exponent = Math.min(attempt, backoffExponentMax);
  const ceilingMs = Math.min(timing.reconnectDelayMsMax, timing.reconnectDelayMsMin * 2 ** exponent);
  return ceilingMs * (1 - random01 / 2);
}

interface DialTarget {
  readonly address: string;
  /** Failed dials since the last authenticated link. */
  attempt: number;
  timer: NodeJS.Timeout | null;
  /** The dial in progress (not yet authenticated). */
  ws: WebSocket | null;
}

/** One WebSocket, from connect to close: handshake, then (maybe) an up link. */
interface Connection {
  readonly ws: WebSocket;
  where: string;
  /** Null once authenticated or refused. */
  handshake: HandshakeState | null;
  /** The dialer's open event came (acceptors are open from the start). */
  opened: boolean;
  /** Set while this is the current link of `peer`. */
  up: boolean;
  peer: PeerId | null;
  lastHeardAtMs: number;
  /** Why we terminated it, for the peerDown log line. */
  dropReason: string | null;
  /** The peer we dialed, null for an accepted connection. */
  readonly dialPeer: PeerId | null;
  /** Dialer only: the handshake deadline (acceptors keep theirs in `unauthenticated`). */
  deadline: NodeJS.Timeout | null;
  /** Acceptor only: the TCP socket, key of `unauthenticated`. */
  readonly rawSocket: Duplex | null;
  /** Encoded messages waiting for this turn's frame, and their total size. */
  outbox: Uint8Array[];
  outboxBytes: number;
  /** Set once authenticated: tags the frames we send, checks those we receive. */
  sealer: FrameSealer | null;
  opener: FrameOpener | null;
}

interface Unauthenticated {
  readonly where: string;
  /** The address (or IPv6 /64) its per-address limit counts under. */
  readonly addressKey: string;
  readonly connectedAtMs: number;
  deadline: NodeJS.Timeout;
  bytesReceived: number;
  /** The listener that counts bytesReceived, once upgraded. */
  countBytes: ((chunk: Buffer) => void) | null;
  connection: Connection | null;
}

type Phase = "new" | "running" | "closing" | "closed";

/** What the refusal cap counts apart: a flood of one kind hides no other. */
type RefusalKind = "connection" | "http" | "ticket" | "handshake" | "link";

export class WsTransport implements Transport {
  private readonly credentials: Credentials;
  private readonly listenHost: string;
  private readonly listenPort: number;
  private readonly timing: WsTransportTiming;
  private readonly limits: WsTransportLimits;
  private readonly log: LogFunction;
  private readonly wsServer: WebSocketServer;
  private phase: Phase = "new";
  private events: TransportEvents | null = null;
  private httpServer: Server | null = null;
  private boundPort: number | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  private listening: Promise<void> | null = null;
  private socketsGone: (() => void) | null = null;
  private readonly dialTargets = new Map<PeerId, DialTarget>();
  /** Every configured peer: the replica ids whose hello is answered by default. */
  private configuredPeers = new Set<PeerId>();
  private readonly acceptsPeer: (replicaId: PeerId) => boolean;
  private readonly links = new Map<PeerId, Connection>();
  private lastEncoded: { message: PeerMessage | null; bytes: Uint8Array } = { message: null, bytes: new Uint8Array() };
  /** Every WebSocket not yet closed, either role. */
  private readonly sockets = new Set<WebSocket>();
  /** Accepted TCP sockets not yet authenticated, with their deadline. */
  private readonly unauthenticated = new Map<Duplex, Unauthenticated>();
  /** How many of `unauthenticated` each address key holds. */
  private readonly unauthenticatedPerAddress = new Map<string, number>();
  private readonly tickets: UpgradeTicketChecker;
  /** Lines a remote can provoke at will go through here. */
  private readonly refusals: RateLimitedLog;

  constructor(options: WsTransportOptions) {
    if (options.secret.length < secretLengthMin) {
      throw new RangeError(`the cluster secret must have at least ${secretLengthMin} characters`);
    }
    for (const [what, id] of [
      ["selfId", options.selfId],
      ["selfActor", options.selfActor],
    ] as const) {
      if (id.length === 0 || id.length > idLengthMax) throw new RangeError(`${what} must have 1..${idLengthMax} characters`);
    }
    if (!Number.isInteger(options.listenPort) || options.listenPort < 0 || options.listenPort > 65535) {
      throw new RangeError(`listenPort must be an integer in 0..65535, got ${options.listenPort}`);
    }
    this.credentials = { replicaId: options.selfId, actor: options.selfActor, secret: options.secret };
    this.listenHost = options.listenHost;
    this.listenPort = options.listenPort;
    this.timing = { ...wsTransportTimingDefaults, ...options.timing };
    this.limits = { ...wsTransportLimitsDefaults, ...options.limits };
    assertTiming(this.timing);
    assertLimits(this.limits);
    this.log = options.log;
    this.refusals = new RateLimitedLog(options.log, this.limits.refusalLinesPerWindowMax, this.timing.refusalLogWindowMs);
    this.tickets = new UpgradeTicketChecker(options.secret, options.selfId);
    this.wsServer = new WebSocketServer(serverOptions(this.timing));
    this.wsServer.on("wsClientError", (error, socket) => this.refuseTcp(socket, "http", `bad WebSocket upgrade: ${error.message}`));
    this.acceptsPeer = options.acceptsPeer ?? ((replicaId) => this.configuredPeers.has(replicaId));
    this.setPeers(options.peers);
    for (const address of options.seeds ?? []) {
      assertAddress(address);
      this.dialTargets.set(`${seedKeyPrefix}${address}`, { address, attempt: 0, timer: null, ws: null });
    }
  }

  /** The bound listen port (useful with listenPort 0); throws before start(). */
  get port(): number {
    if (this.boundPort === null) throw new Error("the transport is not listening yet");
    return this.boundPort;
  }

  /**
   * Replaces the peer list, before or after start(). Peers whose id sorts after ours
   * are dialed (at once if running); a dial to a dropped or moved peer stops. Links
   * already up stay up: a moved peer's old link dies by itself or is replaced.
   */
  setPeers(peers: readonly PeerAddress[]): void {
    const wanted = new Map<PeerId, string>();
    const configured = new Set<PeerId>();
    for (const { replicaId, address } of peers) {
      if (replicaId === this.credentials.replicaId) throw new RangeError(`the peer list contains this replica (${replicaId})`);
      if (replicaId.length === 0 || replicaId.length > idLengthMax) throw new RangeError(`bad peer id "${replicaId}"`);
      if (wanted.has(replicaId) || configured.has(replicaId)) throw new RangeError(`peer ${replicaId} is listed twice`);
      assertAddress(address);
      configured.add(replicaId);
      if (replicaId > this.credentials.replicaId) wanted.set(replicaId, address);
    }
    this.configuredPeers = configured;
    for (const [peer, target] of this.dialTargets) {
      if (!isSeedKey(peer) && wanted.get(peer) !== target.address) this.stopDialing(peer, target);
    }
    for (const [peer, address] of wanted) {
      if (this.dialTargets.has(peer)) continue;
      this.dialTargets.set(peer, { address, attempt: 0, timer: null, ws: null });
      this.scheduleDial(peer);
    }
  }

  async start(events: TransportEvents): Promise<void> {
    if (this.phase !== "new" || this.listening !== null) throw new Error(`start() on a transport that is ${this.phase}`);
    this.events = events;
    const server = createServer(httpOptions(this.timing));
    server.maxConnections = this.limits.connectionsUnauthenticatedMax + 4 * 1024;
    server.on("connection", (socket: Duplex) => this.onTcpConnection(socket));
    server.on("request", (request: IncomingMessage) => this.refuseTcp(request.socket, "http", "plain HTTP request"));
    server.on("clientError", (error: Error, socket: Duplex) => this.refuseTcp(socket, "http", `bad HTTP: ${error.message}`));
    server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(request, socket, head));
    this.httpServer = server;
    this.listening = listen(server, this.listenHost, this.listenPort);
    try {
      await this.listening;
    } catch (error) {
      this.phase = "closed";
      this.httpServer = null;
      throw error;
    }
    server.on("error", (error) => this.log("error", `replication listener: ${error.message}`));
    if (this.phase !== "new") return; // close() came first; it finishes the job
    this.boundPort = (server.address() as AddressInfo).port;
    this.phase = "running";
    this.tickTimer = setInterval(() => this.tick(), this.timing.pingIntervalMs);
    this.log("info", `replication listening on ${this.listenHost}:${this.boundPort}`);
    for (const peer of this.dialTargets.keys()) this.scheduleDial(peer);
  }

  send(peer: PeerId, message: PeerMessage): boolean {
    const link = this.links.get(peer);
    if (link === undefined || link.ws.readyState !== WebSocket.OPEN) return false;
    // One message object sent to several peers is encoded once.
    if (message !== this.lastEncoded.message) this.lastEncoded = { message, bytes: encodeMessage(message) };
    const bytes = this.lastEncoded.bytes;
    if (bytes.length > bytesPerFrameMax) {
      throw new RangeError(`a ${message.type} message of ${bytes.length} bytes is over bytesPerFrameMax: split it`);
    }
    if (link.ws.bufferedAmount > this.limits.bytesBufferedPerLinkMax) {
      // Its close event reports peerDown, so the caller is not re-entered from here.
      link.dropReason = `send buffer over ${this.limits.bytesBufferedPerLinkMax} bytes`;
      link.ws.terminate();
      return false;
    }
    if (link.outboxBytes + bytes.length > outboxBytesMax) this.flushOutbox(link);
    if (link.outbox.length === 0) setImmediate(() => this.flushOutbox(link));
    link.outbox.push(bytes);
    link.outboxBytes += bytes.length;
    return true;
  }

  /** Send what `link` has queued as one frame: fewer writes and frames under load. */
  private flushOutbox(link: Connection): void {
    if (link.outbox.length === 0) return;
    if (link.sealer === null) throw new Error("invariant: a link with an outbox has session keys");
    const frame = link.sealer.seal(link.outbox, link.outboxBytes);
    link.outbox = [];
    link.outboxBytes = 0;
    if (link.ws.readyState === WebSocket.OPEN) link.ws.send(frame, { binary: true, compress: false, fin: true });
  }

  close(): Promise<void> {
    if (this.closing === null) this.closing = this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    if (this.listening !== null) await this.listening.catch(() => undefined);
    if (this.phase === "closed") return;
    this.phase = "closing";
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    this.tickTimer = null;
    for (const [peer, target] of this.dialTargets) this.stopDialing(peer, target);
    for (const [socket, entry] of this.unauthenticated) {
      clearTimeout(entry.deadline);
      socket.destroy();
    }
    this.unauthenticated.clear();
    for (const link of [...this.links.values()]) this.dropLink(link, "info", "transport closing", 1001);
    this.wsServer.close();
    const server = this.httpServer;
    const serverClosed = new Promise<void>((resolve) => (server === null ? resolve() : server.close(() => resolve())));
    const socketsClosed = new Promise<void>((resolve) => {
      this.socketsGone = resolve;
      this.checkSocketsGone();
    });
    await Promise.all([serverClosed, socketsClosed]);
    this.httpServer = null;
    this.phase = "closed";
    this.log("info", "replication transport closed");
  }

  private checkSocketsGone(): void {
    if (this.socketsGone !== null && this.sockets.size === 0) {
      this.socketsGone();
      this.socketsGone = null;
    }
  }

  // ---- dialing

  private stopDialing(peer: PeerId, target: DialTarget): void {
    if (target.timer !== null) clearTimeout(target.timer);
    target.timer = null;
    target.ws?.terminate();
    target.ws = null;
    this.dialTargets.delete(peer);
  }

  /** Stops a dial in progress and its next try, keeping the target (a seed, dialed again once no link is up). */
  private pauseDial(target: DialTarget): void {
    if (target.timer !== null) clearTimeout(target.timer);
    target.timer = null;
    target.ws?.terminate();
    target.ws = null;
  }

  private scheduleDial(peer: PeerId): void {
    const target = this.dialTargets.get(peer);
    if (this.phase !== "running" || target === undefined || this.seedWaits(peer)) return;
    if (target.timer !== null || target.ws !== null || this.links.has(peer)) return;
    const delayMs = reconnectDelayMs(target.attempt, this.timing, Math.random());
    target.timer = setTimeout(() => {
      target.timer = null;
      if (this.phase === "running" && this.dialTargets.get(peer) === target && !this.links.has(peer) && !this.seedWaits(peer)) this.dial(peer, target);
    }, delayMs);
  }

  /** A seed is dialed only while no link is up: a joiner whose links all dropped before the others knew it starts over. */
  private seedWaits(peer: PeerId): boolean {
    return isSeedKey(peer) && this.links.size > 0;
  }

  /** `peer`: a replica id, or a seed's key (its id unknown until its challenge). */
  private dial(peer: PeerId, target: DialTarget): void {
    const seed = isSeedKey(peer);
    const ticket = upgradeTicket(this.credentials.secret, seed ? seedTicketTarget : peer, Date.now(), randomBytes(upgradeNonceBytes));
    const ws = new WebSocket(`ws://${target.address}${linkPath}`, clientOptions(this.timing, ticket));
    target.ws = ws;
    const { hello, state } = startDialer(this.credentials, seed ? null : peer, randomBytes(nonceBytes));
    const connection = newConnection(ws, `dial ${seed ? "seed" : peer} at ${target.address}`, state, peer, null);
    connection.deadline = setTimeout(() => this.refuse(connection, this.notAuthenticatedReason()), this.timing.handshakeTimeoutMs);
    ws.once("open", () => {
      connection.opened = true;
      ws.send(hello, { binary: true, compress: false, fin: true });
    });
    ws.once("unexpected-response", (_request, response) => {
      // Reachable, but it did not take our ticket: say so at warn, unlike a peer that is down.
      connection.opened = true;
      const seconds = upgradeClockSkewMsMax / 1000;
      this.refuse(connection, `the peer refused our upgrade ticket (HTTP ${response.statusCode}): another cluster secret, or clocks over ${seconds} s apart?`);
    });
    this.attach(connection);
  }

  private notAuthenticatedReason(): string {
    return `not authenticated within ${this.timing.handshakeTimeoutMs} ms`;
  }

  // ---- accepting

  private onTcpConnection(socket: Duplex): void {
    const where = `from ${remoteOf(socket)}`;
    const addressKey = addressKeyOf((socket as Duplex & { remoteAddress?: string }).remoteAddress);
    const refusal = this.tcpRefusal(addressKey);
    if (refusal !== null) {
      this.refusals.write("connection", "warn", `${where}: refused, ${refusal}`, performance.now());
      socket.destroy();
      return;
    }
    const upgradeTimeoutMs = Math.min(this.timing.upgradeTimeoutMs, this.timing.handshakeTimeoutMs);
    const deadline = setTimeout(() => this.refuseAccepted(socket, "connection", `no valid upgrade within ${upgradeTimeoutMs} ms`), upgradeTimeoutMs);
    const entry: Unauthenticated = {
      where,
      addressKey,
      connectedAtMs: performance.now(),
      deadline,
      bytesReceived: 0,
      countBytes: null,
      connection: null,
    };
    this.unauthenticated.set(socket, entry);
    this.unauthenticatedPerAddress.set(addressKey, (this.unauthenticatedPerAddress.get(addressKey) ?? 0) + 1);
    socket.once("close", () => this.forgetUnauthenticated(socket));
  }

  /** Why a new TCP connection from `addressKey` gets no slot, or null. */
  private tcpRefusal(addressKey: string): string | null {
    if (this.phase !== "running") return "not running";
    if (this.unauthenticated.size >= this.limits.connectionsUnauthenticatedMax) return "too many unauthenticated connections";
    if ((this.unauthenticatedPerAddress.get(addressKey) ?? 0) >= this.limits.connectionsUnauthenticatedPerAddressMax) {
      return `too many unauthenticated connections from ${addressKey}`;
    }
    return null;
  }

  private forgetUnauthenticated(socket: Duplex): void {
    const entry = this.unauthenticated.get(socket);
    if (entry === undefined) return;
    clearTimeout(entry.deadline);
    if (entry.countBytes !== null) socket.off("data", entry.countBytes);
    this.unauthenticated.delete(socket);
    const left = (this.unauthenticatedPerAddress.get(entry.addressKey) ?? 1) - 1;
    if (left > 0) this.unauthenticatedPerAddress.set(entry.addressKey, left);
    else this.unauthenticatedPerAddress.delete(entry.addressKey);
  }

  /** Refuses an accepted connection not yet authenticated, WebSocket already or not. */
  private refuseAccepted(socket: Duplex, kind: RefusalKind, reason: string): void {
    const connection = this.unauthenticated.get(socket)?.connection;
    if (connection) this.refuse(connection, reason);
    else this.refuseTcp(socket, kind, reason);
  }

  /**
   * Refuses a TCP connection that never became a WebSocket: closed, with no answer
   * unless `answer` (a 401 to a bad ticket, so that a dialer with another secret or a
   * skewed clock can say why).
   */
  private refuseTcp(socket: Duplex, kind: RefusalKind, reason: string, answer?: string): void {
    const where = this.unauthenticated.get(socket)?.where ?? `from ${remoteOf(socket)}`;
    this.refusals.write(kind, "warn", `${where}: refused, ${reason}`, performance.now());
    this.forgetUnauthenticated(socket);
    if (answer === undefined || !socket.writable) socket.destroy();
    else socket.end(answer, () => socket.destroy());
  }

  private onUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const entry = this.unauthenticated.get(socket);
    if (entry === undefined || this.phase !== "running") return this.refuseTcp(socket, "http", "not expecting an upgrade");
    if (request.url !== linkPath) return this.refuseTcp(socket, "http", `wrong path ${JSON.stringify(request.url)}`);
    const ticketProblem = this.tickets.check(request.headers[upgradeTicketHeader], Date.now());
    if (ticketProblem !== null) return this.refuseTcp(socket, "ticket", ticketProblem, unauthorizedAnswer);
    this.startHandshakeBudget(socket, entry);
    this.wsServer.handleUpgrade(request, socket, head, (ws) => {
      const state = startAcceptor(this.credentials, randomBytes(nonceBytes), this.acceptsPeer);
      const connection = newConnection(ws, entry.where, state, null, socket);
      connection.opened = true;
      entry.connection = connection;
      this.attach(connection);
    });
  }

  /**
   * A connection with a good ticket: what is left of handshakeTimeoutMs, and a byte
   * budget. The counter sees each read before ws does (ws listens from handleUpgrade
   * on, and is handed `head` again as data), so ws buffers at most one read past it.
   */
  private startHandshakeBudget(socket: Duplex, entry: Unauthenticated): void {
    clearTimeout(entry.deadline);
    const leftMs = Math.max(1, this.timing.handshakeTimeoutMs - (performance.now() - entry.connectedAtMs));
    entry.deadline = setTimeout(() => this.refuseAccepted(socket, "handshake", this.notAuthenticatedReason()), leftMs);
    const bytesMax = this.limits.bytesUnauthenticatedPerConnectionMax;
    entry.countBytes = (chunk: Buffer) => {
      entry.bytesReceived += chunk.length;
      if (entry.bytesReceived > bytesMax) this.refuseAccepted(socket, "handshake", `over ${bytesMax} bytes before authentication`);
    };
    socket.on("data", entry.countBytes);
  }

  // ---- one connection

  private attach(connection: Connection): void {
    const { ws } = connection;
    this.sockets.add(ws);
    ws.binaryType = "nodebuffer";
    ws.on("error", (error) => {
      // The close event follows; an up link reports the error in its "down" line.
      // Before that it is a refusal, logged once (nothing after a refusal is).
      if (connection.up) connection.dropReason ??= error.message;
      else this.refuse(connection, error.message);
    });
    ws.on("message", (data, isBinary) => this.onFrame(connection, bytesOf(data), isBinary));
    ws.on("pong", () => (connection.lastHeardAtMs = performance.now()));
    ws.on("ping", () => (connection.lastHeardAtMs = performance.now()));
    ws.on("close", (code, reason) => this.onClose(connection, code, reason.toString("utf8")));
  }

  private onFrame(connection: Connection, bytes: Uint8Array, isBinary: boolean): void {
    if (connection.up) return this.onLinkFrame(connection, bytes, isBinary);
    const state = connection.handshake;
    if (state === null) return; // refused or dropped: ignore what is still in flight
    if (!isBinary) return this.refuse(connection, "text frame during the handshake");
    const step = handshakeStep(state, bytes);
    switch (step.kind) {
      case "refused":
        return this.refuse(connection, step.reason);
      case "reply":
        connection.handshake = step.next;
        connection.ws.send(step.frame, { binary: true, compress: false, fin: true });
        return;
      case "authenticated":
        connection.handshake = null;
        if (step.frame !== null) connection.ws.send(step.frame, { binary: true, compress: false, fin: true });
        return this.linkUp(connection, step.peer, step.actor, step.keys);
    }
  }

  private refuse(connection: Connection, reason: string): void {
    if (connection.handshake === null) return;
    connection.handshake = null;
    this.logUnauthenticated(connection, this.unreachable(connection) ? "info" : "warn", `${connection.where}: refused, ${reason}`);
    connection.ws.terminate();
  }

  /** A line about a connection not (yet) up: capped if a stranger could provoke it (accepted), else logged. */
  private logUnauthenticated(connection: Connection, level: LogLevel, message: string): void {
    if (connection.dialPeer === null) this.refusals.write("handshake", level, message, performance.now());
    else this.log(level, message);
  }

  /** A dial that never got a WebSocket up: the peer is down or cut off, which replicas must live with. */
  private unreachable(connection: Connection): boolean {
    return connection.dialPeer !== null && !connection.opened;
  }

  private linkUp(connection: Connection, peer: PeerId, actor: Actor, keys: SessionKeys): void {
    if (this.phase !== "running" || this.events === null) return void connection.ws.terminate();
    this.endHandshakeTimers(connection);
    connection.sealer = new FrameSealer(keys.send);
    connection.opener = new FrameOpener(keys.receive);
    const target = connection.dialPeer === null ? undefined : this.dialTargets.get(connection.dialPeer);
    if (target !== undefined && target.ws === connection.ws) {
      target.ws = null;
      target.attempt = 0;
    }
    // A joiner needs one link (the members' addresses come with the membership document): its seeds wait while it has one.
    for (const [key, seed] of this.dialTargets) if (isSeedKey(key) && seed !== target) this.pauseDial(seed);
    const older = this.links.get(peer);
    if (older !== undefined) this.dropLink(older, "info", "replaced by a newer link", 1000);
    connection.up = true;
    connection.peer = peer;
    connection.lastHeardAtMs = performance.now();
    const how = connection.dialPeer === null ? connection.where : "dialed";
    connection.where = `link ${peer} (${actor})`;
    this.links.set(peer, connection);
    this.log("info", `${connection.where}: up, ${how}`);
    const events = this.events;
    this.deliver(connection, () => events.peerUp(peer, actor));
  }

  /**
   * Runs an event handler for `link`'s peer. A throw is a bug the peer's input
   * reached: it closes this link only (and is logged), never the process.
   */
  private deliver(link: Connection, handle: () => void): boolean {
    try {
      handle();
      return true;
    } catch (error) {
      this.dropLink(link, "error", `a handler threw: ${describeError(error)}`, 1011);
      return false;
    }
  }

  private endHandshakeTimers(connection: Connection): void {
    if (connection.deadline !== null) clearTimeout(connection.deadline);
    if (connection.rawSocket !== null) this.forgetUnauthenticated(connection.rawSocket);
  }

  private onLinkFrame(link: Connection, bytes: Uint8Array, isBinary: boolean): void {
    link.lastHeardAtMs = performance.now();
    if (!isBinary) return this.dropLink(link, "warn", "protocol error: text frame", 1003);
    const frame = link.opener?.open(bytes) ?? null;
    // A man in the middle can provoke this at will: its line goes through the cap.
    if (frame === null) return this.dropLink(link, "warn", "bad frame tag (altered, forged, replayed or out of order)", 1002, true);
    let messages: PeerMessage[];
    try {
      messages = decodeFrame(frame);
    } catch (error) {
      if (error instanceof ProtocolError) return this.dropLink(link, "warn", `protocol error: ${error.message}`, 1002);
      return this.dropLink(link, "error", `decodeFrame failed unexpectedly: ${String(error)}`, 1011);
    }
    for (const message of messages) {
      const { peer } = link;
      const events = this.events;
      if (!link.up || peer === null || events === null) return;
      if (!this.deliver(link, () => events.message(peer, message))) return;
    }
  }

  /**
   * Takes `link` down now (peerDown) and closes its socket: gracefully with `closeCode`,
   * or terminated if null. `capped`: the line goes through the refusal cap.
   */
  private dropLink(link: Connection, level: LogLevel, reason: string, closeCode: number | null, capped = false): void {
    if (!link.up || link.peer === null) return;
    link.up = false;
    this.links.delete(link.peer);
    if (this.links.size === 0) for (const key of this.dialTargets.keys()) if (isSeedKey(key)) this.scheduleDial(key);
    if (capped) this.refusals.write("link", level, `${link.where}: down, ${reason}`, performance.now());
    else this.log(level, `${link.where}: down, ${reason}`);
    try {
      this.events?.peerDown(link.peer);
    } catch (error) {
      this.log("error", `${link.where}: the down handler threw: ${describeError(error)}`);
    }
    if (closeCode === null) link.ws.terminate();
    else link.ws.close(closeCode, closeReasons[closeCode] ?? "");
  }

  private onClose(connection: Connection, code: number, reason: string): void {
    this.sockets.delete(connection.ws);
    this.endHandshakeTimers(connection);
    const said = `code ${code}${reason === "" ? "" : ` "${reason}"`}`;
    if (connection.up) {
      const orderly = connection.dropReason === null && (code === 1000 || code === 1001);
      const lost = code === 1006 ? `connection lost (${said})` : `closed by the peer (${said})`;
      this.dropLink(connection, orderly ? "info" : "warn", connection.dropReason ?? lost, null);
    } else if (connection.handshake !== null && connection.opened) {
      connection.handshake = null;
      // A dial we stopped ourselves (a seed once another link was up, a peer dropped from the list) is no peer's fault.
      const stopped = connection.dialPeer !== null && (!this.dialTargets.has(connection.dialPeer) || this.seedWaits(connection.dialPeer));
      this.logUnauthenticated(connection, stopped ? "info" : "warn", `${connection.where}: closed during the handshake (${said})`);
    }
    const target = connection.dialPeer === null ? undefined : this.dialTargets.get(connection.dialPeer);
    if (target !== undefined && target.ws === connection.ws) {
      target.ws = null;
      target.attempt += 1;
    }
    // A seed's link is that member's link too: dial it again if it is ours to dial.
    for (const peer of new Set([connection.dialPeer, connection.peer])) if (peer !== null) this.scheduleDial(peer);
    this.checkSocketsGone();
  }

  // ---- liveness

  private tick(): void {
    const nowMs = performance.now();
    this.refusals.roll(nowMs);
    for (const link of [...this.links.values()]) {
      const silentMs = nowMs - link.lastHeardAtMs;
      if (silentMs > this.timing.pongTimeoutMs) this.dropLink(link, "warn", `silent for ${Math.round(silentMs)} ms`, null);
      else link.ws.ping();
    }
  }
}

const closeReasons: Readonly<Record<number, string>> = {
  1000: "replaced by a newer link",
  1001: "closing",
  1002: "protocol error",
  1003: "text frame",
  1011: "internal error",
};

function newConnection(ws: WebSocket, where: string, handshake: HandshakeState, dialPeer: PeerId | null, rawSocket: Duplex | null): Connection {
  return {
    ws,
    where,
    handshake,
    opened: false,
    up: false,
    peer: null,
    lastHeardAtMs: performance.now(),
    dropReason: null,
    dialPeer,
    deadline: null,
    rawSocket,
    outbox: [],
    outboxBytes: 0,
    sealer: null,
    opener: null,
  };
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function bytesOf(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

function remoteOf(socket: Duplex): string {
  const { remoteAddress, remotePort } = socket as Duplex & { remoteAddress?: string; remotePort?: number };
  return `${remoteAddress ?? "?"}:${remotePort ?? "?"}`;
}

function assertAddress(address: string): void {
  const port = addressPattern.exec(address)?.[1];
  if (port === undefined || Number(port) < 1 || Number(port) > 65535) {
    throw new RangeError(`a peer address must be host:port, got "${address}"`);
  }
}

/**
 * What the per-address limit counts under: an IPv4 address (also when IPv4-mapped), or
 * the /64 of an IPv6 one, since one host commonly holds a whole /64.
 */
export function addressKeyOf(address: string | undefined): string {
  if (address === undefined || address === "") return "?";
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return mapped[1]!;
  if (!address.includes(":")) return address;
  const [head = "", tail = ""] = address.split("%")[0]!.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = address.includes("::") ? (tail === "" ? [] : tail.split(":")) : [];
  const groups = [...headGroups, ...Array<string>(Math.max(0, 8 - headGroups.length - tailGroups.length)).fill("0"), ...tailGroups];
  return `${groups
    .slice(0, 4)
    .map((group) => group.toLowerCase().replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}

function assertLimits(limits: WsTransportLimits): void {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value <= 0) throw new RangeError(`limits.${name} must be a positive integer`);
  }
}

function assertTiming(timing: WsTransportTiming): void {
  for (const [name, value] of Object.entries(timing)) {
    if (!Number.isFinite(value) || value <= 0) throw new RangeError(`timing.${name} must be a positive number`);
  }
  if (timing.pongTimeoutMs <= timing.pingIntervalMs) throw new RangeError("pongTimeoutMs must exceed pingIntervalMs");
  if (timing.reconnectDelayMsMax < timing.reconnectDelayMsMin) throw new RangeError("reconnectDelayMsMax is below the minimum");
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port, exclusive: true, backlog: 511 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

// Every option stated: ws's and Node's defaults are not ours to trust.

/** ws options its type definitions (8.18) do not list yet. */
interface WsExtraOptions {
  readonly closeTimeout: number;
  readonly maxPendingAutoPongs: number;
}

function httpOptions(timing: WsTransportTiming): HttpServerOptions {
  return {
    maxHeaderSize: 8 * 1024,
    // Our own deadlines (upgradeTimeoutMs, handshakeTimeoutMs) end a connection first.
    headersTimeout: timing.handshakeTimeoutMs,
    requestTimeout: timing.handshakeTimeoutMs,
    connectionsCheckingInterval: Math.min(1_000, timing.handshakeTimeoutMs),
    keepAlive: false,
    noDelay: true,
    insecureHTTPParser: false,
    joinDuplicateHeaders: false,
  };
}

/** What both ends of a link set alike: frame bounds, no compression, pongs, closing. */
function linkOptions(timing: WsTransportTiming) {
  return {
    perMessageDeflate: false,
    // A frame and its tag. Before authentication an acceptor allows far less (its byte budget).
    maxPayload: bytesPerFrameMax + tagBytes,
    maxBufferedChunks: chunksBufferedMax,
    maxFragments: fragmentsPerMessageMax,
    skipUTF8Validation: false,
    autoPong: true,
    allowSynchronousEvents: true,
    closeTimeout: timing.closeTimeoutMs,
    maxPendingAutoPongs: autoPongsPendingMax,
  } as const;
}

function serverOptions(timing: WsTransportTiming): ServerOptions & WsExtraOptions {
  return { ...linkOptions(timing), noServer: true, clientTracking: false };
}

function clientOptions(timing: WsTransportTiming, ticket: string): ClientOptions & WsExtraOptions {
  return {
    ...linkOptions(timing),
    protocolVersion: 13,
    followRedirects: false,
    maxRedirects: 0,
    handshakeTimeout: timing.handshakeTimeoutMs,
    headers: { [upgradeTicketHeader]: ticket },
  };
}
