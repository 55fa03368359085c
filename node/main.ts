// Entry point of one replica process. Every line it prints is a pino (JSON) line,
// with the replica id in each; request lines carry fastify's request id.
// Its own HTTP port answers the operations routes from the start; the shop routes
// (and the shared port of a local cluster) wait until it has caught up with its peers.
// SIGTERM: no new connections, the requests in flight finish, the last batch is
// flushed, the peer links close.
import cluster from "node:cluster";
import { type Server, type ServerOptions, createServer } from "node:http";
import { pino } from "pino";
import { buildApp } from "../api/app.js";
import { Readiness } from "../api/readiness.js";
import { ReplicaMetrics } from "../api/replicaMetrics.js";
import { isolatedTransport } from "../cluster/isolatedTransport.js";
import { memberStatePolicy } from "../cluster/memberStatePolicy.js";
import { type MemberSource, isMemberRule, peersToDial } from "../cluster/memberLinks.js";
import type { MemberView } from "../cluster/membership.js";
import { WsTransport } from "../cluster/wsTransport.js";
import { type ReplicaConfig, configUsage, readConfig } from "./config.js";
import { observedTransport } from "./observedTransport.js";
import { Replica } from "./replica.js";

/** What a replica tells its parent once it serves, when it has an IPC channel (the local cluster launcher, test harness). */
export interface ServingMessage {
  readonly type: "serving";
  readonly replicaId: string;
  readonly incarnation: string;
  readonly port: number;
  readonly dataDir: string;
}

/** Longest wait at SIGTERM for the requests in flight to finish before the links are closed anyway. */
const shutdownWaitMsMax = 8_000;

/**
 * Every client HTTP listener's limits, stated: serverFactory skips fastify's own, and
 * Node's defaults let a half-sent request live 60-90 s and a slow one 300 s.
 */
const httpServerOptions: ServerOptions = {
  // A request's headers must be in within this, its body (the shop's have none) within requestTimeout.
  headersTimeout: 10_000,
  requestTimeout: 15_000,
  // An idle keep-alive connection: longer than the gateways' upstream keepalive_timeout
  // (nginx's 60 s), so that they close it first and never send on a connection we close.
  keepAliveTimeout: 65_000,
  // How often the two timeouts above are checked (Node's default is 30 s).
  connectionsCheckingInterval: 1_000,
  maxHeaderSize: 16 * 1024,
};
/** Open connections per listener; more are closed at once (each costs a socket and a few KiB). */
const httpConnectionsMax = 4_096;

const config = readConfigOrExit(process.argv.slice(2));
const logger = pino({ level: config.logLevel, base: { replicaId: config.replicaId }, timestamp: pino.stdTimeFunctions.isoTime });
/** The lines a process run by hand always prints (start, stop), whatever the level. */
const announcer = cluster.isWorker ? logger : logger.child({}, { level: "info" });
const log = (level: "info" | "warn" | "error", message: string) => logger[level](message);
if (config.adminToken === undefined) log("warn", "no admin token (ADMIN_TOKEN, ADMIN_TOKEN_FILE or --admin-token-file): admin routes answer 401");
const metrics = new ReplicaMetrics();
let peerTransport: WsTransport | undefined;
const configuredIds = new Set(config.peers.map((peer) => peer.replicaId));
/** The members as the document last showed them: who may link, whom to dial, whose rows are taken. */
let members = new Map<string, MemberView>();
const memberSource: MemberSource = {
  member: (replicaId) => members.get(replicaId),
  namesOthers: () => [...members.keys()].some((replicaId) => replicaId !== config.replicaId),
};
const replica = await Replica.open({
  replicaId: config.replicaId,
  dataDir: config.dataDir,
  transport: (actor) => {
    if (config.peers.length === 0 && config.join.length === 0) return isolatedTransport;
    peerTransport = new WsTransport({
      selfId: config.replicaId,
      selfActor: actor,
      listenHost: config.host,
      listenPort: config.peerPort,
      peers: config.peers,
      seeds: config.join,
      // Any replica id but a retired member's may link: a new one joins (docs/DESIGN.md, "Joining").
      acceptsPeer: (replicaId) => configuredIds.has(replicaId) || members.get(replicaId)?.state !== "retired",
      secret: config.clusterSecret!,
      log,
    });
    return observedTransport(peerTransport, (direction, message) => metrics.peerMessage(direction, message));
  },
  configuredPeerIds: [...configuredIds],
  onMembersChanged: (view) => {
    members = new Map(view.map((member) => [member.replicaId, member]));
    peerTransport?.setPeers(peersToDial(config.replicaId, config.peers, view));
  },
  ackWaitMsMax: config.ackWaitMsMax,
  rightsWaitMsMax: config.rightsWaitMsMax,
  log,
  onWriteFailure: (error) => {
    // Memory is now ahead of disk: stop rather than answer from a state a restart loses.
    logger.fatal({ err: error }, "a LevelDB write failed: stopping");
    process.exit(1);
  },
  onBatchWritten: (batch) => metrics.batchWritten(batch),
});

// Rows only of members' actors, generations only up to our clock plus the skew allowed
// (cluster/memberStatePolicy.ts). Set before any peer's message can arrive: open()
// resolves with no I/O turn between its transport's start and this line.
replica.shop.peerStatePolicy = memberStatePolicy({
  isMember: isMemberRule(config.replicaId, configuredIds, config.join.length > 0, memberSource),
  wallClockMs: () => Date.now(),
  released: (actor) => replica.isReleased(actor),
});

// Catch up with the configured peers and every member the stored document lists (a replica that joined has no --peers).
const memberIdsNow = [...members.values()].filter((member) => member.state !== "retired").map((member) => member.replicaId);
const peerIds = [...new Set([...configuredIds, ...memberIdsNow])].filter((replicaId) => replicaId !== config.replicaId);
// A replica not named in --peers with no entry of its own yet (or one still joining) joins through --join.
const joining = config.join.length > 0 && (replica.ownMembership() ?? "joining") === "joining";
const readiness = new Readiness(peerTransport !== undefined ? "catching-up" : "serving", joining ? config.join : peerIds, config.catchUpMsMax);
// A local cluster shares one client port: Node's cluster module hands each new
// connection to one of the replicas, with no proxy hop.
const sharedServer = config.sharedPort === undefined ? undefined : withConnectionsMax(createServer(httpServerOptions));
const app = buildApp(replica, {
  logLevel: config.logLevel,
  adminToken: config.adminToken,
  logger,
  readiness,
  metrics,
  serverFactory: (handler) => {
    sharedServer?.on("request", handler);
    return withConnectionsMax(createServer(httpServerOptions, handler));
  },
});
await app.listen({ host: config.host, port: config.port, exclusive: true });
const port = (app.server.address() as { port: number }).port;

// From here on, SIGTERM stops it cleanly (also while it still catches up).
let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  announcer.info(`replica ${config.replicaId}: ${signal}, stopping (finishing the requests in flight)`);
  readiness.stopping();
  const closed = Promise.all([app.close(), closeServer(sharedServer)]).then(() => true);
  const waitOver = new Promise<false>((resolve) => setTimeout(() => resolve(false), shutdownWaitMsMax).unref());
  if (!(await Promise.race([closed, waitOver]))) log("warn", `requests still in flight after ${shutdownWaitMsMax} ms: closing anyway`);
  // Flushes the last batch and closes the peer links and LevelDB.
  await replica.close();
  announcer.info(`replica ${config.replicaId}: stopped`);
  process.exit(0);
}
process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));

// Serve clients only once caught up with the peers (or after a bound, if some are
// unreachable): a restarted replica must not answer from a stale state. Until then
// the shop routes wait, and only the operations routes (/health, /ready...) answer.
const advertised = {
  httpAddress: `${config.advertiseHost}:${port}`,
  peerAddress: `${config.advertiseHost}:${peerTransport?.port ?? config.peerPort}`,
  actor: replica.shop.actor,
};
const joinStartedAt = performance.now();
const notCaughtUp = joining
  ? await replica.join(advertised, config.catchUpMsMax, (waitedMs) =>
      log(
        "warn",
        `joining: no member reached through ${config.join.join(", ")} after ${Math.round(waitedMs / 1000)} s; still trying (is the secret right? a replica id that has left the cluster is refused for good: join under a new id)`,
      ),
    )
  : await replica.catchUp(peerIds, config.catchUpMsMax);
// A stop during the catch-up owns the rest: it closes everything and exits.
if (stopping) await new Promise<never>(() => {});
readiness.catchUpEnded(notCaughtUp);
if (notCaughtUp.length > 0) log("warn", `serving before catching up with ${notCaughtUp.join(", ")} (unreachable for ${config.catchUpMsMax} ms)`);
if (sharedServer !== undefined) await new Promise<void>((resolve) => sharedServer.listen({ host: config.host, port: config.sharedPort }, resolve));
const peerPart = peerTransport === undefined ? "" : `, peers on port ${peerTransport.port}`;
// A replica without peers is a cluster of one: there is nobody to announce itself to.
if (peerTransport !== undefined) replica.announce(advertised);
if (joining) announcer.info(`replica ${config.replicaId} joined the cluster in ${Math.round(performance.now() - joinStartedAt)} ms`);
announcer.info(`replica ${config.replicaId} (incarnation ${replica.identity.incarnation}) serving http://localhost:${port} from ${config.dataDir}${peerPart}`);
// The one ready signal: a parent that gave us an IPC channel reads it instead of scraping the log.
if (process.send !== undefined) {
  const serving: ServingMessage = { type: "serving", replicaId: config.replicaId, incarnation: replica.identity.incarnation, port, dataDir: config.dataDir };
  process.send(serving);
}

function withConnectionsMax(server: Server): Server {
  server.maxConnections = httpConnectionsMax;
  return server;
}

function closeServer(server: Server | undefined): Promise<void> {
  if (server === undefined || !server.listening) return Promise.resolve();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** The settings, or the usage (--help), or one clear line for a bad flag or setting: never a stack trace. */
function readConfigOrExit(argv: string[]): ReplicaConfig {
  if (argv.includes("--help")) {
    console.log(configUsage);
    process.exit(0);
  }
  try {
    return readConfig(argv, process.env);
  } catch (error) {
    console.error(`error: ${error instanceof Error ? error.message : String(error)}\n${configUsage}`);
    process.exit(2);
  }
}
