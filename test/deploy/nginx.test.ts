// deploy/nginx.conf with the real nginx: `nginx -t`, then a running gateway in front
// of a stub replica, to see which requests it passes on and which it refuses. The
// config is a generated copy in a temporary folder (r1, r2, r3 become 127.0.0.1 and
// the stub's port; logs, pid and temporary files go there too); nothing is left behind.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type IncomingMessage, type Server, createServer, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../harness/net/freePort.js";
import { repositoryRoot, requireCommand } from "./deployFiles.js";

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly headers: IncomingMessage["headers"];
}

const gatewayStartWaitMsMax = 10_000;
/** What reached the stub replica: "METHOD /raw/path". */
const passedOn: string[] = [];
let folder = "";
let stub: Server | undefined;
let gateway: ChildProcess | undefined;
let gatewayPort = 0;

/** deploy/nginx.conf with the upstream names mapped to the stub and every path inside `prefix`. */
function localCopy(configText: string, upstreamPort: number, listenPort: number, prefix: string): string {
  const upstreams = configText.match(/server r[123]:8000;/g) ?? [];
  expect(upstreams.length, "deploy/nginx.conf names r1, r2 and r3 on port 8000").toBe(3);
  expect(configText.match(/^\s*listen 8000;$/gm)?.length, "deploy/nginx.conf listens on 8000").toBe(1);
  const localPaths = [
    `access_log ${prefix}/access.log;`,
    ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((kind) => `${kind}_temp_path ${prefix}/${kind};`),
  ];
  return configText
    .replace(/server r[123]:8000;/g, `server 127.0.0.1:${upstreamPort};`)
    .replace(/^(\s*)listen 8000;$/m, `$1listen 127.0.0.1:${listenPort};`)
    .replace(/^http \{$/m, `http {\n  ${localPaths.join("\n  ")}`);
}

function nginxArguments(configPath: string): string[] {
  return ["-p", `${folder}/`, "-c", configPath, "-g", `pid ${folder}/nginx.pid; error_log ${folder}/error.log; daemon off;`];
}

/** One request with the path sent exactly as given (no client-side normalization). */
function send(method: string, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: "127.0.0.1", port: gatewayPort, method, path, agent: false }, (incoming) => {
      let body = "";
      incoming.setEncoding("utf8");
      incoming.on("data", (chunk: string) => (body += chunk));
      incoming.on("end", () => resolve({ status: incoming.statusCode ?? 0, body, headers: incoming.headers }));
    });
    outgoing.on("error", reject);
    outgoing.end();
  });
}

async function waitForGateway(): Promise<void> {
  const deadline = Date.now() + gatewayStartWaitMsMax;
  for (;;) {
    try {
      await send("GET", "/");
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`nginx did not answer within ${gatewayStartWaitMsMax} ms: ${String(error)}\n${readLog()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

function readLog(): string {
  try {
    return readFileSync(join(folder, "error.log"), "utf8");
  } catch {
    return "(no error.log)";
  }
}

beforeAll(async () => {
  requireCommand("nginx", ["-v"], "nginx");
  folder = mkdtempSync(join(tmpdir(), "nginx-test-"));
  stub = createServer((incoming, outgoing) => {
    passedOn.push(`${incoming.method} ${incoming.url}`);
    outgoing.setHeader("content-type", "application/json");
    outgoing.end(JSON.stringify({ stub: true }));
  });
  await new Promise<void>((resolve) => stub!.listen({ host: "127.0.0.1", port: 0 }, resolve));
  const upstreamPort = (stub.address() as { port: number }).port;
  gatewayPort = await freePort();
  const configPath = join(folder, "nginx.conf");
  writeFileSync(configPath, localCopy(readFileSync(join(repositoryRoot, "deploy/nginx.conf"), "utf8"), upstreamPort, gatewayPort, folder));

  const check = spawnSync("nginx", ["-t", ...nginxArguments(configPath)], { encoding: "utf8" });
  expect(check.stderr).toMatch(/syntax is ok/);
  expect(check.stderr).toMatch(/test is successful/);
  expect(check.status, `nginx -t failed:\n${check.stderr}`).toBe(0);

  gateway = spawn("nginx", nginxArguments(configPath), { stdio: ["ignore", "ignore", "pipe"] });
  let gatewayErrors = "";
  gateway.stderr?.on("data", (chunk: Buffer) => (gatewayErrors += chunk.toString("utf8")));
  gateway.on("exit", (code) => {
    if (code !== 0 && code !== null) console.error(`nginx exited ${code}: ${gatewayErrors}${readLog()}`);
  });
  await waitForGateway();
}, 30_000);

afterAll(async () => {
  if (gateway !== undefined && gateway.exitCode === null) {
    const exited = new Promise((resolve) => gateway!.once("exit", resolve));
    gateway.kill("SIGQUIT"); // nginx's graceful stop; its workers go with it
    await exited;
  }
  await new Promise((resolve) => (stub === undefined ? resolve(undefined) : stub.close(resolve)));
  if (folder !== "") rmSync(folder, { recursive: true, force: true });
});

/** Sends the request and says whether it reached the stub replica. */
async function reachesReplica(method: string, path: string): Promise<{ answer: Answer; reached: boolean }> {
  const before = passedOn.length;
  const answer = await send(method, path);
  return { answer, reached: passedOn.length > before };
}

describe("deploy/nginx.conf (the compose gateway)", () => {
  it.each([
    ["POST", "/stock/item/create/5"],
    ["GET", "/stock/find/some-item"],
    ["POST", "/payment/pay/some-user/3"],
    ["POST", "/orders/checkout/some-order"],
    ["GET", "/orders/find/some-order?fresh=1"],
  ])("passes the shop API on unchanged: %s %s", async (method, path) => {
    const { answer, reached } = await reachesReplica(method, path);
    expect(reached).toBe(true);
    expect(answer.status).toBe(200);
    expect(passedOn.at(-1)).toBe(`${method} ${path}`);
  });

  it.each([
    ["GET", "/health"],
    ["GET", "/ready"],
    ["GET", "/metrics"],
    ["HEAD", "/metrics"],
    ["GET", "/documentation"],
    ["GET", "/documentation/json"],
    ["GET", "/documentation/static/index.html"],
    ["GET", "/dashboard"],
    ["GET", "/dashboard/"],
    ["GET", "/dashboard/app.js"],
  ])("passes the read-only operations routes: %s %s", async (method, path) => {
    const { answer, reached } = await reachesReplica(method, path);
    expect(reached).toBe(true);
    expect(answer.status).toBe(200);
  });

  it.each([
    ["POST", "/health"],
    ["POST", "/ready"],
    ["DELETE", "/metrics"],
    ["PUT", "/documentation/json"],
    ["POST", "/dashboard"],
    ["PATCH", "/dashboard/x"],
  ])("refuses other methods on the operations routes with 405: %s %s", async (method, path) => {
    const { answer, reached } = await reachesReplica(method, path);
    expect(reached).toBe(false);
    expect(answer.status).toBe(405);
    expect(answer.headers["allow"]).toBe("GET, HEAD");
    expect(JSON.parse(answer.body)).toEqual({ error: "this route only reads: use GET" });
  });

  it.each([
    ["GET", "/cluster"],
    ["GET", "/cluster/"],
    ["POST", "/cluster/leave"],
    ["POST", "/cluster/release/r2"],
    ["POST", "//cluster/leave"],
    ["POST", "/stock/../cluster/leave"],
    ["POST", "/stock/%2e%2e/cluster/leave"],
    ["POST", "/orders/./../cluster/leave"],
    ["GET", "/"],
    ["GET", "/stock"],
    ["GET", "/healthz"],
    ["GET", "/health/"],
    ["GET", "/metrics.json"],
    ["GET", "/dashboards"],
    ["GET", "/documentationx"],
  ])("refuses every other path with 404, /cluster first of all: %s %s", async (method, path) => {
    const { answer, reached } = await reachesReplica(method, path);
    expect(reached).toBe(false);
    expect(answer.status).toBe(404);
    expect(JSON.parse(answer.body)).toEqual({ error: "not found" });
  });
});
