// Entry point of one replica process.
import { buildApp } from "../api/app.js";
import { readConfig } from "./config.js";
import { Replica } from "./replica.js";

const config = readConfig(process.argv.slice(2), process.env);
const replica = await Replica.open(config.replicaId, config.dataDir, (error) => {
  // Memory is now ahead of disk: stop rather than answer from a state a restart loses.
  console.error("fatal: a LevelDB write failed", error);
  process.exit(1);
});
const app = buildApp(replica, { logLevel: config.logLevel });
await app.listen({ host: config.host, port: config.port });
console.log(`replica ${config.replicaId} (incarnation ${replica.identity.incarnation}) serving http://localhost:${(app.server.address() as { port: number }).port} from ${config.dataDir}`);

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`replica ${config.replicaId}: ${signal}, stopping`);
  await app.close();
  await replica.close();
  process.exit(0);
}
process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));
