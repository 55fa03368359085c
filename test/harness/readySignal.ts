// The one way to know a spawned process serves: it sends one IPC message (a
// replica from node/main.ts, the local cluster launcher, the bench's plain
// fastify), so nothing scrapes logs. Spawn with an IPC channel: stdio [..., "ipc"].
import type { ChildProcess } from "node:child_process";
import type { ServingMessage } from "../../node/main.js";

export type { ServingMessage };

/** The local cluster launcher (scripts/startCluster.ts), once every replica serves. */
export interface ClusterServingMessage {
  readonly type: "cluster-serving";
  /** The shared client port. */
  readonly port: number;
  /** In id order. */
  readonly replicas: readonly { readonly replicaId: string; readonly port: number }[];
}

/** The bench's plain fastify (bench/baselineServer.ts). */
export interface BaselineServingMessage {
  readonly type: "baseline-serving";
  readonly port: number;
}

export type ReadyMessage = ServingMessage | ClusterServingMessage | BaselineServingMessage;

/** The stdio of a child whose ready message is awaited: output piped, plus the IPC channel. */
export const stdioWithReadySignal = ["ignore", "pipe", "pipe", "ipc"] as const;

/**
 * Resolves with the child's first message of `type`; rejects if the child exits
 * first, cannot be spawned or stays silent for `waitMsMax`. `output` gives what it printed, for the error.
 */
export function readyMessage<Type extends ReadyMessage["type"]>(
  child: ChildProcess,
  type: Type,
  what: string,
  waitMsMax: number,
  output: () => string,
): Promise<Extract<ReadyMessage, { type: Type }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: unknown): void => {
      if (typeof message !== "object" || message === null || (message as { type?: unknown }).type !== type) return;
      settle();
      resolve(message as Extract<ReadyMessage, { type: Type }>);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      settle();
      reject(new Error(`${what} exited (${signal ?? `code ${String(code)}`}) before serving:\n${output()}`));
    };
    const onError = (error: Error): void => {
      settle();
      reject(error);
    };
    const timer = setTimeout(() => {
      settle();
      reject(new Error(`${what} did not serve within ${waitMsMax} ms:\n${output()}`));
    }, waitMsMax);
    timer.unref();
    const settle = (): void => {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
      child.off("error", onError);
    };
    if (child.exitCode !== null || child.signalCode !== null) return onExit(child.exitCode, child.signalCode);
    child.on("message", onMessage);
    child.once("exit", onExit);
    child.once("error", onError);
  });
}
