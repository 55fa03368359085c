// Entry point of one replica process.
import { createServer } from "node:http";
import { buildApp } from "../api/app.js";
import { isolatedTransport } from "../cluster/isolatedTransport.js";
import { memberStatePolicy } from "../cluster/memberStatePolicy.js";
import { WsTransport } from "../cluster/wsTransport.js";
import { readConfig } from "./config.js";
import { Replica } from "./replica.js";

const config = readConfig(process.argv.slice(2), process.env);
const log = (level: "info" | "warn" | "error", message: string) => {
  if (level !== "info" || config.logLevel === "info" || config.logLevel === "debug") console.error(`[${config.replicaId}] ${level}: ${message}`);
};
if (config.adminToken === undefined) log("warn", "no admin token (ADMIN_TOKEN, ADMIN_TOKEN_FILE or --admin-token-file): admin routes answer 401");
let peerTransport: WsTransport | undefined;
const replica = await Replica.open({
  replicaId: config.replicaId,
  dataDir: config.dataDir,
  transport: (actor) => {
    if (config.peers.length === 0) return isolatedTransport;
    peerTransport = new WsTransport({
      selfId: config.replicaId,
      selfActor: actor,
      listenHost: config.host,
      listenPort: config.peerPort,
      peers: config.peers,
      secret: config.clusterSecret!,
      log,
    });
    return peerTransport;
  },
  ackWaitMsMax: config.ackWaitMsMax,
  rightsWaitMsMax: config.rightsWaitMsMax,
  log,
  onWriteFailure: (error) => {
    // Memory is now ahead of disk: stop rather than answer from a state a restart loses.
    console.error("fatal: a LevelDB write failed", error);
    process.exit(1);
  },
});

// Rows only of members' actors, generations only up to our clock plus the skew allowed
// (cluster/memberStatePolicy.ts). Set before any peer's message can arrive: open()
// resolves with no I/O turn between its transport's start and this line.
const memberIds = new Set([config.replicaId, ...config.peers.map((peer) => peer.replicaId)]);
replica.shop.peerStatePolicy = memberStatePolicy({
  // A retired member may be gone from --peers; the membership document still lists it.
  isMember: (replicaId) => memberIds.has(replicaId) || replica.status().members.some((member) => member.replicaId === replicaId),
  wallClockMs: () => Date.now(),
});

// Serve clients only once caught up with the peers (or after a bound, if some are
// unreachable): a restarted replica must not answer from a stale state.
const notCaughtUp = await replica.catchUp(
  config.peers.map((peer) => peer.replicaId),
  config.catchUpMsMax,
);
if (notCaughtUp.length > 0) log("warn", `serving before catching up with ${notCaughtUp.join(", ")} (unreachable for ${config.catchUpMsMax} ms)`);

// A local cluster shares one client port: Node's cluster module hands each new
// connection to one of the replicas, with no proxy hop.
const sharedServer = config.sharedPort === undefined ? undefined : createServer();
const app = buildApp(replica, {
  logLevel: config.logLevel,
  adminToken: config.adminToken,
  serverFactory: (handler) => {
    sharedServer?.on("request", handler);
    return createServer(handler);
  },
});
await app.listen({ host: config.host, port: config.port, exclusive: true });
if (sharedServer !== undefined) await new Promise<void>((resolve) => sharedServer.listen({ host: config.host, port: config.sharedPort }, resolve));
const port = (app.server.address() as { port: number }).port;
const peerPart = peerTransport === undefined ? "" : `, peers on port ${peerTransport.port}`;
// A replica without peers is a cluster of one: there is nobody to announce itself to.
if (peerTransport !== undefined) {
  replica.announce({ httpAddress: `${config.host}:${port}`, peerAddress: `${config.host}:${peerTransport.port}`, actor: replica.shop.actor });
}
console.log(
  `replica ${config.replicaId} (incarnation ${replica.identity.incarnation}) serving http://localhost:${port} from ${config.dataDir}${peerPart}`,
);

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`replica ${config.replicaId}: ${signal}, stopping`);
  sharedServer?.close();
  await app.close();
  await replica.close();
  process.exit(0);
}
process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));
