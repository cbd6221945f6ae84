import type { Platform } from '../platform/types';
import { MAX_JSON_DEPTH } from '../untrusted-json';
import { openHubDatasetsCache, type HubDatasetsCache } from '../store/hub-datasets-cache';
import {
  DATASETS_SERVER_URL,
  type HubDatasetPreset,
  type HubRowsProgress,
  HubRowsError,
  ICL_SYMBOL_TUNING_INSTRUCT,
  loadHubRows,
  OPEN_ORCA_COT,
} from './hub-datasets';
import type { LengthMeter, LengthReport } from './lengths';
import { DEFAULT_MAX_TOKENS, MAX_HUB_ROWS, MAX_TRAIN_TOKENS } from '../../shared/data-limits';
import { type ColumnMapping, type DatasetRow, distinctValues, type MappedDataset, mapRows } from './mapping';
import { checkUploadSize, parseUpload, type ParsedRecord, type ParsedUpload, type UploadFormat } from './parse';
import type { RowProblem, RowProblemKind } from './problems';
import { decodeUtf8 } from './utf8';

/**
 * The Data page's source: an uploaded file (CSV, TSV, JSONL, JSON array) or rows of a public Hub dataset,
 * one at a time, mapped to input/output/label columns and validated row by row. The page sees a report
 * (a preview, counts, the first problems); the rows stay here. Preparing training data (preparation.ts)
 * takes the usable rows of the source.
 */

export type SourceOrigin =
  | { kind: 'file'; name: string; bytes: number; format: UploadFormat }
  | { kind: 'hub'; dataset: string; config: string; split: string; preset: HubPresetId | null };

export interface SourceInfo {
  id: string;
  origin: SourceOrigin;
  columns: string[];
  /** Rows in the file (readable or not), or rows read from the Hub. */
  rowsSeen: number;
  /** Rows that parsed. */
  readableRows: number;
  /** Rows that did not parse (each is in the mapping report with its line). */
  unreadableRows: number;
  /** Notes about the whole file (row limit reached, header repaired, ...). */
  fileProblems: string[];
  /** A guess at the mapping from the column names. */
  suggestedMapping: ColumnMapping;
  hub?: { totalRows: number; nextOffset: number | null; skippedTruncated: number; pagesFetched: number; pagesFromCache: number; partial: boolean };
}

export interface MappingReport {
  sourceId: string;
  mapping: ColumnMapping;
  /** Rows that pass every check. */
  goodRows: number;
  /** Rows left out: unreadable or failing a check. */
  badRowCount: number;
  problemCount: number;
  /** The first MAX_REPORTED_PROBLEMS problems, in line order. */
  problems: RowProblem[];
  problemKinds: Array<{ kind: RowProblemKind; count: number }>;
  /** The user accepted leaving the bad rows out. */
  badRowsDropped: boolean;
  /** The first good rows, long fields cut to PREVIEW_CHARS. */
  preview: DatasetRow[];
  labelCounts: Array<{ label: string; count: number }>;
  lengths: LengthReport;
  /** 'line' for files, 'row' for Hub rows (numbered by row_idx + 1). */
  rowUnit: 'line' | 'row';
}

export type HubPresetId = 'openorca-cot' | 'icl-symbol-tuning';

export const HUB_PRESETS: Record<HubPresetId, HubDatasetPreset> = {
  'openorca-cot': OPEN_ORCA_COT,
  'icl-symbol-tuning': ICL_SYMBOL_TUNING_INSTRUCT,
};

export interface HubLoadRequest {
  /** Chosen by the caller, for cancelHubLoad. */
  jobId: string;
  /** A preset adds its row filter and required columns. */
  preset: HubPresetId | null;
  dataset: string;
  config: string;
  split: string;
  /** Rows to keep (after the preset's filter). */
  maxRows: number;
  /** The dataset viewer API's base URL (default: the Hub's). */
  apiBaseUrl?: string;
  /** A Hugging Face access token for gated datasets; used for this load only, never stored. */
  token?: string;
}

export interface HubLoadProgress extends HubRowsProgress {
  maxRows: number;
}

export const MAX_REPORTED_PROBLEMS = 200;
export const PREVIEW_ROWS = 8;
export const PREVIEW_CHARS = 600;
/** Rows tokenised for the mapping report's histogram (preparing counts every row). */
export const LENGTH_SAMPLE_ROWS = 5000;

export interface Source {
  info: SourceInfo;
  parsed: ParsedUpload;
  /** Kept to give the bad rows back as they were, re-read on demand (a File is a handle, not a copy). */
  file: File | null;
  mapped: MappedDataset | null;
  lengths: LengthReport | null;
  dropped: boolean;
}

export class DataInputError extends Error {
  override name = 'DataInputError';
}

/** Column names that usually play each part, most telling first (compared lower-cased). */
const INPUT_NAMES = ['question', 'input', 'inputs', 'instruction', 'prompt', 'query', 'text', 'sentence', 'content', 'premise', 'tweet', 'review'];
const OUTPUT_NAMES = ['response', 'output', 'outputs', 'answer', 'completion', 'targets', 'target', 'reply'];
const LABEL_NAMES = ['label', 'labels', 'class', 'category', 'sentiment', 'gold', 'gold_label', 'target'];

/** A first guess at the mapping from column names; the page lets people change it. */
export function suggestMapping(columns: readonly string[]): ColumnMapping {
  const used = new Set<string>();
  const find = (names: readonly string[]) => {
    for (const n of names) {
      const hit = columns.find((c) => c.toLowerCase() === n && !used.has(c));
      if (hit) {
        used.add(hit);
        return hit;
      }
    }
    return undefined;
  };
  let input = find(INPUT_NAMES);
  const output = find(OUTPUT_NAMES);
  const label = output === undefined ? find(LABEL_NAMES) : undefined;
  if (input === undefined) {
    input = columns.find((c) => !used.has(c));
    if (input !== undefined) used.add(input);
  }
  const mapping: ColumnMapping = { input: input ?? '' };
  if (output !== undefined) mapping.output = output;
  if (label !== undefined) mapping.label = label;
  // Two unnamed columns: most likely question then answer.
  if (output === undefined && label === undefined && columns.length === 2 && input !== undefined) {
    mapping.output = columns.find((c) => c !== input);
  }
  return mapping;
}

export function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

export function newId(): string {
  return crypto.randomUUID();
}

export function checkInteger(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new DataInputError(`${name} must be a whole number from ${min.toLocaleString('en-US')} to ${max.toLocaleString('en-US')}; got ${value}.`);
  }
  return value;
}

/** The open source and the Hub loads in flight. */
export class DataSources {
  private source: Source | null = null;
  private readonly hubJobs = new Map<string, AbortController>();
  private hubCache: Promise<HubDatasetsCache> | null = null;

  constructor(
    private readonly platform: Pick<Platform, 'fetch' | 'indexedDB'>,
    private readonly lengths: LengthMeter,
  ) {}

  async openUpload(file: File): Promise<SourceInfo> {
    checkUploadSize(file.size);
    const bytes = new Uint8Array(await file.arrayBuffer());
    const parsed = parseUpload(bytes, { fileName: file.name });
    return this.setSource(parsed, { kind: 'file', name: file.name, bytes: file.size, format: parsed.format }, file);
  }

  async loadHubDataset(request: HubLoadRequest, onProgress?: (progress: HubLoadProgress) => void): Promise<SourceInfo> {
    const dataset = request.dataset.trim();
    const config = request.config.trim();
    const split = request.split.trim();
    if (!/^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/.test(dataset)) {
      throw new DataInputError(`"${request.dataset}" is not a Hub dataset id: write it as owner/name, e.g. Open-Orca/OpenOrca.`);
    }
    if (config === '') throw new DataInputError('Give the config (most datasets have one called "default").');
    if (split === '') throw new DataInputError('Give the split, e.g. "train".');
    const maxRows = checkInteger('The row limit', request.maxRows, 1, MAX_HUB_ROWS);
    const preset = request.preset ? HUB_PRESETS[request.preset] : null;
    if (request.preset && !preset) throw new DataInputError(`Unknown preset "${request.preset}".`);
    const controller = new AbortController();
    this.hubJobs.set(request.jobId, controller);
    let cache: HubDatasetsCache | undefined;
    try {
      cache = await this.openHubCache();
    } catch {
      cache = undefined; // no IndexedDB: load without the cache rather than not at all
    }
    let lastProgress: HubRowsProgress | null = null;
    try {
      const result = await loadHubRows(
        { ...(preset?.query ?? {}), dataset, config, split, maxRows },
        {
          fetch: this.platform.fetch,
          baseUrl: request.apiBaseUrl?.trim() || DATASETS_SERVER_URL,
          token: request.token?.trim() || undefined,
          cache,
          signal: controller.signal,
          onProgress: (p) => {
            lastProgress = p;
            onProgress?.({ ...p, maxRows });
          },
        },
      );
      const columns = new Set<string>();
      for (const f of result.features as Array<{ name?: unknown }>) if (typeof f?.name === 'string') columns.add(f.name);
      const records: ParsedRecord[] = result.rows.map((r) => {
        for (const k of Object.keys(r.row)) columns.add(k);
        return { line: r.rowIdx + 1, endLine: r.rowIdx + 1, values: r.row };
      });
      const fileProblems: string[] = [];
      if (result.skippedTooDeep > 0) {
        fileProblems.push(`${result.skippedTooDeep} rows were skipped because they nest lists or objects more than ${MAX_JSON_DEPTH} levels deep.`);
      }
      if (result.skippedTruncated > 0) {
        fileProblems.push(`${result.skippedTruncated} rows were skipped because the Hub sent a required column cut short (very long cells).`);
      }
      if (result.partial) fileProblems.push('The Hub searched only part of this very large dataset for matching rows.');
      if (records.length === 0) throw new DataInputError(`No rows came back from ${dataset} (config "${config}", split "${split}"${preset ? ', after the preset\'s filter' : ''}).`);
      const parsed: ParsedUpload = { format: 'json', columns: [...columns], records, problems: [], fileProblems, rowsSeen: records.length };
      const info = this.setSource(parsed, { kind: 'hub', dataset, config, split, preset: request.preset }, null);
      info.hub = {
        totalRows: result.totalRows,
        nextOffset: result.nextOffset,
        skippedTruncated: result.skippedTruncated,
        pagesFetched: result.pagesFetched,
        pagesFromCache: result.pagesFromCache,
        partial: result.partial,
      };
      return info;
    } catch (err) {
      if (controller.signal.aborted) {
        const read = (lastProgress as HubRowsProgress | null)?.keptRows ?? 0;
        const stopped = new Error(`Loading ${dataset} was cancelled after ${read.toLocaleString('en-US')} rows. The pages read are cached, so loading again resumes quickly.`);
        stopped.name = 'AbortError';
        throw stopped;
      }
      if (err instanceof HubRowsError && err.status === 429) {
        throw new HubRowsError(`${err.message} The pages read so far are cached, so a later load resumes where this one stopped.`, 429);
      }
      throw err;
    } finally {
      this.hubJobs.delete(request.jobId);
    }
  }

  async cancelHubLoad(jobId: string): Promise<void> {
    this.hubJobs.get(jobId)?.abort();
  }

  async clearHubCache(): Promise<void> {
    await (await this.openHubCache()).clear();
  }

  private setSource(parsed: ParsedUpload, origin: SourceOrigin, file: File | null): SourceInfo {
    const info: SourceInfo = {
      id: newId(),
      origin,
      columns: parsed.columns,
      rowsSeen: parsed.rowsSeen,
      readableRows: parsed.records.length,
      unreadableRows: new Set(parsed.problems.map((p) => p.line)).size,
      fileProblems: parsed.fileProblems,
      suggestedMapping: suggestMapping(parsed.columns),
    };
    // One source at a time: the page shows one, and a large upload should not linger in memory.
    this.source = { info, parsed, file, mapped: null, lengths: null, dropped: false };
    return info;
  }

  sourceById(id: string): Source {
    if (this.source?.info.id !== id) throw new DataInputError('That upload is no longer open (another file or Hub dataset replaced it): open it again.');
    return this.source;
  }

  async mapSource(sourceId: string, mapping: ColumnMapping, options: { maxTokens?: number } = {}): Promise<MappingReport> {
    const source = this.sourceById(sourceId);
    const clean: ColumnMapping = { input: mapping.input };
    if (mapping.output) clean.output = mapping.output;
    if (mapping.label) clean.label = mapping.label;
    if (mapping.labelMap) clean.labelMap = mapping.labelMap;
    const maxTokens = checkInteger('The maximum length', options.maxTokens ?? DEFAULT_MAX_TOKENS, 2, MAX_TRAIN_TOKENS);
    source.mapped = mapRows(source.parsed, clean);
    source.dropped = false;
    const rows = source.mapped.rows;
    const joined = clean.output !== undefined;
    source.lengths = await this.lengths.measure(
      rows.length,
      (i) => (joined ? `${rows[i].input}\n${rows[i].output}` : rows[i].input),
      maxTokens,
      LENGTH_SAMPLE_ROWS,
      joined ? 'input and output of each row, joined by a line break, without the template' : 'the input of each row',
    );
    return this.report(source);
  }

  async setBadRowsDropped(sourceId: string, dropped: boolean): Promise<MappingReport> {
    const source = this.sourceById(sourceId);
    if (!source.mapped) throw new DataInputError('Map the columns first.');
    source.dropped = dropped && source.mapped.badRowCount > 0;
    return this.report(source);
  }

  async columnValues(sourceId: string, column: string): Promise<Array<{ value: string; count: number }>> {
    return distinctValues(this.sourceById(sourceId).parsed, column, 50);
  }

  private report(source: Source): MappingReport {
    const mapped = source.mapped!;
    const kinds = new Map<RowProblemKind, number>();
    for (const p of mapped.problems) kinds.set(p.kind, (kinds.get(p.kind) ?? 0) + 1);
    const counts = new Map<string, number>();
    for (const r of mapped.rows) if (r.label !== undefined) counts.set(r.label, (counts.get(r.label) ?? 0) + 1);
    return {
      sourceId: source.info.id,
      mapping: mapped.mapping,
      goodRows: mapped.rows.length,
      badRowCount: mapped.badRowCount,
      problemCount: mapped.problems.length,
      problems: mapped.problems.slice(0, MAX_REPORTED_PROBLEMS),
      problemKinds: [...kinds].map(([kind, count]) => ({ kind, count })).sort((a, b) => b.count - a.count),
      badRowsDropped: source.dropped,
      preview: mapped.rows.slice(0, PREVIEW_ROWS).map((r) => ({
        ...r,
        input: cut(r.input, PREVIEW_CHARS),
        ...(r.output !== undefined ? { output: cut(r.output, PREVIEW_CHARS) } : {}),
      })),
      labelCounts: [...counts].map(([label, count]) => ({ label, count })).sort((a, b) => b.count - a.count || (a.label < b.label ? -1 : 1)),
      lengths: source.lengths!,
      rowUnit: source.info.origin.kind === 'file' ? 'line' : 'row',
    };
  }

  /** The good rows of a mapped source, refusing while bad rows wait for a decision. */
  usableRows(source: Source): DatasetRow[] {
    const mapped = source.mapped;
    if (!mapped) throw new DataInputError('Map the columns first.');
    if (mapped.badRowCount > 0 && !source.dropped) {
      throw new DataInputError(
        `${mapped.badRowCount} ${mapped.badRowCount === 1 ? 'row has' : 'rows have'} problems: drop ${mapped.badRowCount === 1 ? 'it' : 'them'} in the validation report, or fix the file and upload it again.`,
      );
    }
    if (mapped.rows.length === 0) throw new DataInputError('No row passed the checks, so there is nothing to prepare.');
    return mapped.rows;
  }

  async badRowsFile(sourceId: string): Promise<{ fileName: string; blob: Blob }> {
    const source = this.sourceById(sourceId);
    const mapped = source.mapped;
    if (!mapped || mapped.badRowCount === 0) throw new DataInputError('There are no bad rows.');
    const badLines = [...new Set(mapped.problems.map((p) => p.line))].sort((a, b) => a - b);
    const origin = source.info.origin;
    if (origin.kind === 'hub' || !source.file) {
      // Hub rows are JSON objects: give back the bad ones as JSONL, with their row index.
      const bad = new Set(badLines);
      const lines = source.parsed.records.filter((r) => bad.has(r.line)).map((r) => JSON.stringify({ row_idx: r.line - 1, row: r.values }));
      return { fileName: 'bad-rows.jsonl', blob: new Blob([lines.join('\n') + '\n'], { type: 'application/x-ndjson' }) };
    }
    const text = decodeUtf8(new Uint8Array(await source.file.arrayBuffer())).text;
    const lines = text.split('\n');
    const span = this.rowSpans(source.parsed);
    const out: string[] = [];
    if (origin.format === 'csv' || origin.format === 'tsv') {
      // The header: everything before the first row (a header may hold quoted line breaks).
      const first = Math.min(...span.keys(), lines.length + 1);
      out.push(...lines.slice(0, first - 1).filter((l) => l.trim() !== '').map((l) => l.replace(/\r$/, '')));
    }
    for (const line of badLines) {
      let end = span.get(line) ?? line;
      while (end > line && lines[end - 1].trim() === '') end--; // blank lines after an unreadable row
      out.push(...lines.slice(line - 1, end).map((l) => l.replace(/\r$/, '')));
    }
    const base = origin.name.replace(/\.[^.]*$/, '');
    const ext = origin.format === 'json' ? 'txt' : origin.name.match(/\.([^.]+)$/)?.[1] ?? origin.format;
    return { fileName: `${base}.bad-rows.${ext}`, blob: new Blob([out.join('\n') + '\n'], { type: 'text/plain' }) };
  }

  /**
   * First line -> last line of every row. Parsed rows know both; an unreadable row runs to the line before
   * the next row starts (the caller drops blank lines at its end).
   */
  private rowSpans(parsed: ParsedUpload): Map<number, number> {
    const spans = new Map<number, number>();
    for (const r of parsed.records) spans.set(r.line, r.endLine);
    const starts = [...new Set([...parsed.records.map((r) => r.line), ...parsed.problems.map((p) => p.line)])].sort((a, b) => a - b);
    starts.forEach((line, k) => {
      if (!spans.has(line)) spans.set(line, k + 1 < starts.length ? starts[k + 1] - 1 : line);
    });
    return spans;
  }

  private openHubCache(): Promise<HubDatasetsCache> {
    if (!this.hubCache) {
      const opening = openHubDatasetsCache(this.platform.indexedDB);
      this.hubCache = opening;
      opening.catch(() => {
        if (this.hubCache === opening) this.hubCache = null;
      });
    }
    return this.hubCache;
  }

  sourceName(source: Source): string {
    const o = source.info.origin;
    return o.kind === 'file' ? o.name.replace(/\.[^.]*$/, '') : o.dataset.split('/').pop()!;
  }

  describeSource(source: Source): string {
    const o = source.info.origin;
    return o.kind === 'file' ? o.name : `${o.dataset} (${o.config}/${o.split})${o.preset ? `, preset ${o.preset}` : ''}`;
  }
}
