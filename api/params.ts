// Path parameters: ids and amounts arrive as strings and are checked here, never
// coerced by Ajv (which would take "1e3" or " 2" as numbers).
import { idLengthMax } from "../crdt/codec.js";

/** Most keys one batch_init may write. */
export const batchSizeMax = 1_000_000;

export const idSchema = { type: "string", minLength: 1, maxLength: idLengthMax } as const;
/** Digits only; the bound to Number.MAX_SAFE_INTEGER is checked by `readAmount`. */
export const amountSchema = { type: "string", pattern: "^[0-9]{1,16}$" } as const;

/** Schema of a route's path parameters: `ids` are id strings, `amounts` digit strings. */
export function paramsSchema(ids: readonly string[], amounts: readonly string[]): object {
  const properties: Record<string, object> = {};
  for (const name of ids) properties[name] = idSchema;
  for (const name of amounts) properties[name] = amountSchema;
  return { type: "object", properties, required: [...ids, ...amounts], additionalProperties: false };
}

export class BadInput extends Error {
  readonly statusCode = 400;
}

export function amountMessage(name: string, text: unknown): string {
  return `${name} must be a non-negative integer of at most ${Number.MAX_SAFE_INTEGER}, written in digits: got "${String(text)}"`;
}

/** The amount in `text`, or a BadInput naming `name`. */
export function readAmount(name: string, text: string): number {
  const amount = Number(text);
  if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(amount)) throw new BadInput(amountMessage(name, text));
  return amount;
}

export function readBatchSize(name: string, text: string): number {
  const size = readAmount(name, text);
  if (size > batchSizeMax) throw new BadInput(`${name} must be at most ${batchSizeMax}: got ${size}`);
  return size;
}
