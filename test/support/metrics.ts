// Counters a test reads from a replica's GET /metrics (README, "Metrics").
import type { ReplicaProcess } from "./replicaProcess.js";

export const rightsRequestsSent = /^shop_rights_messages_total\{direction="sent",type="request"\} (\d+)$/m;
export const checkoutsForwarded = /^shop_checkout_forwards_total\{direction="sent"\} (\d+)$/m;
export const checkoutsRunForPeers = /^shop_checkout_forwards_total\{direction="received"\} (\d+)$/m;

/** The value of the one line `line` matches (its value captured) in `replica`'s /metrics. */
export async function metricOf(replica: ReplicaProcess, line: RegExp): Promise<number> {
  const text = (await replica.get("/metrics")).text;
  const match = line.exec(text);
  if (match === null) throw new Error(`no ${line.source} in /metrics:\n${text.slice(0, 2000)}`);
  return Number(match[1]);
}
