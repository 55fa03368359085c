// Admin routes (every write under /cluster, now POST /cluster/leave) need the admin
// token: anyone else who reaches the HTTP port gets 401 and changes nothing, and a
// replica without a configured token keeps them closed. GET /cluster stays open and
// shows no secret (DESIGN.md, "Threat model").
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeAdminToken } from "../support/adminToken.js";
import { LocalCluster, clusterView, waitFor } from "../support/localCluster.js";
import { type HttpAnswer, type ReplicaProcess, ReplicaFleet, jsonOf } from "../support/replicaProcess.js";

function expectUnauthorized(answer: HttpAnswer, what: string): string {
  expect([what, answer.status]).toEqual([what, 401]);
  expect(answer.headers["www-authenticate"], what).toMatch(/^Bearer\b/);
  const body = jsonOf(answer) as { error: unknown };
  expect(Object.keys(body), what).toEqual(["error"]);
  expect(typeof body.error, what).toBe("string");
  return body.error as string;
}

/** Each replica's view of every member's state, e.g. { r1: { r1: "active", r2: "active" }, ... }. */
async function statesSeen(cluster: LocalCluster): Promise<Record<string, Record<string, string>>> {
  const views = await Promise.all(cluster.members.map((member) => clusterView(member.process)));
  return Object.fromEntries(views.map((view) => [view.replicaId, Object.fromEntries(view.members.map((member) => [member.replicaId, member.state]))]));
}

/** Still serving writes: a replica that began to leave would refuse them (409) or hand its rights away. */
async function expectServingWrites(replica: ReplicaProcess): Promise<void> {
  expect((await replica.post("/stock/item/create/1")).status).toBe(200);
}

describe("admin routes on a replica with an admin token", () => {
  const fleet = new ReplicaFleet();
  let cluster: LocalCluster;
  let clusterSecret: string;
  const allActive = { r1: { r1: "active", r2: "active" }, r2: { r1: "active", r2: "active" } };

  beforeAll(async () => {
    cluster = await LocalCluster.start(fleet, 2);
    clusterSecret = (await readFile(cluster.secretFile, "utf8")).trim();
    // Both members announced themselves before anything is checked.
    await waitFor(async () => {
      const states = await statesSeen(cluster);
      return states.r1?.r2 === "active" && states.r2?.r1 === "active" ? true : undefined;
    });
  });
  afterAll(() => fleet.cleanup());

  it("shows anyone GET /cluster, without a secret, but refuses an anonymous leave with 401, and the replica stays active", async () => {
    for (const replica of [cluster.member(0), cluster.member(1)]) {
      const answer = await replica.get("/cluster");
      expect(answer.status).toBe(200);
      for (const secret of [cluster.adminToken, clusterSecret]) {
        expect(answer.text).not.toContain(secret);
        expect(answer.text).not.toContain(secret.slice(0, secret.length / 2));
      }
    }
    const message = expectUnauthorized(await cluster.member(1).post("/cluster/leave"), "no Authorization header");
    expect(message).toMatch(/Authorization: Bearer/);
    // Other spellings of the path reach the same guarded route or none.
    for (const path of ["/cluster/leave/", "/cluster//leave", "/cluster/%6Ceave", "/Cluster/leave", "/cluster/leave?force=1"]) {
      expect([401, 404], path).toContain((await cluster.member(1).post(path)).status);
    }
    expect(await statesSeen(cluster)).toEqual(allActive);
    await expectServingWrites(cluster.member(1));
  });

  it("refuses a wrong or malformed token with 401, and the replica stays active", async () => {
    const token = cluster.adminToken;
    const attempts: Record<string, string> = {
      "another token of the same length": `Bearer ${"0".repeat(token.length)}`,
      "the token with a character more": `Bearer ${token}0`,
      "the token without its last character": `Bearer ${token.slice(0, -1)}`,
      "the cluster secret": `Bearer ${clusterSecret}`,
      "the token without a scheme": token,
      "the token as Basic credentials": `Basic ${Buffer.from(`admin:${token}`).toString("base64")}`,
      "the scheme without a token": "Bearer",
      "the token with a second word": `Bearer ${token} ${token}`,
    };
    for (const [what, authorization] of Object.entries(attempts)) {
      expectUnauthorized(await cluster.member(1).post("/cluster/leave", { headers: { authorization } }), what);
    }
    expect(await statesSeen(cluster)).toEqual(allActive);
    await expectServingWrites(cluster.member(1));
  });

  it("lets the right token through: the replica leaves for good", async () => {
    const answer = await cluster.member(1).post("/cluster/leave", { headers: cluster.adminHeaders });
    expect(answer.status).toBe(200);
    expect(jsonOf(answer)).toMatchObject({ state: "retired", waitingFor: [] });
    await waitFor(async () => ((await statesSeen(cluster)).r1?.r2 === "retired" ? true : undefined));
    const view = await cluster.member(1).get("/cluster");
    for (const secret of [cluster.adminToken, clusterSecret]) expect(view.text).not.toContain(secret);
  });
});

describe("admin routes on a replica alone", () => {
  const fleet = new ReplicaFleet();
  afterAll(() => fleet.cleanup());

  it("are closed when no admin token is configured, whatever token is sent", async () => {
    const replica = await fleet.start();
    const anonymous = expectUnauthorized(await replica.post("/cluster/leave"), "no Authorization header");
    expect(anonymous).toMatch(/ADMIN_TOKEN/);
    for (const authorization of ["Bearer ", `Bearer ${"a".repeat(48)}`, "Bearer undefined", "Bearer null"]) {
      const message = expectUnauthorized(await replica.post("/cluster/leave", { headers: { authorization } }), authorization);
      expect(message).toMatch(/ADMIN_TOKEN/);
    }
    expect((await replica.get("/cluster")).status).toBe(200);
    await expectServingWrites(replica);
  });

  it("take the token from --admin-token-file, with the scheme name in any case", async () => {
    const admin = await writeAdminToken(fleet);
    const replica = await fleet.start({ extraArgs: ["--admin-token-file", admin.file] });
    expectUnauthorized(await replica.post("/cluster/leave"), "no Authorization header");
    // Past the check, a replica without peers refuses to leave (409): nobody could take its rights.
    for (const scheme of ["Bearer", "bearer", "BEARER"]) {
      const answer = await replica.post("/cluster/leave", { headers: { authorization: `${scheme} ${admin.token}` } });
      expect([scheme, answer.status]).toEqual([scheme, 409]);
    }
  });
});
