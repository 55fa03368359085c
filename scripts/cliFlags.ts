// What the command-line scripts share: exit 2 with the usage on a bad flag, and
// integer flags checked the same way everywhere.
import { type ParseArgsConfig, parseArgs } from "node:util";

type FlagOptions = NonNullable<ParseArgsConfig["options"]>;

export interface FlagReader {
  fail(message: string): never;
  /** The flag's integer (`fallback` when absent); a bad or too small value is a `fail`. */
  integerFlag(name: string, text: string | undefined, fallback: number, min: number): number;
}

export function flagReader(usage: string): FlagReader {
  const fail = (message: string): never => {
    console.error(`${message}\n${usage}`);
    process.exit(2);
  };
  const integerFlag = (name: string, text: string | undefined, fallback: number, min: number): number => {
    if (text === undefined) return fallback;
    const value = Number(text.trim());
    if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min) {
      fail(`--${name} must be an integer >= ${min}, got "${text}"`);
    }
    return value;
  };
  return { fail, integerFlag };
}

/**
 * The command line parsed strictly against `options` (plus --help, which prints
 * `usage` and exits 0); an unknown or malformed flag is a `fail`.
 */
export function parseFlags<const T extends FlagOptions>(options: T, usage: string): ParsedValues<T> {
  const reader = flagReader(usage);
  let values: ParsedValues<T> | undefined;
  try {
    values = parseArgs({ options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    reader.fail((error as Error).message);
  }
  if ((values as { help?: unknown }).help === true) {
    console.log(usage);
    process.exit(0);
  }
  return values!;
}

type ParsedValues<T extends FlagOptions> = ReturnType<typeof parseArgs<{ options: T; strict: true; allowPositionals: false }>>["values"];
