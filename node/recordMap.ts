// A map of small replicated records (idempotency records, released actors), each
// merged by a join of its own: what both stores do with a record from a peer or the
// disk, and with a key to encode.

/** Keep the join of the record held under `key` and `incoming`; true if it changed. */
export function mergeRecord<K, V>(records: Map<K, V>, key: K, incoming: V, join: (a: V, b: V) => V): boolean {
  const local = records.get(key);
  const kept = local === undefined ? incoming : join(local, incoming);
  if (kept === local) return false;
  records.set(key, kept);
  return true;
}

/** The record under `key`, which must be there (group commit encodes only keys it was told changed). */
export function recordAt<K, V>(records: ReadonlyMap<K, V>, key: K, what: string): V {
  const record = records.get(key);
  if (record === undefined) throw new RangeError(`no ${what} record ${String(key)}`);
  return record;
}
