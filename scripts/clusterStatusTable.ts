// GET /cluster as an operator reads it: one table of the members, one of this
// replica's links. Pure: the command line (scripts/clusterCli.ts) prints it.

export interface ClusterStatus {
  readonly replicaId: string;
  readonly actor: string;
  readonly durableSeq: number;
  readonly peers: readonly { replicaId: string; actor: string; up: boolean; lagging: boolean; lag: number }[];
  readonly members: readonly { replicaId: string; state: string; actor: string; httpAddress: string; peerAddress: string }[];
}

export function formatStatus(status: ClusterStatus): string {
  const members = table(
    ["member", "state", "actor", "http", "peer port"],
    status.members.map((member) => [
      member.replicaId + (member.replicaId === status.replicaId ? " (this)" : ""),
      member.state,
      member.actor,
      member.httpAddress,
      member.peerAddress,
    ]),
  );
  const links = table(
    ["link to", "up", "lagging", "batches not acked", "actor"],
    status.peers.map((peer) => [peer.replicaId, peer.up ? "yes" : "NO", peer.lagging ? "YES" : "no", String(peer.lag), peer.actor]),
  );
  return [
    `replica ${status.replicaId} (${status.actor}), last durable batch ${status.durableSeq}`,
    "",
    members,
    "",
    status.peers.length === 0 ? "no links (a replica alone)" : links,
  ].join("\n");
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((width) => "-".repeat(width))), ...rows.map(line)].join("\n");
}
