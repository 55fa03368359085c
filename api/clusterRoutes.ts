import type { FastifyPluginCallback } from "fastify";
import { isRefusal } from "../crdt/shopState.js";
import type { Replica } from "../node/replica.js";
import { sendRefusal } from "./answers.js";

export function clusterRoutes(replica: Replica): FastifyPluginCallback {
  return (app, _options, done) => {
    /** This replica's view of the cluster: its links, their lag, the members. */
    app.get("/", async () => replica.status());

    /** Leave for good: hand every right and order token to the others, then retire. */
    app.post("/leave", async (_request, reply) => {
      const report = await replica.leave();
      return isRefusal(report) ? sendRefusal(reply, report) : report;
    });
    done();
  };
}
