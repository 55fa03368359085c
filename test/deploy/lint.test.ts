// `npm run lint` as a test, so CI's "N passed, N failed" counts it: ESLint with the
// repository's eslint.config.js over every file it covers, and no problem left.
import { relative } from "node:path";
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
});
