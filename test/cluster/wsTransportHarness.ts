// Helpers for the WsTransport tests: an event recorder that checks the event grammar,
// bounded polling, real transports on free ports, a TCP proxy that can black-hole a
// link (what an iptables DROP partition looks like), and hand-driven "rogue" peers
// that know the secret but send whatever the test wants once authenticated (tagged
// as a real peer tags its frames, so it reaches the decoder, or not).
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket, { WebSocketServer } from "ws";
import type { Actor } from "../../crdt/boundedCounter.js";
import { FrameOpener, FrameSealer } from "../../cluster/frameAuth.js";
import { type Credentials, type HandshakeState, handshakeStep, nonceBytes, startAcceptor, startDialer } from "../../cluster/handshake.js";
import type { PeerMessage } from "../../cluster/messages.js";
import type { PeerAddress, PeerId, TransportEvents } from "../../cluster/transport.js";
import { upgradeNonceBytes, upgradeTicket, upgradeTicketHeader } from "../../cluster/upgradeTicket.js";
import { type LogLevel, WsTransport, type WsTransportOptions, linkPath } from "../../cluster/wsTransport.js";

export const testSecret = "correct horse battery staple";
export const host = "127.0.0.1";
const waitMsDefault = 15_000;
const pollMs = 5;

export type RecordedEvent =
  | { readonly kind: "up"; readonly peer: PeerId; readonly actor: Actor }
  | { readonly kind: "down"; readonly peer: PeerId }
  | { readonly kind: "message"; readonly peer: PeerId; readonly message: PeerMessage };

export interface LogLine {
  readonly level: LogLevel;
  readonly message: string;
}

/**
 * Records a transport's events and log, and checks on every event the grammar a
 * transport promises: per peer, (up message* down)* — no message outside an up link,
 * no second up without a down in between, no down without an up.
 */
export class Recorder implements TransportEvents {
  readonly events: RecordedEvent[] = [];
  readonly logs: LogLine[] = [];
  readonly violations: string[] = [];
  private readonly upPeers = new Set<PeerId>();

  readonly log = (level: LogLevel, message: string): void => {
    this.logs.push({ level, message });
  };

  peerUp(peer: PeerId, actor: Actor): void {
    if (this.upPeers.has(peer)) this.violations.push(`peerUp(${peer}) while already up`);
    this.upPeers.add(peer);
    this.events.push({ kind: "up", peer, actor });
  }

  peerDown(peer: PeerId): void {
    if (!this.upPeers.delete(peer)) this.violations.push(`peerDown(${peer}) while not up`);
    this.events.push({ kind: "down", peer });
  }

  message(peer: PeerId, message: PeerMessage): void {
    if (!this.upPeers.has(peer)) this.violations.push(`message from ${peer} while not up`);
    this.events.push({ kind: "message", peer, message });
  }

  isUp(peer: PeerId): boolean {
    return this.upPeers.has(peer);
  }

  count(kind: RecordedEvent["kind"], peer: PeerId): number {
    return this.events.filter((event) => event.kind === kind && event.peer === peer).length;
  }

  lastActor(peer: PeerId): Actor | undefined {
    const ups = this.events.filter((event) => event.kind === "up" && event.peer === peer);
    const last = ups[ups.length - 1];
    return last?.kind === "up" ? last.actor : undefined;
  }

  messagesFrom(peer: PeerId): PeerMessage[] {
    return this.events.flatMap((event) => (event.kind === "message" && event.peer === peer ? [event.message] : []));
  }

  logged(level: LogLevel, pattern: RegExp): LogLine[] {
    return this.logs.filter((line) => line.level === level && pattern.test(line.message));
  }

  /** For failure messages. */
  dump(): string {
    return this.logs.map((line) => `${line.level}: ${line.message}`).join("\n");
  }
}

/** Polls `predicate` until it holds; fails after `timeoutMs` with `what`. */
export async function waitFor(what: string, predicate: () => boolean, timeoutMs = waitMsDefault, detail?: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `\n${detail()}` : ""}`);
    await sleep(pollMs);
  }
}

export interface Replica {
  readonly id: PeerId;
  readonly actor: Actor;
  readonly transport: WsTransport;
  readonly recorder: Recorder;
  readonly address: PeerAddress;
}

export type ReplicaOptions = Partial<Omit<WsTransportOptions, "selfId" | "log">>;

/** A started transport on a free port (unless `listenPort` is given), with no peers yet. */
export async function startReplica(id: PeerId, options: ReplicaOptions = {}): Promise<Replica> {
  const recorder = new Recorder();
  const actor = options.selfActor ?? `${id}/${randomBytes(4).toString("hex")}`;
  const transport = new WsTransport({
    selfId: id,
    selfActor: actor,
    listenHost: host,
    listenPort: 0,
    peers: [],
    secret: testSecret,
    ...options,
    log: recorder.log,
  });
  await transport.start(recorder);
  return { id, actor, transport, recorder, address: { replicaId: id, address: `${host}:${transport.port}` } };
}

/** Gives every replica the addresses of all the others. */
export function connectAll(replicas: readonly Replica[]): void {
  for (const replica of replicas) {
    replica.transport.setPeers(replicas.filter((other) => other !== replica).map((other) => other.address));
  }
}

export async function waitForMesh(replicas: readonly Replica[]): Promise<void> {
  for (const replica of replicas) {
    for (const other of replicas) {
      if (other === replica) continue;
      await waitFor(
        `${replica.id} sees ${other.id} up`,
        () => replica.recorder.isUp(other.id),
        waitMsDefault,
        () => replica.recorder.dump(),
      );
    }
  }
}

// ---- rogue peers: they hold the secret, then misbehave

const frameOptions = { binary: true, compress: false, fin: true } as const;

/** The header a real dialer of `acceptorId` sends with its upgrade request. */
export function ticketHeaders(secret: string, acceptorId: PeerId): Record<string, string> {
  return { [upgradeTicketHeader]: upgradeTicket(secret, acceptorId, Date.now(), randomBytes(upgradeNonceBytes)) };
}

/**
 * One WebSocket that runs the handshake from `state`, then is an authenticated link:
 * `send` tags binary frames as a real peer does (so garbage reaches the decoder),
 * `sendUnsealed` does not; `received` holds the frames whose tag was good.
 */
export class RogueLink {
  readonly received: Uint8Array[] = [];
  /** Frames that arrived with a bad tag. */
  badFrames = 0;
  private sealer: FrameSealer | null = null;
  private opener: FrameOpener | null = null;
  readonly authenticated: Promise<{ peer: PeerId; actor: Actor }>;

  constructor(
    readonly ws: WebSocket,
    state: HandshakeState,
  ) {
    ws.on("error", () => undefined);
    this.authenticated = new Promise((resolve, reject) => {
      let current: HandshakeState | null = state;
      // One listener from the start: frames right behind the welcome must not be missed.
      ws.on("message", (data: WebSocket.RawData) => {
        const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
        if (current === null) return this.onLinkFrame(bytes);
        const step = handshakeStep(current, bytes);
        if (step.kind === "refused") {
          current = null;
          ws.terminate();
          reject(new Error(`rogue refused: ${step.reason}`));
        } else if (step.kind === "reply") {
          current = step.next;
          ws.send(step.frame, frameOptions);
        } else {
          current = null;
          if (step.frame !== null) ws.send(step.frame, frameOptions);
          this.sealer = new FrameSealer(step.keys.send);
          this.opener = new FrameOpener(step.keys.receive);
          resolve({ peer: step.peer, actor: step.actor });
        }
      });
      ws.once("close", () => reject(new Error("closed during the handshake")));
    });
    this.authenticated.catch(() => undefined);
  }

  private onLinkFrame(bytes: Uint8Array): void {
    const frame = this.opener?.open(bytes) ?? null;
    if (frame === null) this.badFrames += 1;
    else this.received.push(frame);
  }

  /** A binary frame tagged as a real peer tags it, or a text frame as is. */
  send(data: Uint8Array | string): void {
    if (typeof data === "string") return void this.ws.send(data, { binary: false });
    if (this.sealer === null) throw new Error("not authenticated yet");
    this.ws.send(this.sealer.seal([data], data.length), frameOptions);
  }

  sendUnsealed(data: Uint8Array): void {
    this.ws.send(data, frameOptions);
  }

  terminate(): void {
    this.ws.terminate();
  }
}

/** Dials `port` as replica `credentials.replicaId` (with a good upgrade ticket) and completes the handshake. */
export async function rogueDial(port: number, expectedPeer: PeerId, credentials: Credentials): Promise<RogueLink> {
  const ws = new WebSocket(`ws://${host}:${port}${linkPath}`, {
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
    headers: ticketHeaders(credentials.secret, expectedPeer),
  });
  ws.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("close", () => reject(new Error("closed before open")));
  });
  const { hello, state } = startDialer(credentials, expectedPeer, randomBytes(nonceBytes));
  const link = new RogueLink(ws, state);
  ws.send(hello, frameOptions);
  await link.authenticated;
  return link;
}

/**
 * A WebSocket server that passes the acceptor's side of the handshake as
 * `credentials`, then hands each authenticated link to `onLink`.
 */
export class RogueAcceptor {
  readonly links: RogueLink[] = [];
  private constructor(
    private readonly server: WebSocketServer,
    readonly port: number,
  ) {}

  static async start(credentials: Credentials, onLink: (link: RogueLink, index: number) => void): Promise<RogueAcceptor> {
    const server = new WebSocketServer({ host, port: 0, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    await new Promise<void>((resolve) => server.once("listening", () => resolve()));
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("rogue server did not bind a port");
    const rogue = new RogueAcceptor(server, address.port);
    server.on("connection", (ws) => {
      const link = new RogueLink(
        ws,
        startAcceptor(credentials, randomBytes(nonceBytes), () => true),
      );
      link.authenticated.then(
        () => {
          rogue.links.push(link);
          onLink(link, rogue.links.length - 1);
        },
        () => undefined,
      );
    });
    return rogue;
  }

  get address(): string {
    return `${host}:${this.port}`;
  }

  async close(): Promise<void> {
    for (const ws of this.server.clients) ws.terminate();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Resolves when `ws` is closed, with the close code. */
export function closedCode(link: WebSocket | RogueLink): Promise<number> {
  const ws = link instanceof RogueLink ? link.ws : link;
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve(-1);
  return new Promise((resolve) => ws.once("close", (code) => resolve(code)));
}
