/**
 * JSON.parse reads any nesting (V8 parses iteratively), but everything after it recurses: JSON.stringify,
 * structured cloning into IndexedDB or across a worker boundary, a recursive walk. A value nested
 * 200,000 deep overflows the stack in each of them, far from where it came in. Untrusted JSON (config
 * files, safetensors headers, dataset rows) is measured here first, in one pass without recursion, and
 * refused by its reader with a message naming the file.
 */

/** Deeper than any real config, header or dataset row; shallow enough for every recursive consumer. */
export const MAX_JSON_DEPTH = 64;

export interface TooDeep {
  /** The limit that was passed. */
  limit: number;
  /** Character offset of the bracket that went past it. */
  at: number;
}

/** Where `text` nests arrays and objects deeper than `limit`, or null when it does not. Strings are skipped. */
export function findExcessNesting(text: string, limit = MAX_JSON_DEPTH): TooDeep | null {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > limit) return { limit, at: i };
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return null;
}

/**
 * Whether a parsed value nests arrays and objects deeper than `limit` (a value of its own is depth 0),
 * measured without recursion: for values that arrive parsed, where the text is not at hand.
 */
export function nestsDeeperThan(value: unknown, limit = MAX_JSON_DEPTH): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth + 1 > limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}

/** "nested more than 64 levels deep (at character 1,234)": the tail of a refusal message. */
export function describeExcessNesting(t: TooDeep): string {
  return `nested more than ${t.limit} levels deep (at character ${(t.at + 1).toLocaleString('en-US')})`;
}

/**
 * A short description of a JSON value for messages: short strings and numbers as they are, anything
 * else by its kind and size. Never serialises a value whole (it may be huge or deeply nested).
 */
export function briefJson(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) {
    const flat = v.length <= 8 && v.every((x) => x === null || typeof x === 'number' || typeof x === 'boolean' || (typeof x === 'string' && x.length <= 20));
    return flat ? JSON.stringify(v) : `a list of ${v.length}`;
  }
  if (typeof v === 'object') return `an object with ${Object.keys(v).length} keys`;
  return typeof v;
}
