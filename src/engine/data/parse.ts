import Papa from 'papaparse';
import { MAX_ROWS, MAX_UPLOAD_BYTES, PROBLEM_EXCERPT_CHARS } from '../../shared/data-limits';
import { excerpt, UploadError, type RowProblem } from './problems';
import { describeExcessNesting, findExcessNesting } from '../untrusted-json';
import { decodeUtf8, type InvalidUtf8Line } from './utf8';

/**
 * Parsing of uploaded datasets: JSONL, a JSON array of objects, CSV and TSV with a header row.
 *
 * Everything is parsed, every unreadable row is reported with its line number, and every readable row is
 * kept: one bad line never costs the user the rest of the file. Mapping columns to input/output/label and
 * checking the values is the next step (mapping.ts).
 */

export type UploadFormat = 'jsonl' | 'json' | 'csv' | 'tsv';

export interface ParsedRecord {
  /** 1-based line where the row starts (for CSV with quoted newlines and pretty JSON, rows span lines). */
  line: number;
  /** 1-based line where the row ends. */
  endLine: number;
  /** Column -> value: strings for CSV/TSV, any JSON value for JSON formats. */
  values: Record<string, unknown>;
}

export interface ParsedUpload {
  format: UploadFormat;
  /** Column names: the header for CSV/TSV, the keys in order of first appearance for JSON. */
  columns: string[];
  /** The rows that parsed. */
  records: ParsedRecord[];
  /** The rows that did not, by line. */
  problems: RowProblem[];
  /** Notes about the whole file (row limit reached, header repaired, trailing garbage). */
  fileProblems: string[];
  /** Rows seen: records.length + unreadable rows. */
  rowsSeen: number;
}

export interface ParseOptions {
  /** Used to pick the format from the extension (.jsonl/.ndjson, .json, .csv, .tsv/.tab). */
  fileName?: string;
  /** Overrides detection. */
  format?: UploadFormat;
  /** Defaults to MAX_ROWS. */
  maxRows?: number;
  /** Defaults to MAX_UPLOAD_BYTES. */
  maxBytes?: number;
}

/** Throws UploadError when a file is over the size limit: call with File.size before reading it. */
export function checkUploadSize(byteLength: number, maxBytes: number = MAX_UPLOAD_BYTES): void {
  if (byteLength > maxBytes) {
    const mb = (n: number) => (n / 2 ** 20).toFixed(n % 2 ** 20 === 0 ? 0 : 1);
    throw new UploadError(`The file is ${mb(byteLength)} MB; the limit is ${mb(maxBytes)} MB. Split it or keep fewer rows.`);
  }
}

const EXTENSIONS: Record<string, UploadFormat> = {
  jsonl: 'jsonl',
  ndjson: 'jsonl',
  json: 'json',
  csv: 'csv',
  tsv: 'tsv',
  tab: 'tsv',
};

/** Format from the file extension, else from the content: '[' JSON array, '{' JSONL, else tabs vs commas. */
export function detectFormat(fileName: string | undefined, text: string): UploadFormat {
  const ext = fileName?.toLowerCase().match(/\.([a-z]+)$/)?.[1];
  if (ext && EXTENSIONS[ext]) return EXTENSIONS[ext];
  const first = text.match(/\S/)?.[0];
  if (first === '[') return 'json';
  if (first === '{') return 'jsonl';
  const firstLine = text.slice(0, text.search(/\r?\n|$/));
  return (firstLine.match(/\t/g)?.length ?? 0) > (firstLine.match(/,/g)?.length ?? 0) ? 'tsv' : 'csv';
}

/** Parses an uploaded file. Throws UploadError only for whole-file problems (too large, UTF-16, no header). */
export function parseUpload(input: Uint8Array | string, options: ParseOptions = {}): ParsedUpload {
  let text: string;
  let invalid: InvalidUtf8Line[] = [];
  if (typeof input === 'string') {
    text = input.charCodeAt(0) === 0xfeff ? input.slice(1) : input;
  } else {
    checkUploadSize(input.byteLength, options.maxBytes);
    ({ text, invalidLines: invalid } = decodeUtf8(input));
  }
  let format = options.format ?? detectFormat(options.fileName, text);
  if (format === 'jsonl' && isWholeJsonArray(text)) format = 'json';
  const maxRows = options.maxRows ?? MAX_ROWS;
  const lines = new LineIndex(text);
  const parsed =
    format === 'jsonl'
      ? parseJsonl(text, maxRows)
      : format === 'json'
        ? parseJsonArray(text, lines, maxRows)
        : parseDelimited(text, format === 'tsv' ? '\t' : ',', lines, maxRows);
  return rejectInvalidUtf8({ format, ...parsed }, invalid);
}

type ParsedRows = Omit<ParsedUpload, 'format'>;

/** Rows touching a line with bad bytes are moved from records to problems (their text is corrupt). */
function rejectInvalidUtf8(parsed: ParsedUpload, invalid: InvalidUtf8Line[]): ParsedUpload {
  if (invalid.length === 0) return parsed;
  const bad = new Map(invalid.map((l) => [l.line, l]));
  const keep: ParsedRecord[] = [];
  const problems = [...parsed.problems];
  for (const r of parsed.records) {
    let hit: InvalidUtf8Line | undefined;
    for (let l = r.line; l <= r.endLine && !hit; l++) hit = bad.get(l);
    if (!hit) {
      keep.push(r);
      continue;
    }
    problems.push({
      line: r.line,
      kind: 'invalid-utf8',
      message: `Invalid UTF-8: line ${hit.line} has a byte sequence that is not UTF-8 at byte ${hit.byteInLine + 1} of the line.`,
    });
  }
  // Bad bytes on a line that no parsed row covers (the header, a row that failed anyway) still get a note.
  const fileProblems = [...parsed.fileProblems];
  const failedLines = new Set(parsed.problems.map((p) => p.line));
  let r = 0; // records and invalid lines are both in file order: one merge pass
  for (const l of invalid) {
    while (r < parsed.records.length && parsed.records[r].endLine < l.line) r++;
    const inRecord = r < parsed.records.length && parsed.records[r].line <= l.line;
    if (!inRecord && !failedLines.has(l.line)) fileProblems.push(`Line ${l.line} has bytes that are not UTF-8 (at byte ${l.byteInLine + 1}).`);
  }
  problems.sort((a, b) => a.line - b.line);
  return { ...parsed, records: keep, problems, fileProblems };
}

/**
 * A pretty-printed JSON document sent as JSONL would fail on every line. An array is read as JSON; a single
 * object is refused with a hint. Only tried when the first non-blank line is not a complete JSON value, so
 * real JSONL costs nothing extra.
 */
function isWholeJsonArray(text: string): boolean {
  const firstLine = text.trimStart().split('\n', 1)[0];
  try {
    JSON.parse(firstLine);
    return false;
  } catch {
    // fall through: maybe the whole file is one document
  }
  let whole: unknown;
  try {
    whole = JSON.parse(text);
  } catch {
    return false; // not one document either: report line by line
  }
  if (Array.isArray(whole)) return true;
  const arrayField = isPlainObject(whole) ? Object.keys(whole).find((k) => Array.isArray(whole[k])) : undefined;
  throw new UploadError(
    'The file is one JSON document, not one JSON object per line (JSONL)' +
      (arrayField ? `; its field "${arrayField}" holds an array: upload that array as a .json file.` : '.'),
  );
}

/** A row nested deeper than MAX_JSON_DEPTH, as a problem (everything after parsing would recurse through it); null when it is not. */
function tooDeep(raw: string, line: number): RowProblem | null {
  const deep = findExcessNesting(raw);
  if (!deep) return null;
  return {
    line,
    kind: 'too-deep',
    message: `The row is JSON ${describeExcessNesting(deep)}; a dataset row holds text, numbers or shallow lists.`,
    excerpt: excerpt(raw, PROBLEM_EXCERPT_CHARS),
  };
}

function rowLimitNote(maxRows: number): string {
  return `The file has more than ${maxRows.toLocaleString('en-US')} rows; only the first ${maxRows.toLocaleString('en-US')} were read.`;
}

function describeJsonType(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'string' ? 'a string' : `a ${typeof v}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function jsonErrorMessage(err: unknown): string {
  return (err as Error).message.replace(/^JSON\.parse: /, '');
}

function parseJsonl(text: string, maxRows: number): ParsedRows {
  const records: ParsedRecord[] = [];
  const problems: RowProblem[] = [];
  const fileProblems: string[] = [];
  const columns = new ColumnSet();
  let rowsSeen = 0;
  let start = 0;
  let line = 0;
  while (start <= text.length) {
    line++;
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const raw = text.slice(start, end).replace(/\r$/, '');
    start = end + 1;
    if (raw.trim() === '') continue;
    if (rowsSeen === maxRows) {
      fileProblems.push(rowLimitNote(maxRows));
      break;
    }
    rowsSeen++;
    const deep = tooDeep(raw, line);
    if (deep) {
      problems.push(deep);
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      problems.push({
        line,
        kind: 'malformed-json',
        message: `Malformed JSON: ${jsonErrorMessage(err)}.`,
        excerpt: excerpt(raw, PROBLEM_EXCERPT_CHARS),
      });
      continue;
    }
    if (!isPlainObject(value)) {
      problems.push({
        line,
        kind: 'not-an-object',
        message: `Expected a JSON object with one field per column, found ${describeJsonType(value)}.`,
        excerpt: excerpt(raw, PROBLEM_EXCERPT_CHARS),
      });
      continue;
    }
    columns.addKeys(value);
    records.push({ line, endLine: line, values: value });
  }
  return { columns: columns.names, records, problems, fileProblems, rowsSeen };
}

/**
 * A JSON array is split into its top-level elements by a scanner that tracks strings and nesting, and
 * each element is parsed on its own: one malformed element is reported with its line and the others kept.
 */
function parseJsonArray(text: string, lines: LineIndex, maxRows: number): ParsedRows {
  const records: ParsedRecord[] = [];
  const problems: RowProblem[] = [];
  const fileProblems: string[] = [];
  const columns = new ColumnSet();
  const open = skipWhitespace(text, 0);
  if (text[open] !== '[') throw new UploadError('A .json upload must be an array of row objects: [{...}, {...}].');
  let i = open + 1;
  let rowsSeen = 0;
  for (;;) {
    i = skipWhitespace(text, i);
    if (i >= text.length) {
      fileProblems.push('The JSON array is not closed with "]"; every complete row before the end was read.');
      break;
    }
    if (text[i] === ']') {
      const after = skipWhitespace(text, i + 1);
      if (after < text.length) fileProblems.push(`Line ${lines.lineOf(after)}: text after the closing "]" was ignored.`);
      break;
    }
    const start = i;
    const end = scanJsonValue(text, start);
    const raw = text.slice(start, end).trimEnd();
    const line = lines.lineOf(start);
    if (rowsSeen === maxRows) {
      fileProblems.push(rowLimitNote(maxRows));
      break;
    }
    rowsSeen++;
    let value: unknown;
    let failed: string | null = null;
    const deep = raw === '' ? null : tooDeep(raw, line);
    if (raw === '') failed = 'Malformed JSON: an empty element (two commas in a row, or a comma before "]").';
    else if (deep) {
      problems.push(deep);
      i = end;
      if (text[i] === ',') i++;
      continue;
    } else {
      try {
        value = JSON.parse(raw);
      } catch (err) {
        failed = `Malformed JSON: ${jsonErrorMessage(err)}.`;
      }
    }
    if (failed !== null) {
      problems.push({ line, kind: 'malformed-json', message: failed, excerpt: excerpt(raw, PROBLEM_EXCERPT_CHARS) });
    } else if (!isPlainObject(value)) {
      problems.push({
        line,
        kind: 'not-an-object',
        message: `Expected a JSON object with one field per column, found ${describeJsonType(value)}.`,
        excerpt: excerpt(raw, PROBLEM_EXCERPT_CHARS),
      });
    } else {
      columns.addKeys(value);
      records.push({ line, endLine: lines.lineOf(Math.max(start, start + raw.length - 1)), values: value });
    }
    i = end;
    if (text[i] === ',') i++;
  }
  return { columns: columns.names, records, problems, fileProblems, rowsSeen };
}

function skipWhitespace(text: string, i: number): number {
  while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  return i;
}

/** End (exclusive) of the array element starting at `start`: the next top-level ',' or ']', or the text's end. */
function scanJsonValue(text: string, start: number): number {
  let depth = 0;
  let i = start;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
      continue;
    }
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      if (depth === 0) return i;
      depth--;
    } else if (c === ',' && depth === 0) return i;
    i++;
  }
  return text.length;
}

function parseDelimited(text: string, delimiter: string, lines: LineIndex, maxRows: number): ParsedRows {
  const records: ParsedRecord[] = [];
  const problems: RowProblem[] = [];
  const fileProblems: string[] = [];
  let header: string[] | null = null;
  let rowsSeen = 0;
  let cursor = 0;
  let limitHit = false;
  Papa.parse<string[]>(text, {
    delimiter,
    header: false,
    quoteChar: '"',
    skipEmptyLines: false,
    step: (result, parser) => {
      const start = cursor;
      cursor = result.meta.cursor;
      const fields = result.data;
      if (fields.length === 1 && fields[0].trim() === '') return; // blank line
      const line = lines.lineOf(start);
      const endLine = lines.lineOf(Math.max(start, lastContentIndex(text, start, cursor)));
      if (header === null) {
        header = repairHeader(fields, fileProblems);
        return;
      }
      if (rowsSeen === maxRows) {
        limitHit = true;
        parser.abort();
        return;
      }
      rowsSeen++;
      const raw = text.slice(start, cursor).replace(/\r?\n$/, '');
      const quoteCodes = new Set(result.errors.filter((e) => e.type === 'Quotes').map((e) => e.code));
      if (quoteCodes.size > 0) {
        const parts: string[] = [];
        if (quoteCodes.has('InvalidQuotes')) parts.push('A quoted field has text after its closing quote (inside quotes, write a quote as "")');
        if (quoteCodes.has('MissingQuotes')) {
          parts.push(`${parts.length ? 'so it' : 'A quoted field opened on this line'} never closes, and lines ${line}-${endLine} were read as one field`);
        }
        problems.push({ line, kind: 'csv-quotes', message: `${parts.join(', ')}.`, excerpt: excerpt(raw, PROBLEM_EXCERPT_CHARS) });
        return;
      }
      if (fields.length !== header.length) {
        problems.push({
          line,
          kind: 'field-count',
          message: `Expected ${header.length} fields (as in the header), found ${fields.length}.`,
          excerpt: excerpt(raw, PROBLEM_EXCERPT_CHARS),
        });
        return;
      }
      // Own properties whatever the names: a column called "__proto__" is a column like any other.
      const values: Record<string, unknown> = Object.fromEntries(header.map((name, k) => [name, fields[k]]));
      records.push({ line, endLine, values });
    },
  });
  if (header === null) throw new UploadError(`The ${delimiter === '\t' ? 'TSV' : 'CSV'} file is empty: it needs a header row naming the columns.`);
  if (limitHit) fileProblems.push(rowLimitNote(maxRows));
  return { columns: header, records, problems, fileProblems, rowsSeen };
}

/** Index of the last character of a row that is not its line break. */
function lastContentIndex(text: string, start: number, end: number): number {
  let i = end - 1;
  while (i > start && (text[i] === '\n' || text[i] === '\r')) i--;
  return i;
}

/** Empty header cells get a positional name and duplicates a suffix, each with a note for the user. */
function repairHeader(fields: string[], notes: string[]): string[] {
  const seen = new Set<string>();
  return fields.map((raw, k) => {
    let name = raw.trim();
    if (name === '') {
      name = `column_${k + 1}`;
      notes.push(`Header cell ${k + 1} is empty; the column is called "${name}".`);
    }
    if (seen.has(name)) {
      let n = 2;
      while (seen.has(`${name}_${n}`)) n++;
      notes.push(`The header names "${name}" twice; column ${k + 1} is called "${name}_${n}".`);
      name = `${name}_${n}`;
    }
    seen.add(name);
    return name;
  });
}

class ColumnSet {
  readonly names: string[] = [];
  private readonly seen = new Set<string>();
  addKeys(obj: Record<string, unknown>): void {
    for (const k of Object.keys(obj)) {
      if (!this.seen.has(k)) {
        this.seen.add(k);
        this.names.push(k);
      }
    }
  }
}

/** Character offset -> 1-based line number, by binary search over the line starts. */
class LineIndex {
  private readonly starts: number[] = [0];
  constructor(text: string) {
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) this.starts.push(i + 1);
  }
  lineOf(offset: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  }
}
