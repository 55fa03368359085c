// Process tests start compiled code under dist/: before they run, dist/ must be
// the compiled form of the sources as they are now. When any .ts file is newer
// than its output (or has none), this compiles first, as `npm run build` does; a
// type error fails the run with tsc's report. `npm test` builds first, so this
// finds dist/ fresh there and compiles nothing.
import { execFileSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const repositoryRoot = fileURLToPath(new URL("..", import.meta.url));
/** What tsconfig.json compiles (its "include"). */
const sourceFolders = ["crdt", "node", "api", "cluster", "scripts", "test"];
const sourceFiles = ["vitest.config.ts"];

function sourcesOf(folder: string): string[] {
  const entries = readdirSync(join(repositoryRoot, folder), { recursive: true, encoding: "utf8" });
  return entries.filter((entry) => entry.endsWith(".ts") && !entry.endsWith(".d.ts")).map((entry) => join(folder, entry));
}

/** A source whose dist/ output is missing or older than it, or undefined if dist/ is fresh. */
function staleSource(): string | undefined {
  for (const source of [...sourceFolders.flatMap(sourcesOf), ...sourceFiles]) {
    const output = statSync(join(repositoryRoot, "dist", source.replace(/\.ts$/, ".js")), { throwIfNoEntry: false });
    if (output === undefined || statSync(join(repositoryRoot, source)).mtimeMs > output.mtimeMs) return source;
  }
  return undefined;
}

export default function setup(): void {
  const stale = staleSource();
  if (stale === undefined) return;
  console.log(`dist/ is older than ${stale}: compiling (tsc -p tsconfig.json) before the process tests`);
  try {
    // --noEmitOnError: after a type error dist/ stays stale, so the next run reports it again.
    execFileSync(process.execPath, [join(repositoryRoot, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json", "--noEmitOnError"], {
      cwd: repositoryRoot,
      encoding: "utf8",
      stdio: "pipe",
    });
  } catch (error) {
    const output = (error as { stdout?: string }).stdout ?? String(error);
    throw new Error(`dist/ is stale (${stale} is newer) and does not compile, so the process tests cannot run:\n${output}`);
  }
}
