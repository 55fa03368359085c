// The actors whose rights the operator released (Replica.release): kept as states
// `r:<actor>`, replicated, so every replica refuses later changes of those actors.
import type { Actor } from "../crdt/boundedCounter.js";
import { type ReleaseRecord, decodeRelease, encodeRelease, mergeReleases, releaseKeyPrefix } from "../crdt/releaseRecord.js";
import type { StateKey } from "../crdt/shopState.js";
import { mergeRecord, recordAt } from "./recordMap.js";

export class ReleasedActors {
  private readonly records = new Map<Actor, ReleaseRecord>();

  constructor(private readonly markChanged: (stateKey: StateKey) => void) {}

  has(actor: Actor): boolean {
    return this.records.has(actor);
  }

  /** This replica releases `actor`'s rights (in the same synchronous step as the transfers). */
  mark(actor: Actor, record: ReleaseRecord): void {
    mergeRecord(this.records, actor, record, mergeReleases);
    this.markChanged(`${releaseKeyPrefix}${actor}`);
  }

  /** A record from a peer or the disk; true if it changed here (a DecodeError if it does not decode). */
  mergeEncoded(stateKey: StateKey, bytes: Uint8Array): boolean {
    return mergeRecord(this.records, stateKey.slice(releaseKeyPrefix.length), decodeRelease(bytes), mergeReleases);
  }

  encode(stateKey: StateKey): Uint8Array {
    return encodeRelease(recordAt(this.records, stateKey.slice(releaseKeyPrefix.length), "release"));
  }
}
