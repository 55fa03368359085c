// Replica identity: a configured id plus an incarnation drawn when the data folder
// is empty. A replica whose data was lost comes back as a new actor, so it never
// reuses a counter row that its peers remember as larger (Riak's KV679 data loss).
import { randomBytes } from "node:crypto";
import type { Actor } from "../crdt/boundedCounter.js";
import type { Database } from "./database.js";
import { decodeIdentity, encodeIdentity, identityKey, readStartRecord } from "./storageLayout.js";

export interface Identity {
  readonly replicaId: string;
  readonly incarnation: string;
}

export function actorOf(identity: Identity): Actor {
  return `${identity.replicaId}/${identity.incarnation}`;
}

/** Reads the folder's identity, or writes a fresh incarnation into an empty folder. */
export async function loadOrCreateIdentity(db: Database, replicaId: string): Promise<Identity> {
  const identity = await readStartRecord(db, identityKey, decodeIdentity);
  if (identity !== undefined) {
    if (identity.replicaId !== replicaId) {
      throw new Error(`data folder belongs to replica ${identity.replicaId}, not ${replicaId}: refusing to start`);
    }
    return identity;
  }
  for await (const key of db.keys({ limit: 1 })) {
    throw new Error(`data folder holds state (${key}) but no identity: refusing to start on a damaged folder`);
  }
  const fresh: Identity = { replicaId, incarnation: randomBytes(6).toString("hex") };
  await db.put(identityKey, encodeIdentity(fresh), { sync: true });
  return fresh;
}
