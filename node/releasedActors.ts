// The actors whose rights the operator released (Replica.release): kept as states
// `r:<actor>`, replicated, so every replica refuses later changes of those actors.
import type { Actor } from "../crdt/boundedCounter.js";
import { type ReleaseRecord, decodeRelease, encodeRelease, mergeReleases, releaseKeyPrefix } from "../crdt/releaseRecord.js";
import type { StateKey } from "../crdt/shopState.js";

export class ReleasedActors {
  private readonly records = new Map<Actor, ReleaseRecord>();

  constructor(private readonly markChanged: (stateKey: StateKey) => void) {}

  has(actor: Actor): boolean {
    return this.records.has(actor);
  }

  /** This replica releases `actor`'s rights (in the same synchronous step as the transfers). */
  mark(actor: Actor, record: ReleaseRecord): void {
    this.records.set(actor, this.records.has(actor) ? mergeReleases(this.records.get(actor)!, record) : record);
    this.markChanged(`${releaseKeyPrefix}${actor}`);
  }

  /** A record from a peer or the disk; true if it changed here (a DecodeError if it does not decode). */
  mergeEncoded(stateKey: StateKey, bytes: Uint8Array): boolean {
    const actor = stateKey.slice(releaseKeyPrefix.length);
    const incoming = decodeRelease(bytes);
    const local = this.records.get(actor);
    const kept = local === undefined ? incoming : mergeReleases(local, incoming);
    if (kept === local) return false;
    this.records.set(actor, kept);
    return true;
  }

  encode(stateKey: StateKey): Uint8Array {
    const record = this.records.get(stateKey.slice(releaseKeyPrefix.length));
    if (record === undefined) throw new RangeError(`no release record ${stateKey}`);
    return encodeRelease(record);
  }
}
