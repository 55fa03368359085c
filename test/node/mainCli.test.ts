// The replica's command line: --help, and one clear line (not a stack trace) for a
// bad flag or setting, with a status a supervisor can tell from a crash.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const main = join(import.meta.dirname, "../../dist/node/main.js");
const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [main, ...args], { encoding: "utf8", env: { PATH: process.env.PATH, ...env }, timeout: 20_000 });

describe("node dist/node/main.js", () => {
  it("--help prints the flags and their environment variables, and exits 0", () => {
    const result = run(["--help"]);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^usage: node dist\/node\/main\.js/);
    for (const flag of ["--replica-id", "--peers", "--secret-file", "--admin-token-file", "--catch-up-ms"]) expect(result.stdout).toContain(flag);
  });

  it("an unknown flag or a bad setting is one error line and the usage, exit 2, no stack trace", () => {
    for (const [args, env, message] of [
      [["--bogus"], {}, "error: Unknown option '--bogus'"],
      [[], { REPLICA_ID: "bad id!" }, "error: replica id must match"],
      [["--peers", "r2=127.0.0.1:1"], {}, "error: a replica with peers needs a cluster secret"],
    ] as const) {
      const result = run([...args], env);
      expect(result.status, result.stderr).toBe(2);
      expect(result.stderr.split("\n")[0]).toContain(message);
      expect(result.stderr).toContain("usage:");
      expect(result.stderr).not.toMatch(/^\s+at /m);
    }
  });
});
