// The cluster membership: which replicas exist, where they listen, and whether each is
// joining, active, draining or retired (in that order; retired is final). A small Automerge document, one copy
// per replica; no I/O here. The document, its rules and bounds: docs/DESIGN.md,
// "The membership document".
import * as Automerge from "@automerge/automerge";
import { assert } from "../crdt/boundedCounter.js";

export type MemberState = "joining" | "active" | "draining" | "retired";

export interface MemberView {
  readonly replicaId: string;
  /** host:port of the replica's replication port */
  readonly peerAddress: string;
  /** host:port of the replica's HTTP API */
  readonly httpAddress: string;
  readonly state: MemberState;
  /** the replica's current incarnation */
  readonly actor: string;
}

export interface Announcement {
  readonly peerAddress: string;
  readonly httpAddress: string;
  readonly actor: string;
}

export interface MembershipOptions {
  /**
   * Automerge actor id (hex) of this process's edits. Default: a fresh random one,
   * which is what production wants: an actor id must never be reused by a copy that
   * has not kept every change it made (e.g. after losing its data folder). Tests
   * pass one to make runs repeatable.
   */
  readonly automergeActorHex?: string;
}

/** A peer's sync message was refused; the document and the peer's sync state are unchanged. */
export class MembershipSyncError extends Error {
  constructor(
    readonly peerId: string,
    message: string,
  ) {
    super(`membership sync from ${peerId}: ${message}`);
    this.name = "MembershipSyncError";
  }
}

/** Stored membership bytes are not a valid membership document. */
export class MembershipLoadError extends Error {
  constructor(message: string) {
    super(`membership load: ${message}`);
    this.name = "MembershipLoadError";
  }
}

/** A replica may join (announce itself for the first time) only while fewer entries exist. */
export const replicasAnnouncedMax = 64;
/** Most entries accepted from peers; headroom over replicasAnnouncedMax for concurrent joins. */
export const replicasAcceptedMax = 2 * replicasAnnouncedMax;
/** Local edits are refused once the document holds this many changes. */
export const changesWrittenMax = 8192;
/** Most changes accepted from peers; headroom over changesWrittenMax for concurrent edits. */
export const changesAcceptedMax = 2 * changesWrittenMax;
/** Largest sync message accepted; a full history of changesAcceptedMax changes fits. */
export const bytesPerSyncMessageMax = 4 * 1024 * 1024;

/** In the order a member goes through them: of two concurrent states, the later one wins. */
export const memberStates: readonly MemberState[] = ["joining", "active", "draining", "retired"];
const replicaIdPattern = /^[A-Za-z0-9_-]{1,32}$/;
const actorPattern = /^[\x21-\x7e]{1,128}$/;
const addressPattern = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):(\d{1,5})$/;

/** Fixed actor of the shared base change ("membership" in hex). */
const baseActorHex = "6d656d62657273686970";
/** Object id of the `replicas` map made by the base change: its first op. */
const replicasObjectId = `1@${baseActorHex}`;
/** Changes carry no timestamp: no clocks in the document. */
const changeOptions: Automerge.ChangeOptions<MembershipDocument> = { time: undefined };

interface EntryDocument {
  peerAddress: Automerge.ImmutableString;
  httpAddress: Automerge.ImmutableString;
  actor: Automerge.ImmutableString;
  state: Automerge.ImmutableString;
}

interface MembershipDocument {
  replicas: Record<string, EntryDocument>;
}

type Backend = ReturnType<typeof Automerge.getBackend>;

export class Membership {
  readonly #selfId: string;
  #doc: Automerge.Doc<MembershipDocument>;
  readonly #syncStates = new Map<string, Automerge.SyncState>();
  /** What this process last announced: re-written when a merge shows other values for it. */
  #announced: Announcement | null = null;
  /** view() of the current document, computed on first use after a change. */
  #members: Map<string, MemberView> | null = null;

  private constructor(selfId: string, doc: Automerge.Doc<MembershipDocument>) {
    this.#selfId = selfId;
    this.#doc = doc;
  }

  /** A replica's membership, from its stored bytes, or fresh (sharing the base) without them. */
  static load(selfId: string, bytes?: Uint8Array, options: MembershipOptions = {}): Membership {
    checkReplicaId(selfId, "self id");
    const loadOptions: Automerge.InitOptions<MembershipDocument> = options.automergeActorHex === undefined ? {} : { actor: options.automergeActorHex };
    let doc: Automerge.Doc<MembershipDocument>;
    try {
      doc = Automerge.load<MembershipDocument>(bytes ?? baseDocumentBytes(), loadOptions);
    } catch (error) {
      throw new MembershipLoadError(`not an Automerge document: ${(error as Error).message}`);
    }
    const problem = documentProblem(doc);
    if (problem !== null) {
      Automerge.free(doc);
      throw new MembershipLoadError(problem);
    }
    return new Membership(selfId, doc);
  }

  /** The whole document, compacted (Automerge.save): what the caller stores under one key. */
  save(): Uint8Array {
    return Automerge.save(this.#doc);
  }

  /** Current heads (change hashes); equal heads mean equal documents. */
  heads(): string[] {
    return Automerge.getHeads(this.#doc);
  }

  /**
   * Write this replica's own entry: addresses and incarnation. A new entry starts
   * as `firstState` (active for a replica of the configured cluster, joining for one
   * that joins a running cluster); an existing one keeps its state (a restart does not
   * undo an operator's draining, and nothing revives a retired replica: check
   * member(selfId)). Returns whether the document changed (false when nothing differed).
   */
  announce(self: Announcement, firstState: "active" | "joining" = "active"): boolean {
    checkAnnouncement(self);
    this.#announced = { peerAddress: self.peerAddress, httpAddress: self.httpAddress, actor: self.actor };
    const existing = this.member(this.#selfId);
    if (existing === undefined) this.#checkCanJoin();
    const fallbackState = existing?.state ?? firstState;
    const changed = this.#change((doc) => writeOwnEntry(doc.replicas, this.#selfId, self, fallbackState));
    const after = this.member(this.#selfId);
    assert(
      after !== undefined && after.peerAddress === self.peerAddress && after.httpAddress === self.httpAddress && after.actor === self.actor,
      "own entry must read back as announced",
    );
    return changed;
  }

  /**
   * Set a replica's state. Throws RangeError for an unknown replica or state, for
   * leaving retired, and for going back to joining. Returns whether the document changed.
   */
  setState(replicaId: string, state: MemberState): boolean {
    if (!memberStates.includes(state)) {
      throw new RangeError(`membership state must be one of ${memberStates.join(", ")}, got ${JSON.stringify(state)}`);
    }
    const current = this.member(replicaId);
    if (current === undefined) throw new RangeError(`unknown replica ${JSON.stringify(replicaId)}: it has not announced itself`);
    if (current.state === state) return false;
    if (current.state === "retired") throw new RangeError(`replica ${replicaId} is retired, which is final: it cannot become ${state}`);
    if (state === "joining") throw new RangeError(`replica ${replicaId} is ${current.state}: only a new entry is joining`);
    const changed = this.#change((doc) => {
      for (const copy of entryCopies(doc.replicas, replicaId)) copy.state = new Automerge.ImmutableString(state);
    });
    assert(this.member(replicaId)?.state === state, "a set state must read back");
    return changed;
  }

  /** Valid entries, sorted by replica id. Entries with invalid fields are left out. */
  view(): MemberView[] {
    return [...this.#currentMembers().values()];
  }

  member(replicaId: string): MemberView | undefined {
    return this.#currentMembers().get(replicaId);
  }

  activeReplicaIds(): string[] {
    return this.view()
      .filter((member) => member.state === "active")
      .map((member) => member.replicaId);
  }

  /** The next sync message for `peerId`, or null when there is nothing to send now. */
  syncMessageFor(peerId: string): Uint8Array | null {
    const [syncState, message] = Automerge.generateSyncMessage(this.#doc, this.#syncStateOf(peerId));
    this.#syncStates.set(peerId, syncState);
    return message;
  }

  /**
   * Apply a peer's sync message. Returns whether the document changed. Throws
   * MembershipSyncError, changing nothing, for bytes that are too large, not a sync
   * message, or that would break the document's bounds or revive a retired replica.
   */
  receiveSync(peerId: string, bytes: Uint8Array): boolean {
    const syncState = this.#syncStateOf(peerId);
    if (bytes.byteLength > bytesPerSyncMessageMax) {
      throw new MembershipSyncError(peerId, `message of ${bytes.byteLength} bytes exceeds ${bytesPerSyncMessageMax}`);
    }
    let decoded: ReturnType<typeof Automerge.decodeSyncMessage>;
    try {
      decoded = Automerge.decodeSyncMessage(bytes);
    } catch (error) {
      throw new MembershipSyncError(peerId, `not an Automerge sync message: ${(error as Error).message}`);
    }
    // Automerge keeps the peer's Bloom filters in the sync state and trusts them: one
    // with entries but no bits makes the next generateSyncMessage panic (a remainder by
    // zero), and a huge probe count makes it spin. Refuse such filters here.
    const bloomProblems = decoded.have.map((have) => bloomFilterProblem(have.bloom)).filter((problem) => problem !== null);
    if (bloomProblems.length > 0) throw new MembershipSyncError(peerId, `invalid Bloom filter: ${bloomProblems[0]}`);
    const chunks = decoded.changes;
    // Automerge drops a chunk that fails to decode without a word; refuse it instead,
    // so the caller learns of the bad peer (and closes the link) rather than stalling.
    const chunkProblems = chunks.map(changesProblem).filter((problem) => problem !== null);
    if (chunkProblems.length > 0) throw new MembershipSyncError(peerId, `invalid change data: ${chunkProblems[0]}`);
    // Applied to a copy: a message that fails half way, or whose result is refused,
    // leaves the document as it was.
    const candidate = Automerge.clone(this.#doc);
    let received: [Automerge.Doc<MembershipDocument>, Automerge.SyncState, null];
    try {
      received = Automerge.receiveSyncMessage(candidate, syncState, bytes);
    } catch (error) {
      freeQuietly(candidate);
      throw new MembershipSyncError(peerId, `message cannot be applied: ${(error as Error).message}`);
    }
    const [next, nextSyncState] = received;
    const nextMembers = readMembers(Automerge.getBackend(next)); // never throws, whatever the document holds
    const problem = documentProblem(next) ?? revivalProblem(this.#currentMembers(), nextMembers);
    if (problem !== null) {
      freeQuietly(next);
      throw new MembershipSyncError(peerId, problem);
    }
    this.#syncStates.set(peerId, nextSyncState);
    const changed = this.#adopt(next, nextMembers);
    return this.#reassertOwnEntry() || changed;
  }

  /** Forget the sync state of a peer whose link closed; the next sync starts afresh. */
  peerDisconnected(peerId: string): void {
    this.#syncStates.delete(peerId);
  }

  #syncStateOf(peerId: string): Automerge.SyncState {
    checkReplicaId(peerId, "peer id");
    const existing = this.#syncStates.get(peerId);
    if (existing !== undefined) return existing;
    if (this.#syncStates.size >= replicasAcceptedMax) {
      throw new RangeError(`membership keeps sync state for at most ${replicasAcceptedMax} peers`);
    }
    const fresh = Automerge.initSyncState();
    this.#syncStates.set(peerId, fresh);
    return fresh;
  }

  /**
   * A replica is the authority on its own addresses and incarnation. A merge can show
   * others: after this replica lost its data and announced from an empty document, its
   * old entry may win over the new one. Write them again then (into every copy).
   */
  #reassertOwnEntry(): boolean {
    const announced = this.#announced;
    const own = this.member(this.#selfId);
    if (announced === null || own === undefined) return false;
    if (own.peerAddress === announced.peerAddress && own.httpAddress === announced.httpAddress && own.actor === announced.actor) {
      return false;
    }
    // Two processes wrongly sharing one replica id would rewrite each other forever: stop at the bound.
    if (Automerge.stats(this.#doc).numChanges >= changesWrittenMax) return false;
    return this.announce(announced);
  }

  #checkCanJoin(): void {
    const entries = Automerge.getBackend(this.#doc).keys(replicasObjectId).length;
    if (entries >= replicasAnnouncedMax) {
      throw new RangeError(`membership is full: ${entries} entries, at most ${replicasAnnouncedMax} replicas may join`);
    }
  }

  #change(edit: (doc: MembershipDocument) => void): boolean {
    const changes = Automerge.stats(this.#doc).numChanges;
    if (changes >= changesWrittenMax) {
      throw new RangeError(`membership document is full: ${changes} changes, local edits stop at ${changesWrittenMax}`);
    }
    const headsBefore = Automerge.getHeads(this.#doc);
    const next = Automerge.change(this.#doc, changeOptions, edit);
    const changed = !sameHeads(headsBefore, Automerge.getHeads(next));
    this.#doc = next;
    if (changed) this.#members = null;
    return changed;
  }

  /** Make `next` (a separate Automerge handle, read as `members`) the document; free the old one. */
  #adopt(next: Automerge.Doc<MembershipDocument>, members: Map<string, MemberView>): boolean {
    const previous = this.#doc;
    const changed = !sameHeads(Automerge.getHeads(previous), Automerge.getHeads(next));
    this.#doc = next;
    this.#members = members;
    freeQuietly(previous);
    return changed;
  }

  #currentMembers(): Map<string, MemberView> {
    if (this.#members === null) this.#members = readMembers(Automerge.getBackend(this.#doc));
    return this.#members;
  }
}

/** Bytes of the base document every replica starts from: one change, identical everywhere. */
function baseDocumentBytes(): Uint8Array {
  const empty = Automerge.init<MembershipDocument>({ actor: baseActorHex });
  const base = Automerge.change(empty, changeOptions, (doc) => {
    doc.replicas = {};
  });
  const bytes = Automerge.save(base);
  Automerge.free(base);
  return bytes;
}

/** Own entry: create it, or bring every copy's fields up to date (copies' state kept if valid). */
function writeOwnEntry(replicas: Record<string, EntryDocument>, selfId: string, self: Announcement, fallbackState: MemberState): void {
  const copies = entryCopies(replicas, selfId);
  if (copies.length === 0) {
    replicas[selfId] = {
      peerAddress: new Automerge.ImmutableString(self.peerAddress),
      httpAddress: new Automerge.ImmutableString(self.httpAddress),
      actor: new Automerge.ImmutableString(self.actor),
      state: new Automerge.ImmutableString(fallbackState),
    };
    return;
  }
  for (const copy of copies) {
    for (const field of ["peerAddress", "httpAddress", "actor"] as const) {
      if (scalarString(copy[field]) !== self[field]) copy[field] = new Automerge.ImmutableString(self[field]);
    }
    if (parseState(scalarString(copy.state)) === undefined) copy.state = new Automerge.ImmutableString(fallbackState);
  }
}

/**
 * Inside a change: every map copy of a replica's entry (usually one; more after
 * concurrent creations), as writable drafts. Anything that is not a map is ignored.
 */
function entryCopies(replicas: Record<string, EntryDocument>, replicaId: string): EntryDocument[] {
  let values: unknown[];
  try {
    const conflicts = Automerge.getConflicts(replicas, replicaId);
    values = conflicts === undefined ? [replicas[replicaId]] : Object.values(conflicts);
  } catch {
    values = [replicas[replicaId]]; // a value type this library cannot show (a hostile peer's): use the winner
  }
  return values.filter((value): value is EntryDocument => isMapDraft(value));
}

function isMapDraft(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value) && Automerge.getObjectId(value) !== null;
}

function scalarString(value: unknown): string | undefined {
  return value instanceof Automerge.ImmutableString ? value.val : undefined;
}

/** All valid entries, sorted by replica id; a replica's state is the furthest over all its copies and conflicts. */
function readMembers(backend: Backend): Map<string, MemberView> {
  const members = new Map<string, MemberView>();
  if (!isReplicasMap(backend)) return members;
  const replicaIds = backend
    .keys(replicasObjectId)
    .slice(0, replicasAcceptedMax)
    .filter((key) => replicaIdPattern.test(key))
    .sort(compareStrings);
  for (const replicaId of replicaIds) {
    let fields: Announcement | undefined;
    let stateRank = -1;
    // Copies come in Automerge's order, its winner last: take the last valid one's fields.
    for (const value of backend.getAll(replicasObjectId, replicaId)) {
      if (value[0] !== "map") continue;
      const copy = readEntryCopy(backend, value[1]);
      if (copy === undefined) continue;
      fields = copy.fields;
      stateRank = Math.max(stateRank, copy.stateRank);
    }
    const state = memberStates[stateRank];
    if (fields !== undefined && state !== undefined) members.set(replicaId, Object.freeze({ replicaId, ...fields, state }));
  }
  return members;
}

function readEntryCopy(backend: Backend, objectId: string): { fields: Announcement; stateRank: number } | undefined {
  const peerAddress = readScalarString(backend, objectId, "peerAddress");
  const httpAddress = readScalarString(backend, objectId, "httpAddress");
  const actor = readScalarString(backend, objectId, "actor");
  if (peerAddress === undefined || !isAddress(peerAddress)) return undefined;
  if (httpAddress === undefined || !isAddress(httpAddress)) return undefined;
  if (actor === undefined || !actorPattern.test(actor)) return undefined;
  let stateRank = -1;
  for (const value of backend.getAll(objectId, "state")) {
    const state = value[0] === "str" ? parseState(value[1]) : undefined;
    if (state !== undefined) stateRank = Math.max(stateRank, memberStates.indexOf(state));
  }
  if (stateRank < 0) return undefined;
  return { fields: { peerAddress, httpAddress, actor }, stateRank };
}

function readScalarString(backend: Backend, objectId: string, key: string): string | undefined {
  const value = backend.getWithType(objectId, key);
  return value !== null && value[0] === "str" ? value[1] : undefined;
}

function isReplicasMap(backend: Backend): boolean {
  const replicas = backend.getWithType("_root", "replicas");
  return replicas !== null && replicas[0] === "map" && replicas[1] === replicasObjectId;
}

/**
 * Why an entry of changes in a sync message is invalid, or null when it decodes. An
 * entry holds one or more chunks (a document chunk, or change chunks); loading them
 * into a scratch document checks their encoding and checksums.
 */
function changesProblem(changes: Uint8Array): string | null {
  try {
    Automerge.free(Automerge.load(changes, { allowMissingChanges: true }));
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/** The largest probe count accepted in a peer's Bloom filter; Automerge itself sends 7. */
const bloomProbesMax = 64;

/**
 * Why a sync message's Bloom filter would trip Automerge, or null when it is sound.
 * Wire format: uLEB128 entries, bits per entry, probes, then ceil(entries × bits / 8)
 * bytes of bits; no bytes at all, or zero entries, is an empty filter.
 */
function bloomFilterProblem(bloom: Uint8Array): string | null {
  if (bloom.byteLength === 0) return null; // an empty filter
  const reader = { bytes: bloom, offset: 0 };
  const entries = readUnsignedLeb128(reader);
  if (entries === 0) return null;
  const bitsPerEntry = readUnsignedLeb128(reader);
  const probes = readUnsignedLeb128(reader);
  if (entries === null || bitsPerEntry === null || probes === null) return "truncated header";
  if (bitsPerEntry === 0) return `${entries} entries but no bits per entry`;
  if (probes === 0 || probes > bloomProbesMax) return `${probes} probes, outside 1..${bloomProbesMax}`;
  const bitBytes = Math.ceil((entries * bitsPerEntry) / 8);
  if (bloom.byteLength - reader.offset !== bitBytes) return `${bloom.byteLength - reader.offset} bytes of bits, expected ${bitBytes}`;
  return null;
}

/** A uLEB128 of at most 32 bits (as Automerge writes them), or null when malformed. */
function readUnsignedLeb128(reader: { bytes: Uint8Array; offset: number }): number | null {
  let value = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    const byte = reader.bytes[reader.offset];
    if (byte === undefined) return null;
    reader.offset += 1;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return value <= 0xffff_ffff ? value : null;
  }
  return null;
}

/** Why a document is outside the bounds a replica holds, or null when it is within them. */
function documentProblem(doc: Automerge.Doc<MembershipDocument>): string | null {
  const backend = Automerge.getBackend(doc);
  if (!isReplicasMap(backend)) return "document does not share the membership base (its replicas map is missing or replaced)";
  const entries = backend.keys(replicasObjectId).length;
  if (entries > replicasAcceptedMax) return `document has ${entries} entries, more than ${replicasAcceptedMax}`;
  const changes = Automerge.stats(doc).numChanges;
  if (changes > changesAcceptedMax) return `document has ${changes} changes, more than ${changesAcceptedMax}`;
  return null;
}

/** Why `after` would revive a replica retired in `before`, or null when it would not. */
function revivalProblem(before: ReadonlyMap<string, MemberView>, after: ReadonlyMap<string, MemberView>): string | null {
  for (const member of before.values()) {
    if (member.state !== "retired") continue;
    const state = after.get(member.replicaId)?.state;
    if (state !== "retired") return `would turn retired replica ${member.replicaId} into ${state ?? "an invalid entry"}`;
  }
  return null;
}

function parseState(value: string | undefined): MemberState | undefined {
  return memberStates.find((state) => state === value);
}

function isAddress(value: string): boolean {
  const port = addressPattern.exec(value)?.[1];
  return port !== undefined && Number(port) >= 1 && Number(port) <= 65535;
}

function checkReplicaId(replicaId: string, what: string): void {
  if (!replicaIdPattern.test(replicaId)) throw new RangeError(`${what} must match ${replicaIdPattern}, got ${JSON.stringify(replicaId)}`);
}

function checkAnnouncement(self: Announcement): void {
  if (!isAddress(self.peerAddress)) throw new RangeError(`peerAddress must be host:port, got ${JSON.stringify(self.peerAddress)}`);
  if (!isAddress(self.httpAddress)) throw new RangeError(`httpAddress must be host:port, got ${JSON.stringify(self.httpAddress)}`);
  if (!actorPattern.test(self.actor)) throw new RangeError(`actor must be 1..128 printable characters, got ${JSON.stringify(self.actor)}`);
}

function sameHeads(left: readonly string[], right: readonly string[]): boolean {
  return left.length === right.length && left.every((hash, index) => hash === right[index]);
}

function compareStrings(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}

function freeQuietly(doc: Automerge.Doc<MembershipDocument>): void {
  try {
    Automerge.free(doc);
  } catch {
    // already freed, or left unusable by a failed apply: nothing more to release
  }
}
