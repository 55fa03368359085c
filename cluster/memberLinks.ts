// Who a replica links with and whose rows it takes, from its settings (--peers,
// --join) and the membership document: one rule for main.ts and the simulation.
import type { MemberView } from "./membership.js";
import type { PeerAddress, PeerId } from "./transport.js";

/**
 * The configured peers at their configured addresses (which may be a proxy's, or a
 * name behind NAT), and every other member the document lists at the address it
 * announced: the document says who the members are, --peers only where to reach some.
 */
export function peersToDial(selfId: PeerId, configured: readonly PeerAddress[], members: readonly MemberView[]): PeerAddress[] {
  const dial = new Map(configured.map((peer) => [peer.replicaId, peer.address]));
  for (const member of members) {
    if (member.replicaId !== selfId && member.state !== "retired" && !dial.has(member.replicaId)) dial.set(member.replicaId, member.peerAddress);
  }
  return [...dial].map(([replicaId, address]) => ({ replicaId, address }));
}

export interface MemberSource {
  /** The document's entry of `replicaId`, if it has one. */
  member(replicaId: PeerId): MemberView | undefined;
  /** Whether the document names any replica but this one. */
  namesOthers(): boolean;
}

/**
 * Whose rows a replica takes (memberStatePolicy's isMember): its own, its configured
 * peers', and those of every id the document lists (a retired member may be gone
 * from --peers). A joiner's seed sends states before the document that names their
 * writers: until the document names anyone else, a joiner takes them as it takes the
 * document, from its seed.
 */
export function isMemberRule(selfId: PeerId, configuredIds: ReadonlySet<PeerId>, joins: boolean, source: MemberSource): (replicaId: PeerId) => boolean {
  return (replicaId) => replicaId === selfId || configuredIds.has(replicaId) || source.member(replicaId) !== undefined || (joins && !source.namesOthers());
}
