// The local cluster launcher (dist/scripts/startCluster.js) as a child process on
// free ports, for tests of the one shared address that `npm start` gives.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type ClusterServingMessage, readyMessage, stdioWithReadySignal } from "../harness/readySignal.js";
import { environmentWithoutAdminToken } from "./adminToken.js";

export const startClusterScriptPath = fileURLToPath(new URL("../../dist/scripts/startCluster.js", import.meta.url));
const startWaitMsMax = 30_000;
const stopWaitMsMax = 15_000;

export class ClusterProcess {
  private constructor(
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
    /** The shared address. */
    readonly url: string,
    /** Each replica's own address, in id order. */
    readonly replicaUrls: string[],
    readonly output: () => string,
  ) {}

  /** `env` adds to the environment, e.g. ADMIN_TOKEN (the tester's own admin token settings are dropped). */
  static async start(replicas: number, dataRoot: string, env: NodeJS.ProcessEnv = {}): Promise<ClusterProcess> {
    if (!existsSync(startClusterScriptPath)) throw new Error(`${startClusterScriptPath} is missing: run \`npm run build\` first`);
    const child = spawn(
      process.execPath,
      [startClusterScriptPath, "--replicas", String(replicas), "--port", "0", "--base-port", "0", "--peer-base-port", "0", "--data-root", dataRoot],
      { stdio: [...stdioWithReadySignal], env: { ...environmentWithoutAdminToken(), ...env } },
    );
    let output = "";
    const keep = (chunk: Buffer) => (output = (output + chunk.toString("utf8")).slice(-65536));
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
    let serving: ClusterServingMessage;
    try {
      serving = await readyMessage(child, "cluster-serving", "the cluster", startWaitMsMax, () => output);
    } catch (error) {
      child.kill("SIGKILL");
      throw error;
    }
    const replicaUrls = serving.replicas.map((replica) => `http://127.0.0.1:${replica.port}`);
    return new ClusterProcess(child, exited, `http://127.0.0.1:${serving.port}`, replicaUrls, () => output);
  }

  /** SIGTERM to the launcher, which stops every replica; SIGKILL if that takes too long. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), stopWaitMsMax);
    await this.exited;
    clearTimeout(timer);
  }
}
