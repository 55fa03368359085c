// Carries the membership document over the peer links: Automerge sync messages
// per peer, the document persisted (through the caller) whenever it changes.
import type { PeerMessage } from "./messages.js";
import { type Announcement, type MemberState, type MemberView, Membership, MembershipSyncError } from "./membership.js";
import type { PeerId, Transport } from "./transport.js";

export interface MembershipGossipDeps {
  readonly transport: Pick<Transport, "send">;
  /** The document changed: write it (Membership.save) with the next batch. */
  persist(): void;
  upPeers(): readonly PeerId[];
  log(level: "info" | "warn", message: string): void;
}

export class MembershipGossip {
  constructor(
    readonly membership: Membership,
    private readonly deps: MembershipGossipDeps,
  ) {}

  static load(selfId: string, stored: Uint8Array | undefined, deps: MembershipGossipDeps): MembershipGossip {
    return new MembershipGossip(Membership.load(selfId, stored), deps);
  }

  announce(self: Announcement, firstState: "active" | "joining" = "active"): void {
    if (this.membership.announce(self, firstState)) this.changed();
  }

  /** Change a member's state (see Membership.setState for what is allowed). */
  setState(replicaId: PeerId, state: MemberState): void {
    if (this.membership.setState(replicaId, state)) this.changed();
  }

  view(): MemberView[] {
    return this.membership.view();
  }

  peerUp(peer: PeerId): void {
    this.sendTo(peer);
  }

  peerDown(peer: PeerId): void {
    this.membership.peerDisconnected(peer);
  }

  receive(peer: PeerId, message: PeerMessage): void {
    if (message.type !== "membership") return;
    let changed: boolean;
    try {
      changed = this.membership.receiveSync(peer, message.sync);
    } catch (error) {
      if (!(error instanceof MembershipSyncError)) throw error;
      this.deps.log("warn", `refused a membership sync message from ${peer}: ${error.message}`);
      return;
    }
    if (changed) this.changed();
    else this.sendTo(peer);
  }

  private changed(): void {
    this.deps.persist();
    for (const peer of this.deps.upPeers()) this.sendTo(peer);
  }

  private sendTo(peer: PeerId): void {
    const sync = this.membership.syncMessageFor(peer);
    if (sync !== null) this.deps.transport.send(peer, { type: "membership", sync });
  }
}
