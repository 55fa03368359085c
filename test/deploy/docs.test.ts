// The README and docs/ link only to files inside the repository, and every link
// (and every #section in it) leads somewhere.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { repositoryRoot } from "./deployFiles.js";

const documents = [
  "README.md",
  "BENCHMARKS.md",
  ...readdirSync(join(repositoryRoot, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => `docs/${name}`),
];

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, "")
    .replace(/ /g, "-");
}

function anchorsIn(path: string): Set<string> {
  const text = readFileSync(path, "utf8").replace(/```[\s\S]*?```/g, "");
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((match) => anchorOf(match[1] ?? "")));
}

describe("README.md and docs/", () => {
  it.each(documents)("%s links only to files and sections that exist in the repository", (document) => {
    const path = join(repositoryRoot, document);
    const text = readFileSync(path, "utf8").replace(/```[\s\S]*?```/g, "");
    const broken: string[] = [];
    for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = match[1] ?? "";
      if (/^[a-z]+:/.test(target)) continue; // http:, https:, mailto:
      const [file = "", anchor] = target.split("#");
      const targetPath = file === "" ? path : join(dirname(path), file);
      if (relative(repositoryRoot, targetPath).startsWith("..") || !existsSync(targetPath)) {
        broken.push(`${target}: no such file in the repository`);
      } else if (anchor !== undefined && !anchorsIn(targetPath).has(anchor)) {
        broken.push(`${target}: no such section`);
      }
    }
    expect(broken).toEqual([]);
    expect(text).not.toMatch(/\.\.\/shared\//);
  });
});
