import type { FastifyPluginCallback } from "fastify";
import type { Replica } from "../node/replica.js";

/** GET /cluster: this replica's view of the cluster, its links and their lag. */
export function clusterRoutes(replica: Replica): FastifyPluginCallback {
  return (app, _options, done) => {
    app.get("/", async () => replica.status());
    done();
  };
}
