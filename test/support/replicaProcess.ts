// Real replica processes for tests: start dist/node/main.js on a free port with its
// own data folder, talk HTTP to it, stop it cleanly (SIGTERM) or crash it (SIGKILL).
// A ReplicaFleet remembers every process and folder it made, so one `cleanup()` in
// afterEach/afterAll stops and removes them all, whether the test passed or not.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { type IncomingHttpHeaders, type OutgoingHttpHeaders, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { readyMessage, stdioWithReadySignal } from "../harness/readySignal.js";
import { environmentWithoutAdminToken } from "./adminToken.js";

export const mainScriptPath = fileURLToPath(new URL("../../dist/node/main.js", import.meta.url));

const startWaitMsMax = 20_000;
const exitWaitMsMax = 10_000;
const requestWaitMsMax = 20_000;
/** Output kept per process for error messages: the last this many characters. */
const outputCharsMax = 64 * 1024;

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface HttpAnswer {
  readonly status: number;
  /** The content-type header, "" when absent. */
  readonly contentType: string;
  readonly text: string;
  /** Every header of the answer (names in lower case). */
  readonly headers: IncomingHttpHeaders;
}

export interface RequestOptions {
  readonly body?: string | Buffer;
  readonly headers?: OutgoingHttpHeaders;
}

export interface StartOptions {
  /** Reuse a folder (restart); by default a fresh one is made. */
  readonly dataDir?: string;
  readonly replicaId?: string;
  /** More flags for main.js, e.g. peers in a cluster. */
  readonly extraArgs?: readonly string[];
}

/** The body of `answer` parsed as JSON; throws with the text if it is not JSON. */
export function jsonOf(answer: HttpAnswer): unknown {
  try {
    return JSON.parse(answer.text) as unknown;
  } catch {
    throw new Error(`expected a JSON body, got status ${answer.status} "${answer.text}"`);
  }
}

export class ReplicaProcess {
  constructor(
    readonly replicaId: string,
    readonly dataDir: string,
    readonly port: number,
    readonly incarnation: string,
    private readonly child: ChildProcess,
    private readonly exited: Promise<ExitStatus>,
    private readonly output: () => string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** What the process printed so far (stdout and stderr, the latest part). */
  printed(): string {
    return this.output();
  }

  /** One request on a fresh connection, as the course's clients make them. */
  request(method: string, path: string, options: RequestOptions = {}): Promise<HttpAnswer> {
    return sendRequest(this.port, method, path, options);
  }

  get(path: string): Promise<HttpAnswer> {
    return this.request("GET", path);
  }

  post(path: string, options: RequestOptions = {}): Promise<HttpAnswer> {
    return this.request("POST", path, options);
  }

  /** SIGTERM, then wait for the exit (SIGKILL and throw if it does not come). */
  async stop(): Promise<ExitStatus> {
    if (!this.running) return this.exited;
    this.child.kill("SIGTERM");
    const status = await Promise.race([this.exited, sleep(exitWaitMsMax, null, { ref: false })]);
    if (status !== null) return status;
    await this.kill();
    throw new Error(`replica ${this.replicaId} did not stop within ${exitWaitMsMax} ms of SIGTERM:\n${this.output()}`);
  }

  /** SIGKILL (a crash: no chance to flush anything), then wait for the exit. */
  async kill(): Promise<ExitStatus> {
    if (this.running) this.child.kill("SIGKILL");
    return this.exited;
  }

  /** Sends SIGKILL at once, without waiting: for a kill in the same tick as an event. */
  killNow(): void {
    if (this.running) this.child.kill("SIGKILL");
  }
}

interface Started {
  readonly child: ChildProcess;
  readonly exited: Promise<ExitStatus>;
}

/** Children still running; if the test runner itself exits, they are killed with it. */
const childrenAlive = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of childrenAlive) child.kill("SIGKILL");
});

/** Starts replicas and remembers them and their folders for one `cleanup()`. */
export class ReplicaFleet {
  private readonly started: Started[] = [];
  private readonly dataDirs: string[] = [];

  async newDataDir(): Promise<string> {
    const dataDir = await mkdtemp(join(tmpdir(), "escrow-shop-test-"));
    this.dataDirs.push(dataDir);
    return dataDir;
  }

  async start(options: StartOptions = {}): Promise<ReplicaProcess> {
    const dataDir = options.dataDir ?? (await this.newDataDir());
    return startReplica(options.replicaId ?? "r1", dataDir, options.extraArgs ?? [], (started) => this.started.push(started));
  }

  /** SIGKILLs every process still running and removes every folder made. */
  async cleanup(): Promise<void> {
    const started = this.started.splice(0);
    for (const { child } of started) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await Promise.all(started.map(({ exited }) => exited));
    const dataDirs = this.dataDirs.splice(0);
    await Promise.all(dataDirs.map((dataDir) => rm(dataDir, { recursive: true, force: true })));
  }
}

/**
 * Spawns a replica and resolves once it says it serves. `track` gets the
 * process as soon as it exists, so even a start that fails is cleaned up.
 */
async function startReplica(replicaId: string, dataDir: string, extraArgs: readonly string[], track: (started: Started) => void): Promise<ReplicaProcess> {
  if (!existsSync(mainScriptPath)) {
    throw new Error(`${mainScriptPath} is missing: run \`npm run build\` first (\`npm test\` builds before it tests)`);
  }
  const args = [mainScriptPath, "--port", "0", "--host", "127.0.0.1", "--data-dir", dataDir, "--replica-id", replicaId];
  // A replica gets an admin token only when a test gives it one (--admin-token-file).
  const env = environmentWithoutAdminToken();
  const child = spawn(process.execPath, [...args, ...extraArgs], { stdio: [...stdioWithReadySignal], env });
  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString("utf8")).slice(-outputCharsMax);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  childrenAlive.add(child);
  const exited = new Promise<ExitStatus>((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
    child.on("error", () => resolve({ code: null, signal: null }));
  }).finally(() => childrenAlive.delete(child));
  track({ child, exited });
  const serving = await readyMessage(child, "serving", `replica ${replicaId}`, startWaitMsMax, () => output);
  return new ReplicaProcess(replicaId, dataDir, serving.port, serving.incarnation, child, exited, () => output);
}

function sendRequest(port: number, method: string, path: string, options: RequestOptions): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      { host: "127.0.0.1", port, method, path, agent: false, headers: options.headers ?? {}, timeout: requestWaitMsMax },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", reject);
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            contentType: response.headers["content-type"] ?? "",
            text: Buffer.concat(chunks).toString("utf8"),
            headers: response.headers,
          }),
        );
      },
    );
    request.on("timeout", () => request.destroy(new Error(`${method} ${path} got no answer within ${requestWaitMsMax} ms`)));
    request.on("error", reject);
    request.end(options.body);
  });
}
