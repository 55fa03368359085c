// Path parameters arrive as strings and are checked once, by the route's JSON
// schema: ids by length, amounts and batch sizes by the formats below. Ajv never
// coerces them (it would take "1e3" or " 2" as numbers); a route reads an amount
// with Number() only after its format passed.
import { batchCountMax as batchSizeMax } from "../crdt/batchRecord.js";
import { idLengthMax } from "../crdt/codec.js";

export type ParamKind = "id" | "amount" | "batch-size";

/** Plain decimal digits, 0 to Number.MAX_SAFE_INTEGER (at most 16 digits, leading zeros allowed). */
function isAmount(text: string): boolean {
  return /^[0-9]{1,16}$/.test(text) && Number.isSafeInteger(Number(text));
}

/** The formats the schemas below use, for Ajv's `formats` option. */
export const paramFormats = {
  amount: { type: "string", validate: isAmount },
  "batch-size": { type: "string", validate: (text: string) => isAmount(text) && Number(text) <= batchSizeMax },
} as const;

const schemaByKind: Record<ParamKind, object> = {
  id: { type: "string", minLength: 1, maxLength: idLengthMax },
  amount: { type: "string", format: "amount", description: `digits, 0 to ${Number.MAX_SAFE_INTEGER}` },
  "batch-size": { type: "string", format: "batch-size", description: `digits, 0 to ${batchSizeMax}` },
};

/** Schema of a route's path parameters, checked in the order given (the order of the path). */
export function paramsSchema(kinds: Readonly<Record<string, ParamKind>>): object {
  const names = Object.keys(kinds);
  const properties = Object.fromEntries(names.map((name) => [name, schemaByKind[kinds[name]!]]));
  return { type: "object", properties, required: names, additionalProperties: false };
}

export class BadInput extends Error {
  readonly statusCode = 400;
}

/** The message of parameter `name` failing `format` with `text`; undefined for a format not defined here. */
export function formatFailureMessage(format: string, name: string, text: string): string | undefined {
  if (format === "batch-size" && isAmount(text)) return `${name} must be at most ${batchSizeMax}: got ${Number(text)}`;
  if (format === "amount" || format === "batch-size") {
    return `${name} must be a non-negative integer of at most ${Number.MAX_SAFE_INTEGER}, written in digits: got "${text}"`;
  }
  return undefined;
}
