// `npm run lint` as a test, so CI's "N passed, N failed" counts it: ESLint with the
// repository's eslint.config.js over every file it covers, and no problem left; and
// every file formatted as .prettierrc.json says.
import { execFile } from "node:child_process";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { ESLint } from "eslint";
import { describe, expect, it } from "vitest";
import { repositoryRoot } from "./deployFiles.js";

describe("lint", () => {
  it("ESLint (eslint.config.js) finds no problem in the repository", async () => {
    const eslint = new ESLint({ cwd: repositoryRoot });
    const results = await eslint.lintFiles(["."]);
    const problems = results.flatMap((result) =>
      result.messages.map((message) => `${relative(repositoryRoot, result.filePath)}:${message.line} ${message.ruleId ?? "parse"}: ${message.message}`),
    );
    expect(problems).toEqual([]);
  });

  it("Prettier (.prettierrc.json) would change no file", async () => {
    const prettier = join(repositoryRoot, "node_modules", ".bin", "prettier");
    const outcome = await promisify(execFile)(prettier, ["--check", ".", "--log-level", "warn"], { cwd: repositoryRoot }).then(
      () => "formatted",
      (error: { stdout?: string; stderr?: string }) => `${error.stdout ?? ""}${error.stderr ?? ""}`,
    );
    expect(outcome).toBe("formatted");
  });
});
