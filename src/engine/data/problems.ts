/** What can be wrong with one row of an uploaded dataset. */
export type RowProblemKind =
  | 'invalid-utf8' // bytes on the row's line(s) are not UTF-8
  | 'malformed-json' // a JSONL line or JSON array element does not parse
  | 'not-an-object' // valid JSON, but not a {column: value} object
  | 'too-deep' // valid JSON nested deeper than any dataset row (untrusted-json.ts MAX_JSON_DEPTH)
  | 'field-count' // a CSV/TSV row with more or fewer fields than the header
  | 'csv-quotes' // a CSV/TSV quoted field that never closes
  | 'missing-field' // a mapped column absent or null in this row
  | 'empty-text' // a mapped text field that is empty or only whitespace
  | 'not-text' // a mapped field holding an object or array
  | 'unknown-label' // a label value outside the mapped label set
  | 'too-long'; // a mapped text field longer than MAX_FIELD_CHARS

export interface RowProblem {
  /** 1-based line of the file where the row starts. */
  line: number;
  kind: RowProblemKind;
  /** The mapped column concerned, where there is one. */
  column?: string;
  /** A sentence for the user, starting with what is wrong. */
  message: string;
  /** The start of the offending text, so nothing the user uploaded disappears without a trace. */
  excerpt?: string;
}

/** A problem that stops the whole file from being read (too large, wrong encoding, not tabular). */
export class UploadError extends Error {
  override name = 'UploadError';
}

export function excerpt(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

export function byLine(a: RowProblem, b: RowProblem): number {
  return a.line - b.line;
}

/**
 * The start of a JSON value as text, at most `max` characters (then "…"). Written without recursion and
 * stopped as soon as it is long enough, so a cell nested thousands deep or holding millions of items
 * costs no more than a short one.
 */
export function jsonExcerpt(value: unknown, max: number): string {
  type Frame = { close: string; entries: Array<[string | null, unknown]>; next: number };
  let out = '';
  const stack: Frame[] = [];
  const open = (v: unknown): void => {
    if (Array.isArray(v)) {
      out += '[';
      stack.push({ close: ']', entries: v.map((x) => [null, x]), next: 0 });
    } else if (v !== null && typeof v === 'object') {
      out += '{';
      stack.push({ close: '}', entries: Object.entries(v), next: 0 });
    } else {
      out += v === undefined ? 'null' : (JSON.stringify(v) ?? 'null');
    }
  };
  open(value);
  while (stack.length && out.length <= max) {
    const top = stack[stack.length - 1];
    if (top.next === top.entries.length) {
      out += top.close;
      stack.pop();
      continue;
    }
    const [key, v] = top.entries[top.next];
    out += top.next++ > 0 ? ',' : '';
    if (key !== null) out += `${JSON.stringify(key)}:`;
    open(v);
  }
  return excerpt(out, max);
}
