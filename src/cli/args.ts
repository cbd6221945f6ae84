import { CliUsageError } from './score';

export { CliUsageError };

/** A small, strict flag parser for the CLI: --name value or --name=value; unknown flags are errors. */
export function parseFlags(args: string[], known: readonly string[], usage: string): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('--')) throw new CliUsageError(`unexpected argument "${a}"\n${usage}`);
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    if (!known.includes(name)) throw new CliUsageError(`unknown option --${name}\n${usage}`);
    const value = eq < 0 ? args[++i] : a.slice(eq + 1);
    if (value === undefined) throw new CliUsageError(`--${name} needs a value\n${usage}`);
    out.set(name, value);
  }
  return out;
}

export function required(flags: Map<string, string>, name: string, usage: string): string {
  const v = flags.get(name);
  if (v === undefined) throw new CliUsageError(`missing --${name}\n${usage}`);
  return v;
}

export function intFlag(flags: Map<string, string>, name: string, fallback: number, min = 0): number {
  const v = flags.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new CliUsageError(`--${name} must be a whole number of at least ${min}, got "${v}"`);
  return n;
}

export function numberFlag(flags: Map<string, string>, name: string, fallback: number): number {
  const v = flags.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new CliUsageError(`--${name} must be a number, got "${v}"`);
  return n;
}

/** A JSON array of arrays of integers (token ids or labels), rectangular. */
export function idMatrix(text: string, name: string): number[][] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new CliUsageError(`--${name} is not valid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(v) || !v.length || !v.every((row) => Array.isArray(row) && row.length && row.every((x) => Number.isInteger(x)))) {
    throw new CliUsageError(`--${name} must be a JSON array of non-empty arrays of integers, e.g. '[[1,2,3],[4,5,6]]'`);
  }
  const rows = v as number[][];
  if (rows.some((r) => r.length !== rows[0].length)) throw new CliUsageError(`--${name}: every sequence must have the same length (${rows[0].length})`);
  return rows;
}
