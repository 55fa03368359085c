// A local cluster of N replicas behind one address. Node's cluster module lets
// every replica accept connections on the shared client port (no proxy hop);
// each replica also has its own HTTP port, peer port and data folder.
// Usage: node dist/scripts/startCluster.js [--replicas 3] [--port 8000]
//   [--base-port 8001] [--peer-base-port 9001] [--data-root data] [--host 127.0.0.1]
// A port of 0 picks free ports. CLUSTER_SECRET is used if set, else one is drawn.
// ADMIN_TOKEN (or ADMIN_TOKEN_FILE) is used if set, else one is drawn and printed.
// Both reach the replicas in their environment, never on a command line.
// Prints one line once every replica serves (caught up with its peers): the shared
// address, and each replica's own address and data folder; a parent that gave it an
// IPC channel gets the same as one message (test/harness/readySignal.ts). The
// replicas' own log lines (pino JSON, warnings and up by default) go to the same output.
import cluster, { type Worker } from "node:cluster";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { readAdminToken } from "../node/config.js";
import type { ServingMessage } from "../node/main.js";
import { freePort } from "../test/harness/net/freePort.js";
import type { ClusterServingMessage } from "../test/harness/readySignal.js";

const { values } = parseArgs({
  options: {
    replicas: { type: "string", default: "3" },
    port: { type: "string", default: "8000" },
    "base-port": { type: "string", default: "8001" },
    "peer-base-port": { type: "string", default: "9001" },
    "data-root": { type: "string", default: "data" },
    host: { type: "string", default: "127.0.0.1" },
  },
});
const replicaCount = Number(values.replicas);
if (!Number.isInteger(replicaCount) || replicaCount < 1 || replicaCount > 16) throw new Error("--replicas must be 1..16");
/**
 * A worker that dies is started again on the same data folder after a pause: short
 * at first (a kill -9 costs little), doubling while it dies before serving (a crash
 * loop does not spin), back to the first once it serves.
 */
const restartPauseMs = { first: 50, most: 5_000 };

async function portsFrom(base: number, host: string): Promise<number[]> {
  const ports: number[] = [];
  for (let index = 0; index < replicaCount; index++) ports.push(base === 0 ? await freePort(host) : base + index);
  return ports;
}

const host = values.host;
const sharedPort = Number(values.port) === 0 ? await freePort(host) : Number(values.port);
const ownPorts = await portsFrom(Number(values["base-port"]), host);
const peerPorts = await portsFrom(Number(values["peer-base-port"]), host);
const replicaIds = ownPorts.map((_, index) => `r${index + 1}`);
const dataDirs = replicaIds.map((id) => `${values["data-root"]}/${id}`);
const peers = replicaIds.map((id, index) => `${id}=${host}:${peerPorts[index]}`).join(",");
const secret = process.env.CLUSTER_SECRET ?? randomBytes(24).toString("hex");
// Checked here, so a bad token stops the launcher instead of every replica over and over.
const adminTokenGiven = readAdminToken(process.env.ADMIN_TOKEN_FILE, process.env.ADMIN_TOKEN);
const adminToken = adminTokenGiven ?? randomBytes(24).toString("hex");
if (adminTokenGiven === undefined) console.log(`admin token (drawn for this start; set ADMIN_TOKEN to choose one): ${adminToken}`);

cluster.setupPrimary({ exec: fileURLToPath(new URL("../node/main.js", import.meta.url)), args: [] });
const workers = new Map<Worker, number>();
let stopping = false;
/** Replicas that served since the launcher started; the cluster line is printed when all have. */
const served = new Set<number>();
let announced = false;
const restartPauses = replicaIds.map(() => restartPauseMs.first);

function startReplica(index: number): void {
  const worker = cluster.fork({
    REPLICA_ID: replicaIds[index],
    HOST: host,
    PORT: String(ownPorts[index]),
    SHARED_PORT: String(sharedPort),
    PEER_PORT: String(peerPorts[index]),
    PEERS: peers,
    CLUSTER_SECRET: secret,
    ADMIN_TOKEN: adminToken,
    DATA_DIR: dataDirs[index],
  });
  workers.set(worker, index);
  // Each replica says when it serves (caught up with its peers, shared port open).
  worker.on("message", (message: ServingMessage) => {
    if (message?.type !== "serving") return;
    restartPauses[index] = restartPauseMs.first;
    if (announced) {
      console.log(`replica ${message.replicaId} serving again at http://localhost:${message.port} (incarnation ${message.incarnation})`);
      return;
    }
    served.add(index);
    if (served.size < replicaCount) return;
    announced = true;
    const list = replicaIds.map((id, i) => `${id} http://localhost:${ownPorts[i]} ${dataDirs[i]}`).join(", ");
    console.log(`cluster of ${replicaCount} replicas serving http://localhost:${sharedPort} (${list}); each also serves /dashboard, /metrics, /ready`);
    const clusterServing: ClusterServingMessage = {
      type: "cluster-serving",
      port: sharedPort,
      replicas: replicaIds.map((replicaId, i) => ({ replicaId, port: ownPorts[i]! })),
    };
    process.send?.(clusterServing);
  });
  worker.on("exit", (code, signal) => {
    workers.delete(worker);
    if (stopping) return;
    console.error(`replica ${replicaIds[index]} exited (${signal ?? code}); starting it again`);
    const pause = restartPauses[index]!;
    restartPauses[index] = Math.min(pause * 2, restartPauseMs.most);
    setTimeout(() => startReplica(index), pause);
  });
}

for (let index = 0; index < replicaCount; index++) startReplica(index);

function stop(): void {
  if (stopping) return;
  stopping = true;
  for (const worker of workers.keys()) worker.process.kill("SIGTERM");
  const check = setInterval(() => {
    if (workers.size === 0) {
      clearInterval(check);
      process.exit(0);
    }
  }, 50);
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
