import { MAX_FIELD_CHARS, PROBLEM_EXCERPT_CHARS } from '../../shared/data-limits';
import type { ParsedRecord, ParsedUpload } from './parse';
import { byLine, excerpt, jsonExcerpt, type RowProblem } from './problems';

/**
 * Which uploaded columns play which part. Instruction data maps input (the question) and output (the
 * response); classification data maps input (the text) and label.
 */
export interface ColumnMapping {
  /** The question / text column. */
  input: string;
  /** The response column, for instruction data. */
  output?: string;
  /** The label column, for classification data. */
  label?: string;
  /**
   * The label set: raw value (as text, trimmed) -> the label's name, e.g. {"1": "positive", "0": "negative"}.
   * A value not listed is a bad row. Without it, every non-empty value is a label named as itself.
   */
  labelMap?: Record<string, string>;
}

export interface DatasetRow {
  /** 1-based line in the uploaded file, for messages and for finding the row again. */
  line: number;
  input: string;
  output?: string;
  /** The label's name (after labelMap). */
  label?: string;
}

export interface MappedDataset {
  mapping: ColumnMapping;
  /** Rows that passed every check, in file order. */
  rows: DatasetRow[];
  /** Every problem: the parser's and the mapping's, in line order; a row may have several. */
  problems: RowProblem[];
  /** Distinct lines with a problem: the rows left out of `rows`. */
  badRowCount: number;
}

export class MappingError extends Error {
  override name = 'MappingError';
}

export interface MapOptions {
  maxFieldChars?: number;
}

/** Checks the mapping against the file's columns; throws MappingError with what to fix. */
export function checkMapping(columns: readonly string[], mapping: ColumnMapping): void {
  const roles: Array<[string, string | undefined]> = [
    ['input', mapping.input],
    ['output', mapping.output],
    ['label', mapping.label],
  ];
  if (!mapping.input) throw new MappingError('Choose the column that holds the input text (the question or sentence).');
  if (!mapping.output && !mapping.label) {
    throw new MappingError('Choose an output (response) column for instruction data, or a label column for classification data.');
  }
  const used = new Map<string, string>();
  for (const [role, column] of roles) {
    if (column === undefined) continue;
    if (!columns.includes(column)) {
      throw new MappingError(`The ${role} column "${column}" is not in the file; its columns are: ${columns.map((c) => `"${c}"`).join(', ')}.`);
    }
    const other = used.get(column);
    if (other) throw new MappingError(`The column "${column}" is mapped as both ${other} and ${role}.`);
    used.set(column, role);
  }
  if (mapping.labelMap) {
    if (!mapping.label) throw new MappingError('A label set was given without a label column.');
    const keys = Object.keys(mapping.labelMap);
    if (keys.length < 2) throw new MappingError('The label set needs at least two labels.');
    for (const k of keys) {
      if (k.trim() !== k || k === '') throw new MappingError(`Label value "${k}" must be non-empty and have no surrounding spaces.`);
      const name = mapping.labelMap[k];
      if (typeof name !== 'string' || name.trim() === '') throw new MappingError(`Label value "${k}" needs a non-empty name.`);
    }
  }
}

/**
 * Applies a column mapping to parsed rows and validates every mapped value. Good rows come back ready to
 * use; every bad row is reported (with all its problems) and left out. The parsed file is untouched, so the
 * user can change the mapping and map again.
 */
export function mapRows(parsed: ParsedUpload, mapping: ColumnMapping, options: MapOptions = {}): MappedDataset {
  checkMapping(parsed.columns, mapping);
  const maxChars = options.maxFieldChars ?? MAX_FIELD_CHARS;
  const problems: RowProblem[] = [...parsed.problems];
  const rows: DatasetRow[] = [];
  for (const record of parsed.records) {
    const found: RowProblem[] = [];
    let input: string | undefined;
    let output: string | undefined;
    let label: string | undefined;
    try {
      input = readText(record, mapping.input, 'input', maxChars, found);
      output = mapping.output === undefined ? undefined : readText(record, mapping.output, 'output', maxChars, found);
      label = mapping.label === undefined ? undefined : readLabel(record, mapping.label, mapping.labelMap, found);
    } catch (err) {
      // One row that cannot be read never costs the others: it is reported like any bad row.
      found.push({ line: record.line, kind: 'not-text', message: `The row could not be read: ${(err as Error)?.message ?? String(err)}.` });
    }
    if (found.length > 0) {
      problems.push(...found);
      continue;
    }
    const row: DatasetRow = { line: record.line, input: input as string };
    if (output !== undefined) row.output = output;
    if (label !== undefined) row.label = label;
    rows.push(row);
  }
  problems.sort(byLine);
  return { mapping, rows, problems, badRowCount: new Set(problems.map((p) => p.line)).size };
}

/**
 * A row's value in a column. Column names are data: only the row's own properties count, so a column
 * called "constructor" or "toString" that a row lacks is missing, not a function inherited from Object.
 */
export function cell(record: ParsedRecord, column: string): unknown {
  return Object.hasOwn(record.values, column) ? record.values[column] : undefined;
}

function readText(record: ParsedRecord, column: string, role: string, maxChars: number, found: RowProblem[]): string | undefined {
  const value = cell(record, column);
  const line = record.line;
  if (value === undefined || value === null) {
    found.push({ line, kind: 'missing-field', column, message: `Missing ${role}: the row has no value in column "${column}".` });
    return undefined;
  }
  if (typeof value === 'object') {
    found.push({
      line,
      kind: 'not-text',
      column,
      message: `The ${role} in column "${column}" is ${Array.isArray(value) ? 'an array' : 'an object'}, not text.`,
      excerpt: jsonExcerpt(value, PROBLEM_EXCERPT_CHARS),
    });
    return undefined;
  }
  // Numbers and booleans are kept as JSON writes them (a question "42" is text like any other).
  const text = String(value);
  if (text.trim() === '') {
    found.push({ line, kind: 'empty-text', column, message: `Empty ${role}: column "${column}" is blank in this row.` });
    return undefined;
  }
  if (text.length > maxChars) {
    found.push({
      line,
      kind: 'too-long',
      column,
      message: `The ${role} in column "${column}" is ${text.length.toLocaleString('en-US')} characters; the limit is ${maxChars.toLocaleString('en-US')}.`,
      excerpt: excerpt(text, PROBLEM_EXCERPT_CHARS),
    });
    return undefined;
  }
  return text;
}

function readLabel(
  record: ParsedRecord,
  column: string,
  labelMap: Record<string, string> | undefined,
  found: RowProblem[],
): string | undefined {
  const value = cell(record, column);
  const line = record.line;
  if (value === undefined || value === null) {
    found.push({ line, kind: 'missing-field', column, message: `Missing label: the row has no value in column "${column}".` });
    return undefined;
  }
  if (typeof value === 'object') {
    found.push({ line, kind: 'not-text', column, message: `The label in column "${column}" is ${Array.isArray(value) ? 'an array' : 'an object'}, not a value.` });
    return undefined;
  }
  const raw = String(value).trim();
  if (raw === '') {
    found.push({ line, kind: 'empty-text', column, message: `Empty label: column "${column}" is blank in this row.` });
    return undefined;
  }
  if (!labelMap) return raw;
  if (!Object.hasOwn(labelMap, raw)) {
    const allowed = Object.keys(labelMap).map((k) => `"${k}"`).join(', ');
    found.push({ line, kind: 'unknown-label', column, message: `Label "${excerpt(raw, 60)}" is not in the label set (${allowed}).` });
    return undefined;
  }
  return labelMap[raw];
}

/** Distinct raw label values of a column, with counts: what the UI offers when the user builds a label set. */
export function distinctValues(parsed: ParsedUpload, column: string, limit = 1000): Array<{ value: string; count: number }> {
  const counts = new Map<string, number>();
  for (const r of parsed.records) {
    const v = cell(r, column);
    if (v === undefined || v === null || typeof v === 'object') continue;
    const key = String(v).trim();
    if (key === '') continue;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts]
    .map(([value, count]) => ({ value, count }))
    .sort((a, b) => b.count - a.count || (a.value < b.value ? -1 : 1))
    .slice(0, limit);
}

/** Mapped instruction rows (input + output) as template examples. */
export function toInstructionExamples(rows: readonly DatasetRow[]): Array<{ question: string; response: string }> {
  return rows.map((r) => {
    if (r.output === undefined) throw new MappingError(`Row at line ${r.line} has no output: map a response column for instruction data.`);
    return { question: r.input, response: r.output };
  });
}
