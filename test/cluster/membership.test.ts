// The membership document (cluster/membership.ts): replicas syncing in memory converge
// to equal views (G3 for membership), retired is final, a peer's bytes cannot crash a
// replica, corrupt its document or push it past its bounds, and save/load keeps both
// the view and the ability to go on syncing. Every replica gets a fixed Automerge actor
// so a failing run replays exactly from its seed.
import * as Automerge from "@automerge/automerge";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { bytesPerFrameMax } from "../../cluster/messages.js";
import {
  type Announcement,
  bytesPerSyncMessageMax,
  type MemberState,
  Membership,
  MembershipLoadError,
  MembershipSyncError,
  replicasAcceptedMax,
  replicasAnnouncedMax,
  changesAcceptedMax,
} from "../../cluster/membership.js";

/** A distinct, repeatable Automerge actor per replica id and incarnation of its process. */
function actorHex(replicaId: string, incarnation = 0): string {
  return Buffer.from(`${replicaId}#${incarnation}`).toString("hex");
}

function fresh(replicaId: string, incarnation = 0): Membership {
  return Membership.load(replicaId, undefined, { automergeActorHex: actorHex(replicaId, incarnation) });
}

function reloaded(replicaId: string, bytes: Uint8Array, incarnation: number): Membership {
  return Membership.load(replicaId, bytes, { automergeActorHex: actorHex(replicaId, incarnation) });
}

function announcement(replicaId: string, variant = 0): Announcement {
  return { peerAddress: `${replicaId}.shop:${7000 + variant}`, httpAddress: `${replicaId}.shop:${8000 + variant}`, actor: `${replicaId}/inc${variant}` };
}

/** Every pair exchanges sync messages, delivered at once, until a full round sends none. */
function syncUntilQuiet(replicas: ReadonlyMap<string, Membership>, roundsMax = 30): number {
  for (let round = 1; round <= roundsMax; round += 1) {
    let sent = 0;
    for (const [fromId, from] of replicas) {
      for (const [toId, to] of replicas) {
        if (fromId === toId) continue;
        const message = from.syncMessageFor(toId);
        if (message === null) continue;
        sent += 1;
        to.receiveSync(fromId, message);
      }
    }
    if (sent === 0) return round;
  }
  throw new Error(`sync did not go quiet in ${roundsMax} rounds`);
}

/** Links closed and reopened: every side forgets every other side's sync state. */
function reconnectAll(replicas: ReadonlyMap<string, Membership>): void {
  for (const [id, replica] of replicas) for (const otherId of replicas.keys()) if (otherId !== id) replica.peerDisconnected(otherId);
}

function expectConverged(replicas: ReadonlyMap<string, Membership>): void {
  const [first, ...rest] = [...replicas.values()];
  for (const replica of rest) {
    expect(replica.heads()).toEqual(first!.heads());
    expect(replica.view()).toEqual(first!.view());
  }
}

function cluster(ids: readonly string[]): Map<string, Membership> {
  const replicas = new Map(ids.map((id) => [id, fresh(id)] as const));
  for (const [id, replica] of replicas) replica.announce(announcement(id));
  syncUntilQuiet(replicas);
  return replicas;
}

function get(replicas: ReadonlyMap<string, Membership>, id: string): Membership {
  const replica = replicas.get(id);
  if (replica === undefined) throw new Error(`no replica ${id}`);
  return replica;
}

// A hostile peer: plain Automerge on the shared base, writing whatever it likes.
type HostileDocument = { replicas: Record<string, unknown>; [key: string]: unknown };

function hostileFrom(bytes: Uint8Array): Automerge.Doc<HostileDocument> {
  return Automerge.load<HostileDocument>(bytes, { actor: actorHex("hostile") });
}

/** Runs the sync protocol between a raw Automerge document and a victim until quiet; the victim's errors propagate. */
function pushHostile(hostile: Automerge.Doc<HostileDocument>, victim: Membership, hostileId = "hostile"): void {
  let doc = hostile;
  let syncState = Automerge.initSyncState();
  for (let round = 0; round < 30; round += 1) {
    const [nextSyncState, message] = Automerge.generateSyncMessage(doc, syncState);
    syncState = nextSyncState;
    if (message !== null) victim.receiveSync(hostileId, message);
    const reply = victim.syncMessageFor(hostileId);
    if (message === null && reply === null) return;
    if (reply !== null) [doc, syncState] = Automerge.receiveSyncMessage(doc, syncState, reply);
  }
  throw new Error("hostile sync did not go quiet");
}

function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  return Buffer.from(haystack).indexOf(Buffer.from(needle));
}

function snapshot(replica: Membership): { heads: string[]; view: unknown; saved: Uint8Array } {
  return { heads: replica.heads(), view: replica.view(), saved: replica.save() };
}

describe("Membership basics", () => {
  it("loads under ESM and starts empty; a fresh save loads back", () => {
    const replica = fresh("r1");
    expect(replica.view()).toEqual([]);
    expect(Membership.load("r1", replica.save()).view()).toEqual([]);
  });

  it("announce creates an active entry, repeats are no-ops (also after a restart), changes are written", () => {
    const replica = fresh("r1");
    expect(replica.announce(announcement("r1"))).toBe(true);
    expect(replica.view()).toEqual([{ replicaId: "r1", ...announcement("r1"), state: "active" }]);
    const heads = replica.heads();
    expect(replica.announce(announcement("r1"))).toBe(false);
    expect(replica.heads()).toEqual(heads);
    const restarted = reloaded("r1", replica.save(), 1);
    expect(restarted.announce(announcement("r1"))).toBe(false);
    expect(restarted.heads()).toEqual(heads);
    expect(restarted.announce(announcement("r1", 1))).toBe(true);
    expect(restarted.member("r1")).toEqual({ replicaId: "r1", ...announcement("r1", 1), state: "active" });
  });

  it("announce keeps an existing state: a restart does not undo draining", () => {
    const replica = fresh("r1");
    replica.announce(announcement("r1"));
    replica.setState("r1", "draining");
    expect(replica.announce(announcement("r1", 1))).toBe(true);
    expect(replica.member("r1")?.state).toBe("draining");
  });

  it("validates announcements and setState arguments with RangeErrors", () => {
    const replica = fresh("r1");
    expect(() => replica.announce({ ...announcement("r1"), peerAddress: "no-port" })).toThrow(RangeError);
    expect(() => replica.announce({ ...announcement("r1"), httpAddress: "host:70000" })).toThrow(RangeError);
    expect(() => replica.announce({ ...announcement("r1"), actor: "" })).toThrow(RangeError);
    replica.announce(announcement("r1"));
    expect(() => replica.setState("r9", "draining")).toThrow(/unknown replica "r9"/);
    expect(() => replica.setState("r1", "gone" as MemberState)).toThrow(/must be one of joining, active, draining, retired/);
    expect(replica.setState("r1", "active")).toBe(false);
    expect(replica.setState("r1", "draining")).toBe(true);
    expect(replica.setState("r1", "active")).toBe(true);
    expect(replica.setState("r1", "retired")).toBe(true);
    expect(() => replica.setState("r1", "active")).toThrow(/retired, which is final/);
    expect(() => replica.setState("r1", "draining")).toThrow(RangeError);
    expect(replica.setState("r1", "retired")).toBe(false);
    expect(() => Membership.load("bad id")).toThrow(RangeError);
    expect(() => replica.syncMessageFor("")).toThrow(RangeError);
  });

  it("a joiner enters as joining, the others see it, and it turns active; nothing goes back to joining", () => {
    const replicas = cluster(["r1", "r2"]);
    const joiner = reloaded("r3", get(replicas, "r1").save(), 0);
    expect(joiner.announce(announcement("r3"), "joining")).toBe(true);
    replicas.set("r3", joiner);
    syncUntilQuiet(replicas);
    expect(get(replicas, "r1").member("r3")?.state).toBe("joining");
    expect(get(replicas, "r2").member("r3")?.state).toBe("joining");
    // A restart while joining keeps joining: the entry exists, its state is kept.
    expect(joiner.announce(announcement("r3", 1), "active")).toBe(true);
    expect(joiner.member("r3")?.state).toBe("joining");
    expect(joiner.setState("r3", "active")).toBe(true);
    syncUntilQuiet(replicas);
    expectConverged(replicas);
    expect(get(replicas, "r1").member("r3")?.state).toBe("active");
    expect(() => joiner.setState("r3", "joining")).toThrow(/only a new entry is joining/);
    expect(() => get(replicas, "r1").setState("r2", "joining")).toThrow(RangeError);
  });

  it("of a concurrent joining and active, active wins (the later state of a member's life)", () => {
    const replicas = cluster(["r1", "r2"]);
    const base = get(replicas, "r1").save();
    const joiner = reloaded("r3", base, 0);
    joiner.announce(announcement("r3"), "joining");
    // Another copy of r3's document (an old disk) entered it as active, concurrently.
    const other = reloaded("r3", base, 1);
    other.announce(announcement("r3"), "active");
    const bytes = other.save();
    const merged = reloaded("r1", bytes, 2);
    const pair = new Map([
      ["r3", joiner],
      ["r1", merged],
    ]);
    syncUntilQuiet(pair);
    expect(joiner.member("r3")?.state).toBe("active");
    expect(merged.member("r3")?.state).toBe("active");
  });

  it("refuses a new replica once replicasAnnouncedMax entries exist", () => {
    const first = fresh("r0");
    first.announce(announcement("r0"));
    let bytes = first.save();
    for (let index = 1; index < replicasAnnouncedMax; index += 1) {
      const joiner = reloaded(`r${index}`, bytes, 0);
      joiner.announce(announcement(`r${index}`));
      bytes = joiner.save();
    }
    const late = reloaded("late", bytes, 0);
    expect(late.view()).toHaveLength(replicasAnnouncedMax);
    expect(() => late.announce(announcement("late"))).toThrow(/membership is full/);
  });

  it("loading garbage bytes throws MembershipLoadError", () => {
    expect(() => Membership.load("r1", new Uint8Array([1, 2, 3]))).toThrow(MembershipLoadError);
    const foreign = Automerge.save(Automerge.from({ replicas: {} }));
    expect(() => Membership.load("r1", foreign)).toThrow(/does not share the membership base/);
  });
});

describe("Membership sync converges (G3)", () => {
  it("two replicas announcing independently end with equal views holding both", () => {
    const replicas = cluster(["r1", "r2"]);
    expectConverged(replicas);
    expect(get(replicas, "r1").activeReplicaIds()).toEqual(["r1", "r2"]);
    expect(
      get(replicas, "r2")
        .view()
        .map((member) => member.peerAddress),
    ).toEqual(["r1.shop:7000", "r2.shop:7000"]);
  });

  it("three replicas with concurrent announces and state changes converge, the furthest state winning", () => {
    const replicas = cluster(["r1", "r2", "r3"]);
    // Partitioned: each edits without hearing from the others.
    get(replicas, "r1").setState("r2", "draining");
    get(replicas, "r2").announce(announcement("r2", 1));
    get(replicas, "r3").setState("r3", "draining");
    get(replicas, "r3").setState("r2", "draining");
    get(replicas, "r2").setState("r3", "draining");
    get(replicas, "r2").setState("r3", "active"); // concurrent with r3's draining: draining is further
    syncUntilQuiet(replicas);
    expectConverged(replicas);
    expect(get(replicas, "r1").view()).toEqual([
      { replicaId: "r1", ...announcement("r1"), state: "active" },
      { replicaId: "r2", ...announcement("r2", 1), state: "draining" },
      { replicaId: "r3", ...announcement("r3"), state: "draining" },
    ]);
    // Once seen, draining can be undone on purpose.
    expect(get(replicas, "r1").setState("r3", "active")).toBe(true);
    syncUntilQuiet(replicas);
    expectConverged(replicas);
    expect(get(replicas, "r3").member("r3")?.state).toBe("active");
  });

  it("a message lost in flight stalls nothing after peerDisconnected on both sides", () => {
    const replicas = cluster(["r1", "r2"]);
    const r1 = get(replicas, "r1");
    const r2 = get(replicas, "r2");
    r1.setState("r2", "draining");
    expect(r1.syncMessageFor("r2")).not.toBeNull(); // lost
    r2.announce(announcement("r2", 2));
    const fromR2 = r2.syncMessageFor("r1");
    if (fromR2 !== null) r1.receiveSync("r2", fromR2);
    reconnectAll(replicas);
    syncUntilQuiet(replicas);
    expectConverged(replicas);
    expect(r2.member("r2")).toEqual({ replicaId: "r2", ...announcement("r2", 2), state: "draining" });
  });

  it("save/load keeps the view and goes on syncing", () => {
    const replicas = cluster(["r1", "r2", "r3"]);
    get(replicas, "r2").setState("r3", "draining");
    syncUntilQuiet(replicas);
    const restarted = reloaded("r1", get(replicas, "r1").save(), 1);
    expect(restarted.view()).toEqual(get(replicas, "r1").view());
    expect(restarted.heads()).toEqual(get(replicas, "r1").heads());
    replicas.set("r1", restarted);
    reconnectAll(replicas);
    get(replicas, "r3").setState("r3", "retired");
    restarted.setState("r2", "draining");
    syncUntilQuiet(replicas);
    expectConverged(replicas);
    expect(restarted.activeReplicaIds()).toEqual(["r1"]);
  });
});

describe("Retired is final", () => {
  it("a stale replica's concurrent 'active' does not revive a retired one", () => {
    const replicas = cluster(["r1", "r2", "r3"]);
    get(replicas, "r1").setState("r2", "draining");
    syncUntilQuiet(replicas);
    get(replicas, "r1").setState("r2", "retired");
    get(replicas, "r3").setState("r2", "active"); // has not heard of the retirement
    get(replicas, "r2").announce(announcement("r2", 5)); // restarts with new addresses, also unaware
    syncUntilQuiet(replicas);
    expectConverged(replicas);
    for (const replica of replicas.values()) {
      expect(replica.member("r2")).toEqual({ replicaId: "r2", ...announcement("r2", 5), state: "retired" });
      expect(() => replica.setState("r2", "active")).toThrow(RangeError);
    }
  });

  it("a replica that lost its data and announces from an empty document stays retired", () => {
    const replicas = cluster(["r1", "r2"]);
    get(replicas, "r1").setState("r2", "retired");
    syncUntilQuiet(replicas);
    const amnesiac = fresh("r2", 1); // a new Automerge actor: the old one's changes are lost with the data
    amnesiac.announce(announcement("r2", 1));
    expect(amnesiac.member("r2")?.state).toBe("active");
    replicas.set("r2", amnesiac);
    reconnectAll(replicas);
    syncUntilQuiet(replicas);
    expectConverged(replicas);
    expect(amnesiac.member("r2")).toEqual({ replicaId: "r2", ...announcement("r2", 1), state: "retired" });
    expect(amnesiac.activeReplicaIds()).toEqual(["r1"]);
  });

  it("a replica that lost its data gets its new addresses into the view, whichever entry copy wins", () => {
    const replicas = new Map([["r1", fresh("r1")]]);
    get(replicas, "r1").announce(announcement("r1"));
    replicas.set("r2", fresh("r2"));
    syncUntilQuiet(replicas); // r2 has seen r1's changes: its entry is made at a later op counter
    get(replicas, "r2").announce(announcement("r2"));
    syncUntilQuiet(replicas);
    const amnesiac = fresh("r2", 1); // its new entry is made at the first op counter: the old one wins the key
    amnesiac.announce(announcement("r2", 1));
    replicas.set("r2", amnesiac);
    reconnectAll(replicas);
    syncUntilQuiet(replicas);
    expectConverged(replicas);
    expect(get(replicas, "r1").member("r2")).toEqual({ replicaId: "r2", ...announcement("r2", 1), state: "active" });
  });

  it("after such a double entry, draining can still be undone: writes reach every copy", () => {
    const replicas = cluster(["r1", "r2"]);
    get(replicas, "r1").setState("r2", "draining");
    syncUntilQuiet(replicas);
    const amnesiac = fresh("r2", 1);
    amnesiac.announce(announcement("r2", 1));
    replicas.set("r2", amnesiac);
    reconnectAll(replicas);
    syncUntilQuiet(replicas);
    expect(get(replicas, "r1").member("r2")?.state).toBe("draining");
    expect(get(replicas, "r1").setState("r2", "active")).toBe(true);
    syncUntilQuiet(replicas);
    expectConverged(replicas);
    expect(amnesiac.member("r2")?.state).toBe("active");
  });

  it("a peer writing 'active' over 'retired' is refused whole, and nothing changes", () => {
    const replicas = cluster(["r1", "r2"]);
    const r1 = get(replicas, "r1");
    r1.setState("r2", "retired");
    const hostile = Automerge.change(hostileFrom(r1.save()), (doc) => {
      const entry = doc.replicas["r2"] as Record<string, unknown>;
      entry["state"] = new Automerge.ImmutableString("active");
    });
    const before = snapshot(r1);
    expect(() => pushHostile(hostile, r1)).toThrow(/would turn retired replica r2 into active/);
    expect(snapshot(r1)).toEqual(before);
  });
});

describe("A peer's bytes are bounded and validated", () => {
  it("garbage sync bytes throw MembershipSyncError and leave the document unchanged", () => {
    const replicas = cluster(["r1", "r2"]);
    const r1 = get(replicas, "r1");
    const before = snapshot(r1);
    const garbageArb = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      // The sync message type byte first, so decoding gets further before failing.
      fc.uint8Array({ maxLength: 200 }).map((tail) => Uint8Array.of(0x42, ...tail)),
    );
    fc.assert(
      fc.property(garbageArb, (bytes) => {
        expect(() => r1.receiveSync("r2", bytes)).toThrow(MembershipSyncError);
        expect(snapshot(r1)).toEqual(before);
      }),
      { numRuns: 300 },
    );
    // A real message still works afterwards.
    get(replicas, "r2").setState("r1", "draining");
    reconnectAll(replicas);
    syncUntilQuiet(replicas);
    expectConverged(replicas);
    expect(r1.member("r1")?.state).toBe("draining");
  });

  it("a valid sync message whose changes are mangled is refused without harm", () => {
    const replicas = cluster(["r1", "r2"]);
    const r1 = get(replicas, "r1");
    const r2 = get(replicas, "r2");
    r2.setState("r1", "draining");
    reconnectAll(replicas);
    // Exchange until r2 offers a message carrying changes; keep that one back.
    let withChanges: Uint8Array | null = null;
    for (let round = 0; round < 10 && withChanges === null; round += 1) {
      const fromR2 = r2.syncMessageFor("r1");
      if (fromR2 !== null && Automerge.decodeSyncMessage(fromR2).changes.length > 0) withChanges = fromR2;
      else if (fromR2 !== null) r1.receiveSync("r2", fromR2);
      const fromR1 = r1.syncMessageFor("r2");
      if (fromR1 !== null) r2.receiveSync("r1", fromR1);
    }
    if (withChanges === null) throw new Error("r2 never sent its changes");
    const before = snapshot(r1);
    // Flip bytes inside the first change's chunk (its checksum then fails).
    const change = Automerge.decodeSyncMessage(withChanges).changes[0]!;
    const changeStart = indexOfBytes(withChanges, change);
    expect(changeStart).toBeGreaterThan(0);
    for (let offset = 0; offset < change.byteLength; offset += 1) {
      const mangled = Uint8Array.from(withChanges);
      mangled[changeStart + offset] = mangled[changeStart + offset]! ^ 0xff;
      expect(() => r1.receiveSync("r2", mangled)).toThrow(MembershipSyncError);
      expect(snapshot(r1)).toEqual(before);
    }
    r1.receiveSync("r2", withChanges);
    expect(r1.member("r1")?.state).toBe("draining");
  });

  it("a real message with random bytes flipped is refused or harmless; syncing afresh converges", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat({ max: 5 }), (flips, skip) => {
        const replicas = cluster(["r1", "r2"]);
        const r1 = get(replicas, "r1");
        const r2 = get(replicas, "r2");
        r2.setState("r1", "draining");
        r2.announce(announcement("r2", 3));
        reconnectAll(replicas);
        // Deliver `skip` messages normally, then corrupt the next one from r2.
        for (let round = 0; round <= skip; round += 1) {
          const fromR2 = r2.syncMessageFor("r1");
          if (fromR2 !== null && round === skip) {
            const mangled = Uint8Array.from(fromR2);
            for (const [position, mask] of flips) mangled[position % mangled.byteLength] = mangled[position % mangled.byteLength]! ^ mask;
            try {
              r1.receiveSync("r2", mangled);
            } catch (error) {
              expect(error).toBeInstanceOf(MembershipSyncError);
            }
          } else if (fromR2 !== null) r1.receiveSync("r2", fromR2);
          const fromR1 = r1.syncMessageFor("r2");
          if (fromR1 !== null) r2.receiveSync("r1", fromR1);
        }
        reconnectAll(replicas);
        syncUntilQuiet(replicas);
        expectConverged(replicas);
        expect(r1.member("r2")).toEqual({ replicaId: "r2", ...announcement("r2", 3), state: "active" });
        expect(r1.member("r1")?.state).toBe("draining");
      }),
      { numRuns: 150 },
    );
  });

  it.each([
    ["entries but no bits per entry", [1, 0, 7]],
    ["a probe count that would spin", [1, 10, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0]],
  ])("refuses a Bloom filter with %s, and still syncs afterwards", (_, bloom) => {
    const replicas = cluster(["r1", "r2"]);
    const r1 = get(replicas, "r1");
    const r2 = get(replicas, "r2");
    reconnectAll(replicas);
    const genuine = Automerge.decodeSyncMessage(r2.syncMessageFor("r1") ?? new Uint8Array());
    const forged = Automerge.encodeSyncMessage({ ...genuine, have: [{ lastSync: [], bloom: Uint8Array.from(bloom) }] });
    expect(() => r1.receiveSync("r2", forged)).toThrow(MembershipSyncError);
    expect(() => r1.syncMessageFor("r2")).not.toThrow();
    r2.announce(announcement("r2", 3));
    reconnectAll(replicas);
    syncUntilQuiet(replicas);
    expectConverged(replicas);
  });

  it("refuses oversized messages before reading them", () => {
    const replica = fresh("r1");
    expect(() => replica.receiveSync("r2", new Uint8Array(bytesPerSyncMessageMax + 1))).toThrow(/exceeds/);
    expect(bytesPerSyncMessageMax).toBeLessThan(bytesPerFrameMax);
  });

  it("view() skips entries with invalid fields instead of throwing", () => {
    const r1 = fresh("r1");
    r1.announce(announcement("r1"));
    const hostile = Automerge.change(hostileFrom(r1.save()), (doc) => {
      const valid = { ...announcementScalars("x"), state: new Automerge.ImmutableString("active") };
      doc.replicas["textStrings"] = { ...announcement("textStrings"), state: "active" }; // collaborative text, not scalars
      doc.replicas["badAddress"] = { ...valid, peerAddress: new Automerge.ImmutableString("nowhere") };
      doc.replicas["badState"] = { ...valid, state: new Automerge.ImmutableString("zombie") };
      doc.replicas["numberState"] = { ...valid, state: 2 };
      doc.replicas["missingActor"] = { peerAddress: valid.peerAddress, httpAddress: valid.httpAddress, state: valid.state };
      doc.replicas["aList"] = [1, 2, 3];
      doc.replicas["aString"] = "hello";
      doc.replicas["bad id!"] = valid;
      doc.replicas["good"] = { ...announcementScalars("good"), state: new Automerge.ImmutableString("draining") };
      doc["elsewhere"] = { anything: true };
    });
    pushHostile(hostile, r1);
    expect(r1.view().map((member) => member.replicaId)).toEqual(["good", "r1"]);
    expect(r1.member("good")).toEqual({ replicaId: "good", ...announcement("good"), state: "draining" });
    expect(() => r1.setState("badState", "draining")).toThrow(/unknown replica/);
  });

  it("refuses a document with more than replicasAcceptedMax entries, or a replaced replicas map", () => {
    const r1 = fresh("r1");
    r1.announce(announcement("r1"));
    const crowded = Automerge.change(hostileFrom(r1.save()), (doc) => {
      for (let index = 0; index < replicasAcceptedMax; index += 1) doc.replicas[`x${index}`] = "filler";
    });
    const before = snapshot(r1);
    expect(() => pushHostile(crowded, r1)).toThrow(/more than 128/);
    expect(snapshot(r1)).toEqual(before);
    const replaced = Automerge.change(hostileFrom(r1.save()), (doc) => {
      doc.replicas = {};
    });
    r1.peerDisconnected("hostile");
    expect(() => pushHostile(replaced, r1)).toThrow(/does not share the membership base/);
    expect(snapshot(r1)).toEqual(before);
  });
});

describe("Membership sizes", () => {
  it("saved documents stay small: 3 and 20 replicas", () => {
    for (const [count, bytesMax] of [
      [3, 1024],
      [20, 4096],
    ] as const) {
      // Each joins from the previous one's saved document and announces itself.
      let bytes = fresh("replica-0").save();
      for (let index = 0; index < count; index += 1) {
        const joiner = reloaded(`replica-${index}`, bytes, 0);
        joiner.announce(announcement(`replica-${index}`));
        bytes = joiner.save();
      }
      expect(Membership.load("replica-0", bytes).view()).toHaveLength(count);
      expect(bytes.byteLength).toBeLessThan(bytesMax);
    }
  });

  it("catching up on changesAcceptedMax changes fits in bytesPerSyncMessageMax (extrapolated from 500)", () => {
    const replicas = cluster(["r1", "r2", "r3"]);
    const r1 = get(replicas, "r1");
    const r2 = get(replicas, "r2");
    reconnectAll(replicas);
    // r2 is away while r1 makes 500 changes, then they sync: r2 needs all of them.
    const changes = 500;
    for (let index = 0; index < changes; index += 1) {
      r1.setState("r3", index % 2 === 0 ? "draining" : "active");
      if (index % 50 === 0) r1.announce(announcement("r1", index));
    }
    let bytesLargest = 0;
    for (let round = 0; round < 10; round += 1) {
      const toR2 = r1.syncMessageFor("r2");
      if (toR2 !== null) r2.receiveSync("r1", toR2);
      const toR1 = r2.syncMessageFor("r1");
      if (toR1 !== null) r1.receiveSync("r2", toR1);
      bytesLargest = Math.max(bytesLargest, toR2?.byteLength ?? 0, toR1?.byteLength ?? 0);
    }
    expect(r2.view()).toEqual(r1.view());
    expect((bytesLargest / changes) * changesAcceptedMax).toBeLessThan(bytesPerSyncMessageMax);
  });
});

function announcementScalars(replicaId: string): Record<keyof Announcement, Automerge.ImmutableString> {
  const plain = announcement(replicaId);
  return {
    peerAddress: new Automerge.ImmutableString(plain.peerAddress),
    httpAddress: new Automerge.ImmutableString(plain.httpAddress),
    actor: new Automerge.ImmutableString(plain.actor),
  };
}

// Random schedules: local edits, sends, in-order deliveries, lost messages, link
// resets, pairs syncing to the end, restarts from saved bytes and replicas losing their data, interleaved at
// random. Every step: no
// unexpected error, and a replica that has seen a replica retired keeps seeing it
// retired. After resetting every link and syncing until quiet: equal documents and
// views (G3), every replica's entry as it last announced it, every retirement kept.
const replicaIds = ["r0", "r1", "r2"] as const;
const indexArb = fc.nat({ max: replicaIds.length - 1 });
const stateArb = fc.constantFrom<MemberState>("active", "draining", "retired");

type Step =
  | { readonly kind: "announce"; readonly replica: number; readonly variant: number }
  | { readonly kind: "setState"; readonly replica: number; readonly target: number; readonly state: MemberState }
  | { readonly kind: "send"; readonly from: number; readonly to: number }
  | { readonly kind: "deliver"; readonly from: number; readonly to: number }
  | { readonly kind: "lose"; readonly from: number; readonly to: number }
  | { readonly kind: "reconnect"; readonly from: number; readonly to: number }
  /** A fresh link between two replicas that stays up until they have nothing more to say. */
  | { readonly kind: "syncPair"; readonly from: number; readonly to: number }
  | { readonly kind: "restart"; readonly replica: number }
  | { readonly kind: "wipe"; readonly replica: number; readonly variant: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("announce" as const), replica: indexArb, variant: fc.nat({ max: 2 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("setState" as const), replica: indexArb, target: indexArb, state: stateArb }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("send" as const), from: indexArb, to: indexArb }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("deliver" as const), from: indexArb, to: indexArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("lose" as const), from: indexArb, to: indexArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("reconnect" as const), from: indexArb, to: indexArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("syncPair" as const), from: indexArb, to: indexArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("restart" as const), replica: indexArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("wipe" as const), replica: indexArb, variant: fc.nat({ max: 2 }) }) },
);

class SimulatedCluster {
  readonly replicas = new Map<string, Membership>(replicaIds.map((id) => [id, fresh(id)]));
  /** Messages in flight per directed link "from>to", oldest first (a link delivers in order). */
  readonly inFlight = new Map<string, Uint8Array[]>();
  readonly lastAnnounced = new Map<string, Announcement>();
  readonly retiredSeen = new Map<string, Set<string>>(replicaIds.map((id) => [id, new Set<string>()]));
  readonly incarnations = new Map<string, number>(replicaIds.map((id) => [id, 0]));

  run(step: Step): void {
    switch (step.kind) {
      case "announce":
        return this.announce(replicaIds[step.replica]!, step.variant);
      case "setState":
        return this.setState(replicaIds[step.replica]!, replicaIds[step.target]!, step.state);
      case "send":
        return this.send(replicaIds[step.from]!, replicaIds[step.to]!);
      case "deliver":
        return this.deliver(replicaIds[step.from]!, replicaIds[step.to]!);
      case "lose":
        this.queue(replicaIds[step.from]!, replicaIds[step.to]!).shift();
        return;
      case "reconnect":
        return this.reconnect(replicaIds[step.from]!, replicaIds[step.to]!);
      case "syncPair":
        return this.syncPair(replicaIds[step.from]!, replicaIds[step.to]!);
      case "restart":
        return this.restart(replicaIds[step.replica]!);
      case "wipe":
        return this.wipe(replicaIds[step.replica]!, step.variant);
    }
  }

  announce(id: string, variant: number): void {
    get(this.replicas, id).announce(announcement(id, variant));
    this.lastAnnounced.set(id, announcement(id, variant));
  }

  setState(id: string, targetId: string, state: MemberState): void {
    const replica = get(this.replicas, id);
    const current = replica.member(targetId);
    if (current === undefined || (current.state === "retired" && state !== "retired")) {
      expect(() => replica.setState(targetId, state)).toThrow(RangeError);
    } else {
      replica.setState(targetId, state);
    }
  }

  send(fromId: string, toId: string): void {
    if (fromId === toId) return;
    const message = get(this.replicas, fromId).syncMessageFor(toId);
    if (message !== null) this.queue(fromId, toId).push(message);
  }

  deliver(fromId: string, toId: string): void {
    const message = this.queue(fromId, toId).shift();
    if (message !== undefined) get(this.replicas, toId).receiveSync(fromId, message);
  }

  /** The link closed: what was in flight either way is lost, both sides reset. */
  reconnect(a: string, b: string): void {
    if (a === b) return;
    this.inFlight.set(`${a}>${b}`, []);
    this.inFlight.set(`${b}>${a}`, []);
    get(this.replicas, a).peerDisconnected(b);
    get(this.replicas, b).peerDisconnected(a);
  }

  syncPair(a: string, b: string): void {
    if (a === b) return;
    this.reconnect(a, b);
    syncUntilQuiet(new Map([a, b].map((id) => [id, get(this.replicas, id)] as const)));
  }

  /** A process restart: reload from saved bytes with a new Automerge actor, links reset, announce as a node does on start. */
  restart(id: string): void {
    this.replicas.set(id, reloaded(id, get(this.replicas, id).save(), this.nextIncarnation(id)));
    for (const other of replicaIds) this.reconnect(id, other);
    const announced = this.lastAnnounced.get(id);
    if (announced !== undefined) get(this.replicas, id).announce(announced);
  }

  /** The replica lost its data folder: it starts from an empty document and announces itself anew. */
  wipe(id: string, variant: number): void {
    this.replicas.set(id, fresh(id, this.nextIncarnation(id)));
    this.retiredSeen.set(id, new Set<string>());
    for (const other of replicaIds) this.reconnect(id, other);
    this.announce(id, variant);
  }

  nextIncarnation(id: string): number {
    const incarnation = (this.incarnations.get(id) ?? 0) + 1;
    this.incarnations.set(id, incarnation);
    return incarnation;
  }

  queue(fromId: string, toId: string): Uint8Array[] {
    const key = `${fromId}>${toId}`;
    const existing = this.inFlight.get(key);
    if (existing !== undefined) return existing;
    const created: Uint8Array[] = [];
    this.inFlight.set(key, created);
    return created;
  }

  /** Retired stays retired in every replica's own view, step after step. */
  checkRetiredKept(): void {
    for (const [id, replica] of this.replicas) {
      const seen = this.retiredSeen.get(id)!;
      for (const retiredId of seen) expect(replica.member(retiredId)?.state).toBe("retired");
      for (const member of replica.view()) if (member.state === "retired") seen.add(member.replicaId);
    }
  }
}

describe("Membership random schedules (G3)", () => {
  it("any interleaving of edits, deliveries, losses, reconnects, restarts and data losses converges", () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 80, size: "max" }), (steps) => {
        const simulation = new SimulatedCluster();
        for (const step of steps) {
          simulation.run(step);
          simulation.checkRetiredKept();
        }
        for (const [a, b] of [
          ["r0", "r1"],
          ["r0", "r2"],
          ["r1", "r2"],
        ] as const)
          simulation.reconnect(a, b);
        syncUntilQuiet(simulation.replicas);
        expectConverged(simulation.replicas);
        simulation.checkRetiredKept();
        const view = get(simulation.replicas, "r0").view();
        expect(view.map((member) => member.replicaId)).toEqual([...simulation.lastAnnounced.keys()].sort());
        for (const member of view) {
          const { peerAddress, httpAddress, actor } = member;
          expect({ peerAddress, httpAddress, actor }).toEqual(simulation.lastAnnounced.get(member.replicaId));
        }
        const everRetired = new Set([...simulation.retiredSeen.values()].flatMap((seen) => [...seen]));
        for (const retiredId of everRetired) expect(get(simulation.replicas, "r0").member(retiredId)?.state).toBe("retired");
      }),
      { numRuns: 200 },
    );
  });
});
