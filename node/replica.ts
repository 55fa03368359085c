// One replica: the in-memory shop state, durable in LevelDB through group commit.
// Every mutation runs synchronously on the state, then waits until its changes
// are durable; every read takes its answer first, then waits until what it saw is
// durable, so no reply ever shows a state that a crash could take back.
import { mkdir } from "node:fs/promises";
import { Level } from "level";
import { type Refusal, ShopState, type StateKey } from "../crdt/shopState.js";
import { GroupCommit } from "./groupCommit.js";
import { type Identity, actorOf, identityKey, loadOrCreateIdentity } from "./identity.js";

export class Replica {
  private constructor(
    readonly identity: Identity,
    readonly shop: ShopState,
    private readonly db: Level<string, Uint8Array>,
    private readonly commit: GroupCommit,
  ) {}

  static async open(replicaId: string, dataDir: string, onWriteFailure: (error: unknown) => void): Promise<Replica> {
    await mkdir(dataDir, { recursive: true });
    const db = new Level<string, Uint8Array>(dataDir, { keyEncoding: "utf8", valueEncoding: "view" });
    await db.open();
    const identity = await loadOrCreateIdentity(db, replicaId);
    let commit: GroupCommit | undefined;
    const shop = new ShopState(actorOf(identity), (key) => commit?.markChanged(key));
    await loadStates(db, shop);
    commit = new GroupCommit(db, (key) => shop.encode(key), onWriteFailure);
    return new Replica(identity, shop, db, commit);
  }

  /** Apply `change` now; resolve once it is durable (or at once if it was refused). */
  async mutate(change: (shop: ShopState) => Refusal | null): Promise<Refusal | null> {
    const refusal = change(this.shop);
    if (refusal === null) await this.commit.durable();
    return refusal;
  }

  /** Take `view` now; resolve once everything it may have seen is durable. */
  async read<T>(view: (shop: ShopState) => T): Promise<T> {
    const result = view(this.shop);
    if (!this.commit.idle) await this.commit.durable();
    return result;
  }

  async close(): Promise<void> {
    await this.commit.durable();
    await this.db.close();
  }
}

/** Loading merges each stored state; the keys it reports are already on disk. */
async function loadStates(db: Level<string, Uint8Array>, shop: ShopState): Promise<void> {
  for await (const [key, value] of db.iterator()) {
    if (key === identityKey) continue;
    shop.mergeEncoded(key as StateKey, value);
  }
}
