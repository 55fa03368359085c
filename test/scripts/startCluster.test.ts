// `npm start`'s launcher gives every replica the admin token: ADMIN_TOKEN if set,
// else a fresh one it prints on one line. The token travels in the environment,
// never on a command line that `ps` shows.
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ClusterProcess } from "../support/clusterProcess.js";
import { waitFor } from "../support/localCluster.js";

const tokenLinePattern = /^admin token \(drawn for this start; set ADMIN_TOKEN to choose one\): ([0-9a-f]{48})$/m;

async function leave(replicaUrl: string, token?: string): Promise<number> {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  return (await fetch(`${replicaUrl}/cluster/leave`, { method: "POST", headers, signal: AbortSignal.timeout(20_000) })).status;
}

/** Until the replica at `replicaUrl` sees every one of `replicaIds` as an active member. */
async function waitForActiveMembers(replicaUrl: string, replicaIds: readonly string[]): Promise<void> {
  await waitFor(async () => {
    const view = (await (await fetch(`${replicaUrl}/cluster`)).json()) as { members: { replicaId: string; state: string }[] };
    return replicaIds.every((id) => view.members.some((member) => member.replicaId === id && member.state === "active")) ? true : undefined;
  });
}

/** Every process's command line on this machine (Linux /proc), as `ps` shows them. */
async function commandLines(): Promise<string[]> {
  const pids = (await readdir("/proc")).filter((name) => /^\d+$/.test(name));
  const lines = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")));
  return lines.map((line) => line.replaceAll("\0", " "));
}

describe("the local cluster launcher and the admin token", () => {
  const started: { cluster: ClusterProcess; dataRoot: string }[] = [];
  afterEach(async () => {
    for (const { cluster, dataRoot } of started.splice(0)) {
      await cluster.stop();
      await rm(dataRoot, { recursive: true, force: true });
    }
  });

  async function startCluster(replicas: number, env: NodeJS.ProcessEnv = {}): Promise<ClusterProcess> {
    const dataRoot = await mkdtemp(join(tmpdir(), "escrow-shop-launcher-"));
    const cluster = await ClusterProcess.start(replicas, dataRoot, env);
    started.push({ cluster, dataRoot });
    return cluster;
  }

  it("draws a token, prints it once, and every replica takes it (and nothing else)", async () => {
    const cluster = await startCluster(2);
    const printed = tokenLinePattern.exec(cluster.output());
    expect(printed, cluster.output()).not.toBeNull();
    const token = printed![1]!;
    expect(cluster.output().split(token).length - 1).toBe(1);
    expect((await commandLines()).filter((line) => line.includes(token))).toEqual([]);
    const [first, second] = cluster.replicaUrls as [string, string];
    expect(await leave(first)).toBe(401);
    expect(await leave(first, "0".repeat(48))).toBe(401);
    await waitForActiveMembers(second, ["r1", "r2"]);
    expect(await leave(second, token)).toBe(200);
    // The first replica took the token too: past the check, it has no active peer left to leave to.
    expect(await leave(first, token)).toBe(409);
  });

  it("uses ADMIN_TOKEN when it is set, and prints no token", async () => {
    const token = "launcher-test-admin-token-0123456789";
    const cluster = await startCluster(1, { ADMIN_TOKEN: token });
    expect(cluster.output()).not.toMatch(/admin token/);
    const [replica] = cluster.replicaUrls as [string];
    expect(await leave(replica)).toBe(401);
    // Past the check, a replica alone refuses to leave (409).
    expect(await leave(replica, token)).toBe(409);
  });
});
