// The operator's command line, against any replica's address:
//
//   npm run cluster -- status [--url http://localhost:8001]
//   npm run cluster -- leave --url http://localhost:8003
//   npm run cluster -- release r3/4f2a9c1d0b7e [--url ...]
//   npm run cluster -- bench [bench flags]      (npm run bench: a local benchmark)
//   npm run cluster -- consistency [--url ...]  (the course's consistency scenario)
//
// leave and release need the admin token: ADMIN_TOKEN, or ADMIN_TOKEN_FILE.
// Exit code 0 on success, 1 on a refusal or an unreachable replica, 2 on bad usage.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { formatStatus, type ClusterStatus } from "./clusterStatusTable.js";

const usage = `usage: npm run cluster -- <command> [--url http://localhost:8001]
  status            the replica's view: members, their state and actor, its links and lag
  leave             the replica at --url leaves the cluster for good (admin token)
  release <actor>   release the rights of a lost incarnation <replica>/<incarnation> (admin token)
  bench ...         npm run bench with these flags (starts its own clusters)
  consistency ...   the consistency scenario against --url (more flags: see scripts/consistency.ts)
The admin token comes from ADMIN_TOKEN or the file named by ADMIN_TOKEN_FILE.`;

const [command, ...rest] = process.argv.slice(2);
const urlIndex = rest.indexOf("--url");
const url = (urlIndex >= 0 ? rest[urlIndex + 1] : undefined) ?? "http://localhost:8001";
const positional = rest.filter((_, index) => index !== urlIndex && index !== urlIndex + 1);
const here = fileURLToPath(new URL(".", import.meta.url));

function fail(message: string, code: number): never {
  console.error(message);
  process.exit(code);
}

function adminToken(): string {
  const file = process.env["ADMIN_TOKEN_FILE"];
  const token = file !== undefined && file !== "" ? readFileSync(file, "utf8").trim() : process.env["ADMIN_TOKEN"];
  if (token === undefined || token === "") fail("set ADMIN_TOKEN (or ADMIN_TOKEN_FILE) to the cluster's admin token", 2);
  return token;
}

async function call(method: "GET" | "POST", path: string, token?: string): Promise<unknown> {
  let answer: Response;
  try {
    answer = await fetch(`${url}${path}`, { method, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  } catch (error) {
    fail(`${url} cannot be reached: ${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}`, 1);
  }
  const text = await answer.text();
  const body: unknown = text.startsWith("{") ? JSON.parse(text) : text;
  if (!answer.ok) fail(`${method} ${path}: ${answer.status} ${typeof body === "object" && body !== null && "error" in body ? String(body.error) : text}`, 1);
  return body;
}

function run(script: string, args: readonly string[]): never {
  const result = spawnSync(process.execPath, [`${here}${script}`, ...args], { stdio: "inherit" });
  process.exit(result.status ?? 1);
}

switch (command) {
  case "status":
    console.log(formatStatus((await call("GET", "/cluster")) as ClusterStatus));
    break;
  case "leave":
    console.log(JSON.stringify(await call("POST", "/cluster/leave", adminToken()), null, 2));
    break;
  case "release": {
    const actor = positional[0];
    if (actor === undefined) fail(`release needs the lost actor, e.g. r3/4f2a9c1d0b7e\n${usage}`, 2);
    console.log(JSON.stringify(await call("POST", `/cluster/release/${encodeURIComponent(actor)}`, adminToken()), null, 2));
    break;
  }
  case "bench":
    run("bench.js", rest);
    break;
  case "consistency":
    run("consistency.js", ["--url", url, ...positional]);
    break;
  default:
    fail(usage, command === undefined || command === "--help" ? 0 : 2);
}
