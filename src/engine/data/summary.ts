import type { DatasetRow } from './mapping';

/** The one thing the data code needs from a tokenizer. Phi-2's (from @huggingface/transformers) fits. */
export interface Tokenizer {
  encode(text: string): number[];
}

export interface TokenLengthStats {
  /** Rows measured (all rows, or the first `sampleLimit`). */
  count: number;
  min: number;
  max: number;
  mean: number;
  median: number;
  p95: number;
  /** Rows longer than `limit` tokens: they will be truncated for training. */
  overLimit: number;
  limit: number;
  /** Equal-width bins covering [0, max]; `to` is exclusive. */
  histogram: Array<{ from: number; to: number; count: number }>;
}

export interface DatasetSummary {
  rowCount: number;
  /** The first rows, for a preview table. */
  preview: DatasetRow[];
  /** Label -> count, most frequent first; empty for instruction data. */
  labelCounts: Array<{ label: string; count: number }>;
  /** Null without a tokenizer. */
  tokenLengths: TokenLengthStats | null;
}

export interface SummaryOptions {
  tokenizer?: Tokenizer;
  previewRows?: number;
  bins?: number;
  /** The training length the histogram is read against (default 512). */
  limit?: number;
  /** What to measure per row; default: the input and output joined by a newline. */
  textOf?: (row: DatasetRow) => string;
  /** Tokenise at most this many rows (tokenising a million rows in a tab takes a while). */
  sampleLimit?: number;
}

export function summarizeDataset(rows: readonly DatasetRow[], options: SummaryOptions = {}): DatasetSummary {
  const previewRows = options.previewRows ?? 5;
  const counts = new Map<string, number>();
  for (const r of rows) if (r.label !== undefined) counts.set(r.label, (counts.get(r.label) ?? 0) + 1);
  const labelCounts = [...counts]
    .map(([label, count]) => ({ label, count }))
    .sort((a, b) => b.count - a.count || (a.label < b.label ? -1 : 1));
  let tokenLengths: TokenLengthStats | null = null;
  if (options.tokenizer) {
    const textOf = options.textOf ?? ((r: DatasetRow) => (r.output === undefined ? r.input : `${r.input}\n${r.output}`));
    const n = Math.min(rows.length, options.sampleLimit ?? rows.length);
    const lengths = new Array<number>(n);
    for (let i = 0; i < n; i++) lengths[i] = options.tokenizer.encode(textOf(rows[i])).length;
    tokenLengths = lengthStats(lengths, options.limit ?? 512, options.bins ?? 20);
  }
  return { rowCount: rows.length, preview: rows.slice(0, previewRows), labelCounts, tokenLengths };
}

/** Summary statistics and an equal-width histogram of token counts. */
export function lengthStats(lengths: readonly number[], limit: number, bins: number): TokenLengthStats {
  if (!Number.isInteger(bins) || bins < 1) throw new Error(`bins must be a positive integer, got ${bins}`);
  if (lengths.length === 0) {
    return { count: 0, min: 0, max: 0, mean: 0, median: 0, p95: 0, overLimit: 0, limit, histogram: [] };
  }
  const sorted = [...lengths].sort((a, b) => a - b);
  const max = sorted[sorted.length - 1];
  // Nearest-rank percentiles: always a length that occurs in the data.
  const rank = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  const width = Math.max(1, Math.ceil((max + 1) / bins));
  const binCount = Math.ceil((max + 1) / width);
  const histogram = Array.from({ length: binCount }, (_, b) => ({ from: b * width, to: (b + 1) * width, count: 0 }));
  let sum = 0;
  let overLimit = 0;
  for (const len of lengths) {
    histogram[Math.floor(len / width)].count++;
    sum += len;
    if (len > limit) overLimit++;
  }
  return {
    count: lengths.length,
    min: sorted[0],
    max,
    mean: sum / lengths.length,
    median: rank(0.5),
    p95: rank(0.95),
    overLimit,
    limit,
    histogram,
  };
}
