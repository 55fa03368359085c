// What the deploy tests share: where the repository is, and a check that a real
// command is installed (a missing one fails the test: nothing here is skipped).
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export const repositoryRoot = fileURLToPath(new URL("../..", import.meta.url));

/** Throws a clear message unless `command --version`-like `probeArgs` runs. */
export function requireCommand(command: string, probeArgs: readonly string[], aptPackage: string): void {
  const probe = spawnSync(command, probeArgs, { encoding: "utf8" });
  if (probe.error !== undefined) {
    throw new Error(`${command} is not installed (${probe.error.message}): apt-get install -y ${aptPackage} (.ci/run does)`);
  }
}
