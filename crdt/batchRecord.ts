// A batch_init as one small replicated record instead of n states. Keys "0".."n-1"
// of a kind that no later state has replaced are computed on read from the newest
// record that covers them: the same state on every replica, because the record
// names everything the eager batch_init used (its generation and maker, the
// members the rights were spread over, the amounts, a seed for the order lines).
// A key is stored, and shipped, only once it changes. docs/DESIGN.md, "batch_init and generations".
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { type Actor, BoundedCounter, assert } from "./boundedCounter.js";
import { DecodeError, packFields, readActor, readAmount, unpackFields } from "./codec.js";
import { type Generation, compareGenerations, sameGeneration } from "./generation.js";
import { ItemState } from "./itemState.js";
import { type OrderLine, OrderState } from "./orderState.js";
import { UserState } from "./userState.js";

export type BatchKind = "i" | "u" | "o";

/** Largest n of one batch_init (the API's bound too). */
export const batchCountMax = 1_000_000;
/** Records of one kind kept at most: each covers keys no newer one does, so there are few. */
export const batchRecordsMax = 256;
/** Most actors the rights of one batch are spread over. */
export const spreadActorsMax = 64;

export interface BatchRecord {
  readonly generation: Generation;
  /** Keys "0".."count-1". */
  readonly count: number;
  /** Where the rights (or order tokens) went, in order: key k's remainder and token start at position k. */
  readonly spreadActors: readonly Actor[];
  /** Items: starting stock; users: starting money; orders: 0. */
  readonly amount: number;
  /** Items: their price; orders: the price of each of the two lines' items; users: 0. */
  readonly price: number;
  /** Orders: lines pick items in [0, itemCount) and users in [0, userCount) from `seed`. */
  readonly itemCount: number;
  readonly userCount: number;
  readonly seed: number;
}

/**
 * The batch records of one kind, newest first, pruned: a record is kept only if it
 * covers more keys than every newer one (the others answer no key any more). Merge
 * is union-then-prune: commutative, associative, idempotent.
 */
export class BatchRecords {
  private records: BatchRecord[] = [];

  constructor(readonly kind: BatchKind) {}

  get all(): readonly BatchRecord[] {
    return this.records;
  }

  /** The generation of the newest record, if any. */
  get newest(): Generation | undefined {
    return this.records[0]?.generation;
  }

  /** The newest record covering key `id`, if the id is an index ("0", "17", never "017"). */
  recordFor(id: string): BatchRecord | undefined {
    if (this.records.length === 0) return undefined;
    const index = indexOf(id);
    if (index === undefined) return undefined;
    // Counts rise strictly from newest to oldest (pruning): the first that covers the index.
    let low = 0;
    let high = this.records.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.records[middle]!.count > index) high = middle;
      else low = middle + 1;
    }
    return this.records[low];
  }

  /** True if `record` would add nothing here: it is ours, or newer records answer every key it covers. */
  covers(record: BatchRecord): boolean {
    return this.records.some(
      (kept) =>
        sameGeneration(kept.generation, record.generation) || (compareGenerations(kept.generation, record.generation) > 0 && kept.count >= record.count),
    );
  }

  /**
   * Merge records in, all or none; true if any answers keys now. A DecodeError if
   * one differs from ours of the same generation, or more than batchRecordsMax
   * would be kept.
   */
  merge(incoming: readonly BatchRecord[]): boolean {
    const fresh: BatchRecord[] = [];
    for (const record of incoming) {
      const same = this.records.find((kept) => sameGeneration(kept.generation, record.generation));
      if (same === undefined) fresh.push(record);
      else if (!sameRecord(same, record)) throw new DecodeError(`batch record ${describe(record.generation)} differs from ours`);
    }
    if (fresh.length === 0) return false;
    const next = prune([...this.records, ...fresh]);
    if (next.length > batchRecordsMax) throw new DecodeError(`more than ${batchRecordsMax} batch records of kind ${this.kind}`);
    const changed = fresh.some((record) => next.includes(record));
    this.records = next;
    return changed;
  }

  /** Every key index the records answer: [record, first, end) ranges, newest first, disjoint. */
  *ranges(): Generator<readonly [BatchRecord, number, number]> {
    let covered = 0;
    for (const record of this.records) {
      yield [record, covered, record.count];
      covered = record.count;
    }
  }

  /** Keys answered by the records. */
  keyCount(): number {
    return this.records.at(-1)?.count ?? 0;
  }
}

function prune(records: BatchRecord[]): BatchRecord[] {
  records.sort((a, b) => compareGenerations(b.generation, a.generation));
  const kept: BatchRecord[] = [];
  let covered = 0;
  for (const record of records) {
    if (record.count <= covered) continue;
    kept.push(record);
    covered = record.count;
  }
  return kept;
}

function sameRecord(a: BatchRecord, b: BatchRecord): boolean {
  return (
    a.count === b.count &&
    a.amount === b.amount &&
    a.price === b.price &&
    a.itemCount === b.itemCount &&
    a.userCount === b.userCount &&
    a.seed === b.seed &&
    a.spreadActors.length === b.spreadActors.length &&
    a.spreadActors.every((actor, index) => actor === b.spreadActors[index])
  );
}

function describe(generation: Generation): string {
  return `${generation.counter}/${generation.actor}`;
}

/** The canonical decimal index an id names, if any. */
function indexOf(id: string): number | undefined {
  if (id.length === 0 || id.length > 7 || (id.length > 1 && id[0] === "0")) return undefined;
  let index = 0;
  for (let position = 0; position < id.length; position++) {
    const digit = id.charCodeAt(position) - 48;
    if (digit < 0 || digit > 9) return undefined;
    index = index * 10 + digit;
  }
  return index;
}

// ---- the states a record stands for

/**
 * Hand `amount` of `from`'s rights to `targets` in equal shares (`from` keeps its
 * own share if it is among them); the remainder goes to the targets from position
 * `rotation` on. A share whose row has no room left stays with `from`. Returns
 * what was handed over. Shared by new stock and credit, leaves, releases and batches.
 */
export function handOut(counter: BoundedCounter, from: Actor, amount: number, targets: readonly Actor[], rotation: number): number {
  if (targets.length === 0) return 0;
  const share = Math.floor(amount / targets.length);
  const remainder = amount % targets.length;
  let handed = 0;
  for (let index = 0; index < targets.length; index++) {
    const target = targets[index]!;
    if (target === from) continue;
    const extra = (index - (rotation % targets.length) + targets.length) % targets.length < remainder ? 1 : 0;
    const given = Math.min(share + extra, counter.transferRoom(from, target));
    if (given <= 0) continue;
    assert(counter.transfer(from, target, given) === null, "held rights can be handed on");
    handed += given;
  }
  return handed;
}

function spreadCounter(record: BatchRecord, index: number): BoundedCounter {
  const counter = new BoundedCounter();
  assert(counter.increment(record.generation.actor, record.amount) === null, "a batch amount is a safe integer");
  handOut(counter, record.generation.actor, record.amount, record.spreadActors, index);
  return counter;
}

export function batchItem(record: BatchRecord, index: number): ItemState {
  return new ItemState(record.generation, record.price, spreadCounter(record, index));
}

export function batchUser(record: BatchRecord, index: number): UserState {
  return new UserState(record.generation, spreadCounter(record, index));
}

export function batchOrder(record: BatchRecord, index: number): OrderState {
  const maker = record.generation.actor;
  const { userIndex, lines } = batchOrderContent(record, index);
  const order = OrderState.create(record.generation, String(userIndex), maker);
  const holder = record.spreadActors[index % record.spreadActors.length]!;
  if (holder !== maker) assert(order.token.transfer(maker, holder, 1) === null, "a fresh token moves");
  order.lines = lines;
  order.totalCost = 2 * record.price;
  return order;
}

/**
 * Order `index`'s user and its two lines (one unit each of random items), drawn
 * from a generator seeded by the record's seed and the index alone, so any replica
 * computes any order without the others. Nearby seeds start out alike in
 * xoroshiro128+, so the seed is spread (Weyl step) and the first outputs skipped.
 */
function batchOrderContent(record: BatchRecord, index: number): { userIndex: number; lines: OrderLine[] } {
  const random = xoroshiro128plus((record.seed + Math.imul(index, 0x9e3779b1)) | 0);
  for (let skipped = 0; skipped < 12; skipped++) random.next();
  const userIndex = uniformInt(random, 0, record.userCount - 1);
  const lines: OrderLine[] = [
    [String(uniformInt(random, 0, record.itemCount - 1)), 1],
    [String(uniformInt(random, 0, record.itemCount - 1)), 1],
  ];
  return { userIndex, lines };
}

// ---- codec

export function encodeBatchRecords(records: BatchRecords): Uint8Array {
  return packFields([
    records.kind,
    records.all.map((record) => [
      record.generation.counter,
      record.generation.actor,
      record.count,
      record.spreadActors,
      record.amount,
      record.price,
      record.itemCount,
      record.userCount,
      record.seed,
    ]),
  ]);
}

/** The records in `bytes`, checked as untrusted input (disk or peer). */
export function decodeBatchRecords(kind: BatchKind, bytes: Uint8Array): BatchRecord[] {
  const fields = unpackFields(bytes, 3);
  if (fields[1] !== kind) throw new DecodeError(`batch records of kind ${kind} expected`);
  const list = fields[2];
  if (!Array.isArray(list) || list.length > batchRecordsMax) throw new DecodeError(`at most ${batchRecordsMax} batch records`);
  return list.map((entry) => readRecord(kind, entry));
}

function readRecord(kind: BatchKind, entry: unknown): BatchRecord {
  if (!Array.isArray(entry) || entry.length !== 9) throw new DecodeError("a batch record has 9 fields");
  const spreadActors: unknown = entry[3];
  if (!Array.isArray(spreadActors) || spreadActors.length === 0 || spreadActors.length > spreadActorsMax) {
    throw new DecodeError(`a batch record spreads over 1..${spreadActorsMax} actors`);
  }
  const record: BatchRecord = {
    generation: { counter: readAmount(entry[0], "generation counter"), actor: readActor(entry[1]) },
    count: readAmount(entry[2], "count"),
    spreadActors: spreadActors.map(readActor),
    amount: readAmount(entry[4], "amount"),
    price: readAmount(entry[5], "price"),
    itemCount: readAmount(entry[6], "item count"),
    userCount: readAmount(entry[7], "user count"),
    seed: readAmount(entry[8], "seed"),
  };
  const problem = recordProblem(kind, record);
  if (problem !== null) throw new DecodeError(problem);
  return record;
}

/** Why a record could not have been made by a correct replica, or null. */
export function recordProblem(kind: BatchKind, record: BatchRecord): string | null {
  if (record.count > batchCountMax) return `a batch covers at most ${batchCountMax} keys`;
  if (new Set(record.spreadActors).size !== record.spreadActors.length) return "a batch spreads over distinct actors";
  if (record.seed > 0xffffffff) return "a batch seed is a 32-bit integer";
  if (kind === "o") {
    if (record.amount !== 0) return "an order batch has no amount";
    if (record.count > 0 && (record.itemCount === 0 || record.userCount === 0)) return "an order batch needs items and users";
    if (!Number.isSafeInteger(2 * record.price)) return "an order batch's total cost must be a safe integer";
  } else if (record.itemCount !== 0 || record.userCount !== 0 || record.seed !== 0 || (kind === "u" && record.price !== 0)) {
    return `a batch of kind ${kind} has no order fields`;
  }
  return null;
}
