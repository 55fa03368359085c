import type { FastifyPluginCallback } from "fastify";
import { isRefusal } from "../crdt/shopState.js";
import type { Replica } from "../node/replica.js";
import { adminAuth } from "./adminAuth.js";
import { sendRefusal } from "./answers.js";

interface ClusterRoutesOptions {
  readonly replica: Replica;
  /** What the writes require; undefined closes them. */
  readonly adminToken: string | undefined;
}

/** The cluster's view (read by anyone) and the admin routes (every other method: admin token only). */
export const clusterRoutes: FastifyPluginCallback<ClusterRoutesOptions> = (app, { replica, adminToken }, done) => {
  // Before any route: every write in this group, present or future, needs the admin token.
  app.addHook("onRequest", adminAuth(adminToken));

  /** This replica's view of the cluster: its links, their lag, the members. */
  app.get("/", async () => replica.status());

  /** Leave for good: hand every right and order token to the others, then retire. */
  app.post("/leave", async (_request, reply) => {
    const report = await replica.leave();
    return isRefusal(report) ? sendRefusal(reply, report) : report;
  });
  /**
   * Release the rights of an incarnation that lost its disk, or of a member gone for
   * good, to the active members (docs/OPERATIONS.md: only the operator knows it is safe).
   */
  app.post<{ Params: { actor: string } }>(
    "/release/:actor",
    { schema: { params: { type: "object", properties: { actor: { type: "string", minLength: 3, maxLength: 200 } }, required: ["actor"] } } },
    async (request, reply) => {
      const report = await replica.release(request.params.actor);
      return isRefusal(report) ? sendRefusal(reply, report) : report;
    },
  );
  done();
};
