// Loading a replica's stored states at start. A record that does not decode (a bad
// sector, a bug of an older version) must not stop the replica for good, nor make
// it guess: it is set aside under `~set-aside:<key>` with its bytes, logged, and
// fetched again from the peers. Every anti-entropy cursor is dropped for that, so
// each peer resends all it holds (the key may have last changed long before).
import type { Actor } from "../crdt/boundedCounter.js";
import { DecodeError } from "../crdt/codec.js";
import type { StateKey } from "../crdt/shopState.js";
import type { WrittenStates } from "../crdt/writtenStates.js";
import type { Database } from "./database.js";
import { cursorKeyPrefix, decodeBatchNumber, familyOf, isReplicatedKey, setAsideKeyPrefix } from "./storageLayout.js";

/** What LevelDB reads ahead per trip to its thread pool while loading, and the entries taken per step. */
const readAheadBytes = 4 * 1024 * 1024;
// A step's entries live until it is merged, so every young-generation GC during it
// copies them: 10,000 a step made those GCs take 240 ms of a restart, 1,000 takes 90.
const entriesPerStep = 1_000;

export interface StoredStates {
  readonly stateKeys: StateKey[];
  /** Per peer incarnation: its batches up to this number are merged here. */
  readonly cursors: Map<Actor, number>;
  /** Keys whose records did not decode: set aside, to come back from the peers. */
  readonly setAside: string[];
}

/** Merge every stored state (through `merge`) and read the cursors; set aside what does not decode. */
export async function loadStoredStates(db: Database, merge: (key: StateKey, bytes: Uint8Array) => void): Promise<StoredStates> {
  const stateKeys: StateKey[] = [];
  const cursors = new Map<Actor, number>();
  const bad: [key: string, value: Uint8Array][] = [];
  // Read in large steps: LevelDB's default read-ahead (16 KiB) made the iteration, not the decoding, most of a restart.
  const iterator = db.iterator({ highWaterMarkBytes: readAheadBytes });
  try {
    for (let entries = await iterator.nextv(entriesPerStep); entries.length > 0; entries = await iterator.nextv(entriesPerStep)) {
      for (const [key, value] of entries) {
        const family = familyOf(key);
        if (family === "setAside") continue;
        try {
          if (family === "cursor") cursors.set(key.slice(cursorKeyPrefix.length), readCursor(value));
          else if (isReplicatedKey(key)) {
            merge(key, value);
            stateKeys.push(key);
          }
        } catch (error) {
          if (!(error instanceof DecodeError) && !(error instanceof RangeError)) throw error;
          bad.push([key, value]);
        }
      }
    }
  } finally {
    await iterator.close();
  }
  if (bad.length === 0) return { stateKeys, cursors, setAside: [] };
  const write = db.batch();
  for (const [key, value] of bad) {
    write.put(`${setAsideKeyPrefix}${key}`, value);
    write.del(key);
  }
  for (const actor of cursors.keys()) write.del(`${cursorKeyPrefix}${actor}`);
  await write.write({ sync: true });
  cursors.clear();
  return { stateKeys, cursors, setAside: bad.map(([key]) => key) };
}

function readCursor(value: Uint8Array): number {
  return decodeBatchNumber(value, "a cursor");
}

/**
 * The replica's written states are its database's records: a settled state is
 * read back from LevelDB (one getSync, a few microseconds) instead of held in memory.
 */
export function writtenStatesIn(db: Database): WrittenStates {
  return { read: (key) => db.getSync(key), written: () => {} };
}
