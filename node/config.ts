// Replica settings from flags, then environment variables, then defaults.
import { parseArgs } from "node:util";

export interface ReplicaConfig {
  readonly replicaId: string;
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly logLevel: string;
}

const replicaIdPattern = /^[A-Za-z0-9_-]{1,32}$/;

export function readConfig(argv: string[], env: NodeJS.ProcessEnv): ReplicaConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      "replica-id": { type: "string" },
      host: { type: "string" },
      port: { type: "string" },
      "data-dir": { type: "string" },
      "log-level": { type: "string" },
    },
    strict: true,
  });
  const replicaId = values["replica-id"] ?? env.REPLICA_ID ?? "r1";
  if (!replicaIdPattern.test(replicaId)) throw new Error(`replica id must match ${replicaIdPattern}, got "${replicaId}"`);
  return {
    replicaId,
    host: values.host ?? env.HOST ?? "0.0.0.0",
    port: readPort(values.port ?? env.PORT ?? "8000"),
    dataDir: values["data-dir"] ?? env.DATA_DIR ?? `data/${replicaId}`,
    logLevel: values["log-level"] ?? env.LOG_LEVEL ?? "warn",
  };
}

function readPort(text: string): number {
  const port = Number(text);
  if (!/^[0-9]+$/.test(text) || port > 65535) throw new Error(`port must be an integer in 0..65535, got "${text}"`);
  return port;
}
