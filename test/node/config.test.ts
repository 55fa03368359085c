// The admin token setting: --admin-token-file, ADMIN_TOKEN_FILE, ADMIN_TOKEN; a bad
// token stops the replica at start with a message that says what is wrong.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readConfig } from "../../node/config.js";

describe("the admin token setting", () => {
  let folder: string;
  const token = "a".repeat(16);
  const otherToken = "b".repeat(40);
  const secret = "s".repeat(32);
  const peers = "r1=127.0.0.1:9001,r2=127.0.0.1:9002";

  async function tokenFile(name: string, text: string): Promise<string> {
    const file = join(folder, name);
    await writeFile(file, text);
    return file;
  }

  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), "escrow-shop-config-"));
  });
  afterAll(() => rm(folder, { recursive: true, force: true }));

  it("is unset by default: admin routes stay closed", () => {
    expect(readConfig([], {})).toHaveProperty("adminToken", undefined);
    expect(readConfig(["--peers", peers], { CLUSTER_SECRET: secret })).toHaveProperty("adminToken", undefined);
  });

  it("comes from ADMIN_TOKEN, or from a file (trimmed), the flag before the environment", async () => {
    expect(readConfig([], { ADMIN_TOKEN: token }).adminToken).toBe(token);
    const file = await tokenFile("token", `  ${otherToken}\n`);
    expect(readConfig([], { ADMIN_TOKEN_FILE: file }).adminToken).toBe(otherToken);
    expect(readConfig(["--admin-token-file", file], {}).adminToken).toBe(otherToken);
    expect(readConfig(["--admin-token-file", file], { ADMIN_TOKEN: token }).adminToken).toBe(otherToken);
    expect(readConfig([], { ADMIN_TOKEN_FILE: file, ADMIN_TOKEN: token }).adminToken).toBe(otherToken);
  });

  it("refuses a token shorter than 16 characters, naming where it came from", async () => {
    expect(() => readConfig([], { ADMIN_TOKEN: "a".repeat(15) })).toThrow(/admin token must have 16 to 1024 characters, ADMIN_TOKEN has 15/);
    expect(() => readConfig([], { ADMIN_TOKEN: "" })).toThrow(/admin token must have 16 .* has 0/);
    const short = await tokenFile("short", "short-token\n");
    expect(() => readConfig(["--admin-token-file", short], {})).toThrow(new RegExp(`admin token must have 16 .*file ${short} has 11`));
    const empty = await tokenFile("empty", "\n");
    expect(() => readConfig([], { ADMIN_TOKEN_FILE: empty })).toThrow(/admin token must have 16 .* has 0/);
  });

  it("refuses a token that is too long, holds spaces or other characters a Bearer header cannot carry", () => {
    expect(() => readConfig([], { ADMIN_TOKEN: "a".repeat(1025) })).toThrow(/16 to 1024 characters/);
    for (const bad of ["sixteen chars ok", "tab\tinside-a-token", "non-ascii-tokenü!", "line\nbreak-token!"]) {
      expect(() => readConfig([], { ADMIN_TOKEN: bad }), JSON.stringify(bad)).toThrow(/visible ASCII characters without spaces/);
    }
  });

  it("refuses a token file that cannot be read, naming the file", () => {
    const missing = join(folder, "missing");
    expect(() => readConfig(["--admin-token-file", missing], {})).toThrow(new RegExp(`cannot read the admin token file ${missing}`));
  });

  it("refuses the cluster secret as admin token", () => {
    expect(() => readConfig(["--peers", peers], { CLUSTER_SECRET: secret, ADMIN_TOKEN: secret })).toThrow(/admin token must differ from the cluster secret/);
  });
});

describe("joining and the advertised host", () => {
  const secret = "s".repeat(32);
  const peers = "r1=shop-0.peers:9000,r2=shop-1.peers:9000";

  it("--join (or JOIN) names seed addresses; a replica named in --peers founded the cluster and ignores it", () => {
    expect(readConfig(["--replica-id", "r4", "--join", "10.0.0.1:9001, seed.example:9002"], { CLUSTER_SECRET: secret }).join).toEqual([
      "10.0.0.1:9001",
      "seed.example:9002",
    ]);
    expect(readConfig(["--replica-id", "r4", "--peers", peers], { CLUSTER_SECRET: secret, JOIN: "shop-0.peers:9000" }).join).toEqual(["shop-0.peers:9000"]);
    expect(readConfig(["--replica-id", "r1", "--peers", peers], { CLUSTER_SECRET: secret, JOIN: "shop-0.peers:9000" }).join).toEqual([]);
    expect(readConfig([], {}).join).toEqual([]);
  });

  it("refuses a join address without a port, with port 0, or without a cluster secret", () => {
    expect(() => readConfig(["--replica-id", "r4", "--join", "seed.example"], { CLUSTER_SECRET: secret })).toThrow(
      /join takes host:port addresses, got "seed.example"/,
    );
    expect(() => readConfig(["--replica-id", "r4", "--join", "seed.example:0"], { CLUSTER_SECRET: secret })).toThrow(/join needs a real port/);
    expect(() => readConfig(["--replica-id", "r4", "--join", "seed.example:9000"], {})).toThrow(/needs a cluster secret/);
  });

  it("advertises the flag, else its own --peers entry's host, else --host, else the machine's name for a wildcard --host", () => {
    expect(readConfig(["--advertise-host", "me.example", "--peers", peers, "--replica-id", "r1"], { CLUSTER_SECRET: secret }).advertiseHost).toBe("me.example");
    expect(readConfig(["--peers", peers, "--replica-id", "r2"], { CLUSTER_SECRET: secret }).advertiseHost).toBe("shop-1.peers");
    expect(readConfig(["--host", "127.0.0.1"], {}).advertiseHost).toBe("127.0.0.1");
    expect(readConfig(["--host", "0.0.0.0"], {}).advertiseHost).toBe(hostname());
    expect(readConfig([], { ADVERTISE_HOST: "from.env" }).advertiseHost).toBe("from.env");
  });
});
