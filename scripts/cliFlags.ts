// What the command-line scripts share: exit 2 with the usage on a bad flag, and
// integer flags checked the same way everywhere.

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
