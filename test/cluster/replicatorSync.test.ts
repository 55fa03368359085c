// What anti-entropy serves (G3): every state changed after the requester's cursor,
// this replica's own changes only when it asks for all, and never a state held
// exactly as a peer sent it live in a batch the requester says it has merged (no
// needless relay). The replicator reads the states from a real database snapshot.
import { MemoryLevel } from "memory-level";
import { beforeEach, describe, expect, it } from "vitest";
import { realClock } from "../../cluster/clock.js";
import type { PeerMessage } from "../../cluster/messages.js";
import { Replicator } from "../../cluster/replicator.js";

const bytesOf = (text: string) => new TextEncoder().encode(text);

let db: MemoryLevel<string, Uint8Array>;
let sent: { peerId: string; message: PeerMessage }[];
let replicator: Replicator;

beforeEach(async () => {
  db = new MemoryLevel<string, Uint8Array>({ keyEncoding: "utf8", valueEncoding: "view" });
  await db.open();
  sent = [];
  let durableSeq = 0;
  replicator = new Replicator({
    transport: {
      send: (peerId, message) => {
        sent.push({ peerId, message });
        return true;
      },
    },
    mergeState: () => true,
    clock: realClock,
    durable: () => Promise.resolve(durableSeq),
    durableSeq: () => durableSeq,
    syncAll: () => Promise.resolve(durableSeq),
    cursorMoved: () => {},
    whenQuiet: (take) => {
      const snapshot = db.snapshot();
      take({ read: (keys) => db.getMany([...keys], { snapshot }), close: () => snapshot.close() });
    },
    log: () => {},
    ackWaitMsMax: 1000,
    resyncMs: 60_000,
    statesPerFrame: 100,
  });
  // Batches 1-3 here: a state merged from a2's live batch 7 (written as it came), a
  // state merged and then joined with other changes (bytes not as sent), and our own.
  const sentLive = bytesOf("x from a2");
  replicator.peerUp("p2", "a2");
  replicator.peerUp("p3", "a3");
  replicator.receive("p2", { type: "states", seq: 7, batch: 7, entries: [["i:x", sentLive]] });
  durableSeq = 1;
  replicator.batchDurable(1, [{ key: "i:x", bytes: sentLive, local: false }]);
  durableSeq = 2;
  replicator.batchDurable(2, [{ key: "u:y", bytes: bytesOf("y merged"), local: false }]);
  durableSeq = 3;
  replicator.batchDurable(3, [{ key: "o:z", bytes: bytesOf("z ours"), local: true }]);
  for (const [key, value] of [
    ["i:x", "x from a2"],
    ["u:y", "y merged"],
    ["o:z", "z ours"],
  ] as const) {
    await db.put(key, bytesOf(value));
  }
  sent.length = 0;
});

/** p3 asks; the keys of the states served to it, once its syncDone has gone out. */
async function servedTo(request: { cursor: number; mergedOnly: boolean; known: [string, number][] }): Promise<string[]> {
  replicator.receive("p3", { type: "syncRequest", ...request });
  await expect.poll(() => sent.some(({ message }) => message.type === "syncDone")).toBe(true);
  return sent.flatMap(({ peerId, message }) => (peerId === "p3" && message.type === "states" ? message.entries.map(([key]) => key) : [])).sort();
}

describe("anti-entropy: what a sync request is served", () => {
  it("everything after the cursor, but a live state the requester has merged from its sender", async () => {
    expect(await servedTo({ cursor: 0, mergedOnly: false, known: [["a2", 7]] })).toEqual(["o:z", "u:y"]);
  });

  it("the live state too when the requester has not merged its sender's batch", async () => {
    expect(await servedTo({ cursor: 0, mergedOnly: false, known: [["a2", 6]] })).toEqual(["i:x", "o:z", "u:y"]);
  });

  it("merged states only, when asked for them: never this replica's own changes", async () => {
    expect(await servedTo({ cursor: 0, mergedOnly: true, known: [] })).toEqual(["i:x", "u:y"]);
  });

  it("nothing changed at or before the cursor", async () => {
    expect(await servedTo({ cursor: 2, mergedOnly: false, known: [] })).toEqual(["o:z"]);
    sent.length = 0;
    expect(await servedTo({ cursor: 3, mergedOnly: true, known: [] })).toEqual([]);
  });

  it("a state changed here after it came live is no longer held as sent", async () => {
    replicator.batchDurable(4, [{ key: "i:x", bytes: bytesOf("x ours now"), local: true }]);
    sent.length = 0;
    expect(await servedTo({ cursor: 0, mergedOnly: false, known: [["a2", 7]] })).toEqual(["i:x", "o:z", "u:y"]);
  });
});
