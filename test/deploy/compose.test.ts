// docker-compose.yml as the real docker-compose reads it, with no environment set;
// the one-shot secrets command run for real; and what the Dockerfile builds (no
// Docker engine here: its build stage is redone by hand and its output checked).
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { readConfig } from "../../node/config.js";
import { repositoryRoot, requireCommand } from "./deployFiles.js";

interface ComposeService {
  readonly command?: string[];
  readonly working_dir?: string;
  readonly depends_on?: Record<string, { condition: string }>;
  readonly environment?: Record<string, string>;
  readonly volumes?: string[];
  readonly ports?: unknown[];
  readonly image?: string;
}
interface ComposeFile {
  readonly services: Record<string, ComposeService>;
  readonly volumes: Record<string, unknown>;
}

const replicaNames = ["r1", "r2", "r3"] as const;
const secretPattern = /^[0-9a-f]{48}$/;
const temporaryFolders: string[] = [];

afterAll(() => {
  for (const folder of temporaryFolders) rmSync(folder, { recursive: true, force: true });
});

function temporaryFolder(): string {
  const folder = mkdtempSync(join(tmpdir(), "deploy-test-"));
  temporaryFolders.push(folder);
  return folder;
}

/** `docker-compose config` in the repository, with nothing but PATH and HOME set. */
function composeConfig(): ComposeFile {
  requireCommand("docker-compose", ["version"], "docker-compose");
  const environment = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root" };
  const run = spawnSync("docker-compose", ["config"], { cwd: repositoryRoot, env: environment, encoding: "utf8" });
  expect(run.status, `docker-compose config failed:\n${run.stderr}`).toBe(0);
  return parse(run.stdout) as ComposeFile;
}

function service(compose: ComposeFile, name: string): ComposeService {
  const found = compose.services[name];
  if (found === undefined) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
}

/** The secrets service's shell script (`sh -c <script>`). */
function secretsScript(compose: ComposeFile): string {
  const command = service(compose, "secrets").command ?? [];
  expect(command.slice(0, 2)).toEqual(["sh", "-c"]);
  return command[2] ?? "";
}

function runSecretsScript(script: string, folder: string): void {
  const run = spawnSync("sh", ["-c", script], { cwd: folder, encoding: "utf8" });
  expect(run.status, `the secrets script failed:\n${run.stderr}`).toBe(0);
}

describe("docker-compose.yml", () => {
  const compose = composeConfig();

  it("is valid with no environment set, and the replicas wait for the one-shot secrets service", () => {
    expect(Object.keys(compose.services).sort()).toEqual(["gateway", "r1", "r2", "r3", "secrets"]);
    expect(Object.keys(compose.volumes).sort()).toEqual(["r1-data", "r2-data", "r3-data", "secrets"]);
    const secrets = service(compose, "secrets");
    expect(secrets.working_dir).toBe("/secrets");
    expect(secrets.volumes).toEqual(["secrets:/secrets:rw"]);
    for (const name of replicaNames) {
      const replica = service(compose, name);
      expect(replica.depends_on, name).toEqual({ secrets: { condition: "service_completed_successfully" } });
      expect(replica.image, name).toBe(secrets.image);
      const environment = replica.environment ?? {};
      expect(environment["REPLICA_ID"]).toBe(name);
      expect(environment["PEERS"]).toBe("r1=r1:9000,r2=r2:9000,r3=r3:9000");
      expect(environment["CLUSTER_SECRET_FILE"]).toBe("/secrets/cluster-secret");
      expect(environment["ADMIN_TOKEN_FILE"]).toBe("/secrets/admin-token");
      // Never a secret in the environment, so never a fixed default either.
      expect(
        Object.keys(environment).filter((key) => key === "CLUSTER_SECRET" || key === "ADMIN_TOKEN"),
        name,
      ).toEqual([]);
      expect(replica.volumes, name).toEqual([`${name}-data:/data:rw`, "secrets:/secrets:ro"]);
    }
    const gateway = service(compose, "gateway");
    expect(gateway.volumes).toEqual([`${join(repositoryRoot, "deploy/nginx.conf")}:/etc/nginx/nginx.conf:ro`]);
    expect(gateway.ports).toEqual([{ published: 8000, target: 8000 }]);
  });

  it("keeps the secrets script as written ($ is not interpolated by compose)", () => {
    const written = parse(readFileSync(join(repositoryRoot, "docker-compose.yml"), "utf8")) as ComposeFile;
    expect(secretsScript(compose)).toBe(secretsScript(written));
  });

  it("draws a random secret and token once, readable by their owner only, and keeps them", () => {
    const script = secretsScript(compose);
    const folder = temporaryFolder();
    runSecretsScript(script, folder);
    const read = (name: string) => readFileSync(join(folder, name), "utf8");
    const secret = read("cluster-secret");
    const token = read("admin-token");
    expect(secret).toMatch(secretPattern);
    expect(token).toMatch(secretPattern);
    expect(token).not.toBe(secret);
    for (const name of ["cluster-secret", "admin-token"]) expect(statSync(join(folder, name)).mode & 0o777, name).toBe(0o600);
    expect(readdirSync(folder).sort()).toEqual(["admin-token", "cluster-secret"]);

    runSecretsScript(script, folder);
    expect(read("cluster-secret")).toBe(secret);
    expect(read("admin-token")).toBe(token);

    // An empty file (a run cut short before the rename cannot leave one, an operator can) is drawn again.
    writeFileSync(join(folder, "admin-token"), "");
    runSecretsScript(script, folder);
    expect(read("admin-token")).toMatch(secretPattern);
    expect(read("admin-token")).not.toBe(token);
    expect(read("cluster-secret")).toBe(secret);

    // Another volume, other values: there is no default.
    const otherFolder = temporaryFolder();
    runSecretsScript(script, otherFolder);
    expect(readFileSync(join(otherFolder, "cluster-secret"), "utf8")).not.toBe(secret);
  });

  it("gives the replica files it accepts (node/config.ts reads them as in the container)", () => {
    const folder = temporaryFolder();
    runSecretsScript(secretsScript(compose), folder);
    const replica = service(compose, "r2");
    const environment = { ...replica.environment };
    environment["CLUSTER_SECRET_FILE"] = join(folder, "cluster-secret");
    environment["ADMIN_TOKEN_FILE"] = join(folder, "admin-token");
    const config = readConfig([], environment);
    expect(config.replicaId).toBe("r2");
    expect(config.peers.map((peer) => peer.address)).toEqual(["r1:9000", "r3:9000"]);
    expect(config.clusterSecret).toBe(readFileSync(join(folder, "cluster-secret"), "utf8"));
    expect(config.adminToken).toBe(readFileSync(join(folder, "admin-token"), "utf8"));
    expect(config.dataDir).toBe("/data");
  });
});

describe("Dockerfile", () => {
  const dockerfile = readFileSync(join(repositoryRoot, "Dockerfile"), "utf8");
  const stages = dockerfile.split(/^FROM /m).slice(1);
  const runtimeStage = stages.at(-1) ?? "";
  const runtimeFolders = ["api", "cluster", "crdt", "node"];

  it("runs as a non-root user in production, with only the compiled runtime folders and production dependencies", () => {
    expect(stages.length).toBe(3);
    expect(runtimeStage).toMatch(/^ENV NODE_ENV=production$/m);
    expect(runtimeStage).toMatch(/^USER 1000:1000$/m);
    const copied = [...runtimeStage.matchAll(/^COPY (?:--from=(\S+) )?(\S+) (\S+)$/gm)].map((match) => `${match[1] ?? "context"}:${match[2]}`);
    expect(copied.sort()).toEqual(
      ["context:package.json", "dependencies:/app/node_modules", ...runtimeFolders.map((folder) => `build:/app/dist/${folder}`)].sort(),
    );
    expect(stages[1]).toMatch(/npm ci --omit=dev/);
    expect(runtimeStage).toMatch(/^CMD \["node", "dist\/node\/main\.js"\]$/m);
  });

  it("sends only the build's inputs to the engine (.dockerignore)", () => {
    const lines = readFileSync(join(repositoryRoot, ".dockerignore"), "utf8")
      .split("\n")
      .filter((line) => line.length > 0 && !line.startsWith("#"));
    expect(lines).toEqual(["*", "!package.json", "!package-lock.json", "!tsconfig.json", ...runtimeFolders.map((folder) => `!${folder}`)]);
  });

  it("compiles from the four source folders alone, and what it compiles imports production dependencies only", () => {
    // The build stage, by hand: package.json ("type": "module"), tsconfig.json and the four folders, nothing else.
    const folder = temporaryFolder();
    for (const file of ["package.json", "tsconfig.json"]) cpSync(join(repositoryRoot, file), join(folder, file));
    for (const source of runtimeFolders) cpSync(join(repositoryRoot, source), join(folder, source), { recursive: true });
    symlinkSync(join(repositoryRoot, "node_modules"), join(folder, "node_modules"));
    const compiler = join(repositoryRoot, "node_modules/typescript/bin/tsc");
    const build = spawnSync(process.execPath, [compiler, "-p", "tsconfig.json"], { cwd: folder, encoding: "utf8" });
    expect(build.status, `tsc failed:\n${build.stdout}${build.stderr}`).toBe(0);
    expect(readdirSync(join(folder, "dist")).sort()).toEqual(runtimeFolders);
    expect(statSync(join(folder, "dist/node/main.js")).isFile()).toBe(true);

    const manifest = JSON.parse(readFileSync(join(repositoryRoot, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    const allowed = new Set([...Object.keys(manifest.dependencies), ...builtinModules]);
    const imported = new Set<string>();
    for (const file of readdirSync(join(folder, "dist"), { recursive: true, encoding: "utf8" }).filter((name) => name.endsWith(".js"))) {
      const text = readFileSync(join(folder, "dist", file), "utf8");
      for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?from\s+"([^".][^"]*)"|import\("([^".][^"]*)"\)/g)) {
        imported.add(packageName(match[1] ?? match[2] ?? ""));
      }
    }
    expect(imported.size).toBeGreaterThan(3);
    expect([...imported].filter((name) => !allowed.has(name))).toEqual([]);
  }, 120_000);
});

/** "node:fs" → "fs", "@scope/name/sub" → "@scope/name", "name/sub" → "name". */
function packageName(specifier: string): string {
  const bare = specifier.replace(/^node:/, "");
  const parts = bare.split("/");
  return bare.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? bare);
}
