// Replica settings from flags, then environment variables, then defaults.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import type { PeerAddress } from "../cluster/transport.js";

export interface ReplicaConfig {
  readonly replicaId: string;
  readonly host: string;
  /** This replica's own HTTP port. */
  readonly port: number;
  /** A port shared by all replicas of a local cluster (Node's cluster module balances it), if any. */
  readonly sharedPort: number | undefined;
  readonly peerPort: number;
  readonly peers: readonly PeerAddress[];
  /** host:port of running members' peer ports: a replica not in `peers` joins through them. */
  readonly join: readonly string[];
  /** The host name peers and clients reach this replica by, written into the membership document. */
  readonly advertiseHost: string;
  readonly clusterSecret: string | undefined;
  /** The token that admin routes (writes under /cluster) require; none configured closes them. */
  readonly adminToken: string | undefined;
  readonly dataDir: string;
  readonly ackWaitMsMax: number;
  readonly rightsWaitMsMax: number;
  /** How long a starting replica waits to catch up with its peers before it serves anyway. */
  readonly catchUpMsMax: number;
  readonly logLevel: string;
}

const replicaIdPattern = /^[A-Za-z0-9_-]{1,32}$/;
export const clusterSecretLengthMin = 16;
export const adminTokenLengthMin = 16;
export const adminTokenLengthMax = 1024;
/** Visible ASCII without spaces: sent as `Authorization: Bearer <token>`. */
const adminTokenPattern = /^[\x21-\x7e]+$/;

/** What `node dist/node/main.js --help` prints (README, "Configuration", has the table). */
export const configUsage = `usage: node dist/node/main.js [flags]   (each flag also has an environment variable)
  --replica-id ID          REPLICA_ID           this replica's name (default r1)
  --host ADDRESS           HOST                 address to listen on (default 0.0.0.0)
  --port N                 PORT                 HTTP port (default 8000; 0 picks one)
  --shared-port N          SHARED_PORT          a second HTTP port shared by a local cluster
  --peer-port N            PEER_PORT            replication port (default HTTP port + 1000)
  --peers r1=h:p,r2=h:p    PEERS                the replicas' peer ports
  --join h:p[,h:p]         JOIN                 join a running cluster through a member's peer port
  --advertise-host NAME    ADVERTISE_HOST       host peers reach this replica by (default: its
                                                --peers entry, else --host, else the host name)
  --secret-file FILE       CLUSTER_SECRET_FILE  the cluster secret (or CLUSTER_SECRET); needed with peers
  --admin-token-file FILE  ADMIN_TOKEN_FILE     the admin token (or ADMIN_TOKEN); without one admin routes answer 401
  --data-dir DIR           DATA_DIR             LevelDB folder (default data/<replica-id>)
  --ack-wait-ms N          ACK_WAIT_MS          longest wait for a peer's ack (default 1000)
  --rights-wait-ms N       RIGHTS_WAIT_MS       longest wait for rights held by peers (default 2000)
  --catch-up-ms N          CATCH_UP_MS          longest catch-up with the peers at start (default 5000)
  --log-level LEVEL        LOG_LEVEL            log level (default warn)
  --help                                        this text`;

export function readConfig(argv: string[], env: NodeJS.ProcessEnv): ReplicaConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      "replica-id": { type: "string" },
      host: { type: "string" },
      port: { type: "string" },
      "shared-port": { type: "string" },
      "peer-port": { type: "string" },
      peers: { type: "string" },
      join: { type: "string" },
      "advertise-host": { type: "string" },
      "secret-file": { type: "string" },
      "admin-token-file": { type: "string" },
      "data-dir": { type: "string" },
      "ack-wait-ms": { type: "string" },
      "rights-wait-ms": { type: "string" },
      "catch-up-ms": { type: "string" },
      "log-level": { type: "string" },
    },
    strict: true,
  });
  const replicaId = values["replica-id"] ?? env.REPLICA_ID ?? "r1";
  if (!replicaIdPattern.test(replicaId)) throw new Error(`replica id must match ${replicaIdPattern}, got "${replicaId}"`);
  const port = readPort("port", values.port ?? env.PORT ?? "8000");
  const sharedPortText = values["shared-port"] ?? env.SHARED_PORT;
  const peersText = values.peers ?? env.PEERS ?? "";
  const peers = readPeers(peersText, replicaId);
  // A replica named in --peers founded the cluster: --join is for the others (one setting can serve a whole StatefulSet).
  const join = ownPeerHost(peersText, replicaId) === undefined ? readAddresses("join", values.join ?? env.JOIN ?? "") : [];
  const secretFile = values["secret-file"] ?? env.CLUSTER_SECRET_FILE;
  const clusterSecret = secretFile !== undefined ? readFileSync(secretFile, "utf8").trim() : env.CLUSTER_SECRET;
  if ((peers.length > 0 || join.length > 0) && (clusterSecret === undefined || clusterSecret.length < clusterSecretLengthMin)) {
    throw new Error(`a replica with peers needs a cluster secret of at least ${clusterSecretLengthMin} characters (CLUSTER_SECRET or --secret-file)`);
  }
  const host = values.host ?? env.HOST ?? "0.0.0.0";
  const adminToken = readAdminToken(values["admin-token-file"] ?? env.ADMIN_TOKEN_FILE, env.ADMIN_TOKEN);
  if (adminToken !== undefined && adminToken === clusterSecret) {
    throw new Error("the admin token must differ from the cluster secret: whoever holds the cluster secret may join the peer mesh");
  }
  return {
    replicaId,
    host,
    port,
    sharedPort: sharedPortText === undefined ? undefined : readPort("shared port", sharedPortText),
    peerPort: readPort("peer port", values["peer-port"] ?? env.PEER_PORT ?? String(port === 0 ? 0 : port + 1000)),
    peers,
    join,
    advertiseHost: values["advertise-host"] ?? env.ADVERTISE_HOST ?? ownPeerHost(peersText, replicaId) ?? (isWildcard(host) ? hostname() : host),
    clusterSecret,
    adminToken,
    dataDir: values["data-dir"] ?? env.DATA_DIR ?? `data/${replicaId}`,
    ackWaitMsMax: readMilliseconds("ack wait", values["ack-wait-ms"] ?? env.ACK_WAIT_MS ?? "1000"),
    rightsWaitMsMax: readMilliseconds("rights wait", values["rights-wait-ms"] ?? env.RIGHTS_WAIT_MS ?? "2000"),
    catchUpMsMax: readMilliseconds("catch-up wait", values["catch-up-ms"] ?? env.CATCH_UP_MS ?? "5000"),
    logLevel: values["log-level"] ?? env.LOG_LEVEL ?? "warn",
  };
}

/** The admin token from its file (which wins) or from ADMIN_TOKEN; undefined if neither is set. */
export function readAdminToken(tokenFile: string | undefined, tokenText: string | undefined): string | undefined {
  const source = tokenFile !== undefined ? `the admin token file ${tokenFile}` : "ADMIN_TOKEN";
  let token = tokenText;
  if (tokenFile !== undefined) {
    try {
      token = readFileSync(tokenFile, "utf8").trim();
    } catch (error) {
      throw new Error(`cannot read ${source} (--admin-token-file or ADMIN_TOKEN_FILE): ${(error as Error).message}`);
    }
  }
  if (token === undefined) return undefined;
  if (token.length < adminTokenLengthMin || token.length > adminTokenLengthMax) {
    throw new Error(`the admin token must have ${adminTokenLengthMin} to ${adminTokenLengthMax} characters, ${source} has ${token.length}`);
  }
  if (!adminTokenPattern.test(token)) {
    throw new Error(
      `the admin token may only hold visible ASCII characters without spaces (it is sent as "Authorization: Bearer <token>"); ${source} does not`,
    );
  }
  return token;
}

/** "r2=host:port,r3=host:port" */
export function readPeers(text: string, selfId: string): PeerAddress[] {
  const peers: PeerAddress[] = [];
  for (const part of text
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0)) {
    const match = /^([A-Za-z0-9_-]{1,32})=([^\s=]+):(\d{1,5})$/.exec(part);
    if (match === null) throw new Error(`a peer must be written id=host:port, got "${part}"`);
    const [, replicaId, host, port] = match as unknown as [string, string, string, string];
    if (replicaId === selfId) continue;
    if (peers.some((peer) => peer.replicaId === replicaId)) throw new Error(`peer ${replicaId} is listed twice`);
    peers.push({ replicaId, address: `${host}:${readPort("peer port", port)}` });
  }
  return peers;
}

/** "host:port,host:port" */
function readAddresses(what: string, text: string): string[] {
  const addresses = text
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
  for (const address of addresses) {
    const match = /^([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):(\d{1,5})$/.exec(address);
    if (match === null) throw new Error(`${what} takes host:port addresses, got "${address}"`);
    if (readPort(`${what} port`, match[2]!) === 0) throw new Error(`${what} needs a real port, got "${address}"`);
  }
  return addresses;
}

/** The host of this replica's own entry in --peers, if it lists itself. */
function ownPeerHost(peersText: string, selfId: string): string | undefined {
  const own = peersText.split(",").find((entry) => entry.trim().startsWith(`${selfId}=`));
  return own === undefined
    ? undefined
    : own
        .trim()
        .slice(selfId.length + 1)
        .replace(/:\d+$/, "");
}

function isWildcard(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "[::]";
}

function readPort(what: string, text: string): number {
  const port = Number(text);
  if (!/^[0-9]{1,5}$/.test(text) || port > 65535) throw new Error(`${what} must be an integer in 0..65535, got "${text}"`);
  return port;
}

function readMilliseconds(what: string, text: string): number {
  const milliseconds = Number(text);
  if (!/^[0-9]{1,7}$/.test(text)) throw new Error(`${what} must be a whole number of milliseconds, got "${text}"`);
  return milliseconds;
}
