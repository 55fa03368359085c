// The operator's command line (scripts/clusterCli.ts) against a real cluster: status
// as a table that matches /cluster, admin commands refused without the token, a
// release refused for a live actor, and leave with the token retiring the replica.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { environmentWithoutAdminToken } from "../support/adminToken.js";
import { LocalCluster, clusterView } from "../support/localCluster.js";
import { ReplicaFleet } from "../support/replicaProcess.js";

const cli = fileURLToPath(new URL("../../dist/scripts/clusterCli.js", import.meta.url));

async function runCli(args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [cli, ...args], { env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe("npm run cluster", () => {
  const fleet = new ReplicaFleet();
  afterAll(() => fleet.cleanup());

  it("shows the cluster as a table, and runs admin commands only with the admin token", async () => {
    const cluster = await LocalCluster.start(fleet, 2);
    const [first, second] = [cluster.member(0), cluster.member(1)];
    const bare = environmentWithoutAdminToken();
    const withToken = { ...bare, ADMIN_TOKEN: cluster.adminToken };

    const status = await runCli(["status", "--url", first.url], bare);
    expect([status.code, status.stderr]).toEqual([0, ""]);
    const view = await clusterView(first);
    expect(status.stdout).toContain(`replica r1 (${view.actor})`);
    for (const member of view.members) expect(status.stdout).toMatch(new RegExp(`${member.replicaId}.*${member.state}.*${member.actor.replace("/", "\\/")}`));
    expect(status.stdout).toMatch(/r2\s+yes\s+no\s+0/);

    expect((await runCli(["leave", "--url", second.url], bare)).code).toBe(2);
    const wrongToken = await runCli(["leave", "--url", second.url], { ...bare, ADMIN_TOKEN: "0123456789abcdef0123" });
    expect([wrongToken.code, wrongToken.stderr]).toEqual([1, expect.stringContaining("401")]);
    const live = await runCli(["release", view.actor, "--url", second.url], withToken);
    expect([live.code, live.stderr]).toEqual([1, expect.stringContaining("400")]);
    const left = await runCli(["leave", "--url", second.url], withToken);
    expect(left.code).toBe(0);
    expect(JSON.parse(left.stdout)).toMatchObject({ state: "retired" });
    expect((await runCli(["status", "--url", "http://127.0.0.1:9"], bare)).code).toBe(1);
  });
});
