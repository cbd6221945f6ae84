import type { Engine } from '../engine/engine';
import { type TrlJsonlKind, toTrlJsonl } from '../engine/data/export';
import { openHubDatasetsCache, type HubDatasetsCache } from '../engine/data/hub-datasets-cache';
import {
  DATASETS_SERVER_URL,
  type HubDatasetPreset,
  type HubRowsProgress,
  HubRowsError,
  ICL_SYMBOL_TUNING_INSTRUCT,
  loadHubRows,
  OPEN_ORCA_COT,
} from '../engine/data/hub-datasets';
import { DEFAULT_MAX_TOKENS } from '../engine/data/limits';
import { type ColumnMapping, type DatasetRow, distinctValues, type MappedDataset, mapRows, toInstructionExamples } from '../engine/data/mapping';
import { checkUploadSize, parseUpload, type ParsedRecord, type ParsedUpload, type UploadFormat } from '../engine/data/parse';
import type { RowProblem, RowProblemKind } from '../engine/data/problems';
import { lengthStats, type TokenLengthStats } from '../engine/data/summary';
import { generateSymbolTuningData } from '../engine/data/symbol-tuning';
import { SYMBOL_KINDS, type SymbolKind } from '../engine/data/symbols';
import { type InstructionExample, parseTemplate, renderTemplate, splitPromptCompletion } from '../engine/data/template';
import { decodeUtf8 } from '../engine/data/utf8';
import { MAX_JSON_DEPTH } from '../engine/untrusted-json';
import { loadSymbolTuningPool } from '../engine/eval/bundled';
import { type LabeledPool, parseTaskCatalog, type TaskCatalog, userPool } from '../engine/eval/tasks';
import {
  checkDatasetName,
  type PreparedKind,
  type SavedDatasetInfo,
  type SymbolTuningFit,
  type SymbolTuningSettings,
  type TrainingExample,
  UserDataStore,
} from './data-store';
import { MAX_HUB_ROWS, MAX_PER_CLASS, MAX_SYMBOL_PROMPTS, MAX_TRAIN_TOKENS } from './data-limits';
import { type NamedTokenizer, TokenizerFinder } from './data-tokenizer';

export type { PreparedKind, SavedDatasetInfo, SymbolTuningFit, SymbolTuningSettings, TrainingExample } from './data-store';
export type { TrlJsonlKind } from '../engine/data/export';

/**
 * The Data page's side of the engine worker. Files are parsed, mapped and validated here, Hub datasets
 * are read here, and prepared datasets are stored here, so the page never freezes and never holds more
 * than what it shows (a preview, counts, the first problems).
 *
 * Flow: a *source* (an uploaded file or Hub rows) is mapped to input/output/label columns, which gives a
 * validation report; a *prepared* dataset (instruction-tuning rows or symbol-tuning prompts, with the
 * template applied) is built from a source or from the bundled pools; a prepared dataset is *saved* under
 * a name, for the Train page and for export.
 *
 * For the Train page: `listDatasets()` and `getDataset(id)`. A saved dataset's rows are
 * {prompt, completion} pairs whose concatenation is exactly the templated text (TRL's prompt-completion
 * form, tokenizer-free). To tokenise them with the engine's tokenizeInstructionData, pass each row as
 * {question: prompt, response: completion} with the template '{question}{response}', `info.maxTokens`,
 * and lossOn 'all' (the paper: every token) or 'response' (the completion only).
 */
export interface DataApi {
  /** Reads and parses an uploaded file (CSV, TSV, JSONL, JSON array). Replaces the previous source. */
  openUpload(file: File): Promise<SourceInfo>;
  /** Reads rows of a public Hub dataset page by page (cached in IndexedDB). Replaces the previous source. */
  loadHubDataset(request: HubLoadRequest, onProgress?: (progress: HubLoadProgress) => void): Promise<SourceInfo>;
  /** Stops a Hub load; the pending loadHubDataset rejects with an Error named 'AbortError'. */
  cancelHubLoad(jobId: string): Promise<void>;
  /** Forgets every cached Hub page. */
  clearHubCache(): Promise<void>;
  /** Applies a column mapping and validates every row. Resets a previous "drop bad rows". */
  mapSource(sourceId: string, mapping: ColumnMapping, options?: { maxTokens?: number }): Promise<MappingReport>;
  /** Accepts (true) or un-accepts leaving the bad rows out; the source itself is never changed. */
  setBadRowsDropped(sourceId: string, dropped: boolean): Promise<MappingReport>;
  /** The bad rows as they were in the upload (with the header for CSV/TSV), to fix and upload again. */
  badRowsFile(sourceId: string): Promise<{ fileName: string; blob: Blob }>;
  /** Distinct values of a column with counts (for choosing the label column). */
  columnValues(sourceId: string, column: string): Promise<Array<{ value: string; count: number }>>;
  /** Whose tokenizer counts tokens on this page, or null (lengths are then in characters). */
  tokenizerName(): Promise<string | null>;
  /** Downloads Phi-2's tokenizer files alone (about 2 MB) so lengths can be counted in tokens before any model. */
  downloadTokenizer(hubBaseUrl?: string): Promise<string>;
  /** The bundled labelled pools, from tasks.json under `dataUrl` (the app's data/ folder URL). */
  bundledPools(dataUrl: string): Promise<BundledPoolInfo[]>;
  prepareInstructionData(request: InstructionRequest, onProgress?: (done: number, total: number) => void): Promise<PreparedSummary>;
  prepareSymbolTuning(request: SymbolTuningRequest, onProgress?: (done: number, total: number) => void): Promise<PreparedSummary>;
  saveDataset(preparedId: string, name: string): Promise<SavedDatasetInfo>;
  listDatasets(): Promise<SavedDatasetInfo[]>;
  getDataset(id: string): Promise<TrainingDataset>;
  renameDataset(id: string, name: string): Promise<SavedDatasetInfo>;
  deleteDataset(id: string): Promise<void>;
  /** JSONL for TRL/PEFT: 'text' ({"text"}, loss on everything) or 'prompt-completion'. */
  exportDataset(id: string, kind: TrlJsonlKind): Promise<{ fileName: string; blob: Blob }>;
}

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

export interface LengthReport {
  unit: 'tokens' | 'characters';
  /** Whose tokenizer counted (unit 'tokens'). */
  tokenizer: string | null;
  /** What was measured, for the caption. */
  measured: string;
  /** With unit 'characters', `limit` is Infinity and `overLimit` 0: characters cannot say what is cut. */
  stats: TokenLengthStats;
  /** Only the first `stats.count` rows were measured. */
  sampled: boolean;
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

export interface BundledPoolInfo {
  id: string;
  name: string;
  /** Class key -> label word. */
  labels: Record<string, string>;
  /** 'tuning' pools are meant for symbol tuning; 'evaluation' pools are the in-context evaluation's. */
  role: 'tuning' | 'evaluation';
  instruction: string | null;
}

export interface InstructionRequest {
  sourceId: string;
  template: string;
  maxTokens: number;
}

export interface SymbolTuningRequest {
  pools: { kind: 'bundled'; ids: string[]; dataUrl: string } | { kind: 'source'; sourceId: string; instruction?: string };
  seed: number;
  count: number;
  perClass: number;
  kinds: SymbolKind[];
  instruction: 'none' | 'include' | 'mixed';
  shapes: 'paper' | 'varied';
  template: string;
  maxTokens: number;
}

export interface PreparedExample extends TrainingExample {
  /** Symbol tuning: the pool it came from, and the label word of each class -> the symbol standing for it. */
  pool?: string;
  symbols?: Record<string, string>;
  /** The text was cut to PREPARED_PREVIEW_CHARS for display (the stored row is whole). */
  cut: boolean;
}

export interface PreparedSummary {
  id: string;
  kind: PreparedKind;
  rowCount: number;
  template: string;
  maxTokens: number;
  description: string;
  suggestedName: string;
  /** The first rows, exactly as the model will see them (prompt + completion). */
  examples: PreparedExample[];
  lengths: LengthReport;
  /** Rows longer than maxTokens (cut at the end when training); null without a tokenizer. */
  truncatedRows: number | null;
  /** Symbol tuning: how the prompts were fitted within maxTokens. */
  symbolFit?: SymbolTuningFit;
}

export interface TrainingDataset {
  info: SavedDatasetInfo;
  rows: TrainingExample[];
}

export const MAX_REPORTED_PROBLEMS = 200;
export const PREVIEW_ROWS = 8;
export const PREVIEW_CHARS = 600;
export const PREPARED_PREVIEW_ROWS = 3;
export const PREPARED_PREVIEW_CHARS = 20_000;
/** Dropped symbol-tuning prompts listed one by one (the rest are counted). */
export const MAX_REPORTED_DROPPED = 20;
/** Rows tokenised for the mapping report's histogram (preparing counts every row). */
export const LENGTH_SAMPLE_ROWS = 5000;
export const HISTOGRAM_BINS = 24;

interface Source {
  info: SourceInfo;
  parsed: ParsedUpload;
  /** Kept to give the bad rows back as they were, re-read on demand (a File is a handle, not a copy). */
  file: File | null;
  mapped: MappedDataset | null;
  lengths: LengthReport | null;
  dropped: boolean;
}

interface Prepared {
  summary: PreparedSummary;
  rows: TrainingExample[];
  symbolTuning?: SymbolTuningSettings;
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

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

function newId(): string {
  return crypto.randomUUID();
}

function checkInteger(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new DataInputError(`${name} must be a whole number from ${min.toLocaleString('en-US')} to ${max.toLocaleString('en-US')}; got ${value}.`);
  }
  return value;
}

/** Everything behind the DataApi, with its state; `dataApi(engine)` exposes one per worker. */
export class DataWorkspace {
  private source: Source | null = null;
  private prepared: Prepared | null = null;
  private readonly hubJobs = new Map<string, AbortController>();
  private hubCache: Promise<HubDatasetsCache> | null = null;
  private userData: Promise<UserDataStore> | null = null;
  private readonly tokenizers: TokenizerFinder;
  private bundled: { dataUrl: string; catalog: Promise<TaskCatalog>; pools: Map<string, Promise<LabeledPool>> } | null = null;

  constructor(private readonly engine: Pick<Engine, 'platform'>) {
    this.tokenizers = new TokenizerFinder(engine.platform, () => this.store());
  }

  // ---- sources

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
          fetch: this.engine.platform.fetch,
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

  private sourceById(id: string): Source {
    if (this.source?.info.id !== id) throw new DataInputError('That upload is no longer open (another file or Hub dataset replaced it): open it again.');
    return this.source;
  }

  // ---- mapping and validation

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
    source.lengths = await this.measure(
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
  private usableRows(source: Source): DatasetRow[] {
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

  // ---- lengths

  async tokenizerName(): Promise<string | null> {
    return (await this.findTokenizer())?.name ?? null;
  }

  async downloadTokenizer(hubBaseUrl?: string): Promise<string> {
    return (await this.tokenizers.download(hubBaseUrl)).name;
  }

  private async findTokenizer(): Promise<NamedTokenizer | null> {
    try {
      return await this.tokenizers.find();
    } catch {
      return null; // counting in characters is the documented fallback
    }
  }

  /** Lengths of the first `limit` texts, in tokens when a tokenizer is at hand, else in characters. */
  private async measure(
    n: number,
    textOf: (i: number) => string,
    maxTokens: number,
    limit: number,
    measured: string,
    onProgress?: (done: number, total: number) => void,
  ): Promise<LengthReport> {
    const count = Math.min(n, limit);
    const tok = await this.findTokenizer();
    const lengths = new Array<number>(count);
    for (let i = 0; i < count; i++) {
      lengths[i] = tok ? tok.tokenizer.encode(textOf(i)).length : textOf(i).length;
      if (onProgress && tok && (i + 1) % 500 === 0) onProgress(i + 1, count);
    }
    const stats = lengthStats(lengths, tok ? maxTokens : Number.POSITIVE_INFINITY, HISTOGRAM_BINS);
    return { unit: tok ? 'tokens' : 'characters', tokenizer: tok?.name ?? null, measured, stats, sampled: count < n };
  }

  // ---- preparing

  async bundledPools(dataUrl: string): Promise<BundledPoolInfo[]> {
    const catalog = await this.bundledData(dataUrl).catalog;
    const tuning = Object.values(catalog.symbolTuningPools).map((p) => ({ id: p.id, name: p.name, labels: p.labels, role: 'tuning' as const, instruction: null }));
    const evaluation = Object.values(catalog.classification).map((t) => ({ id: t.id, name: t.name, labels: t.labels, role: 'evaluation' as const, instruction: t.instruction }));
    return [...tuning, ...evaluation];
  }

  private bundledData(dataUrl: string) {
    const url = new URL(dataUrl.endsWith('/') ? dataUrl : `${dataUrl}/`).href;
    if (this.bundled?.dataUrl !== url) {
      const fetchFn = this.engine.platform.fetch;
      const catalog = (async () => {
        const response = await fetchFn(new URL('tasks.json', url).href).catch((err: Error) => {
          throw new Error(`Could not load the bundled task list from ${url}: ${err.message}`);
        });
        if (!response.ok) throw new Error(`Could not load the bundled task list from ${url}tasks.json: HTTP ${response.status}.`);
        return parseTaskCatalog(await response.text());
      })();
      this.bundled = { dataUrl: url, catalog, pools: new Map() };
      catalog.catch(() => {
        if (this.bundled?.catalog === catalog) this.bundled = null; // let a later call retry
      });
    }
    return this.bundled!;
  }

  private bundledPool(dataUrl: string, id: string): Promise<LabeledPool> {
    const data = this.bundledData(dataUrl);
    let pool = data.pools.get(id);
    if (!pool) {
      pool = data.catalog.then((catalog) => loadSymbolTuningPool(this.engine.platform.fetch, data.dataUrl, catalog, id));
      data.pools.set(id, pool);
      pool.catch(() => data.pools.delete(id));
    }
    return pool;
  }

  async prepareInstructionData(request: InstructionRequest, onProgress?: (done: number, total: number) => void): Promise<PreparedSummary> {
    const source = this.sourceById(request.sourceId);
    const template = parseTemplate(request.template);
    const maxTokens = checkInteger('The maximum length', request.maxTokens, 2, MAX_TRAIN_TOKENS);
    const good = this.usableRows(source);
    if (!source.mapped!.mapping.output) {
      throw new DataInputError('Instruction tuning needs a response: map the output column (or choose symbol tuning for labelled data).');
    }
    const rows = toInstructionExamples(good).map((e) => splitPromptCompletion(template, e));
    const mapping = source.mapped!.mapping;
    const from = this.describeSource(source);
    return this.finishPrepared(
      {
        kind: 'instruction',
        template: request.template,
        maxTokens,
        description: `${from}: ${mapping.input} → ${mapping.output}, ${rows.length.toLocaleString('en-US')} rows`,
        suggestedName: `${this.sourceName(source)} (instruction)`,
      },
      rows,
      undefined,
      onProgress,
    );
  }

  async prepareSymbolTuning(request: SymbolTuningRequest, onProgress?: (done: number, total: number) => void): Promise<PreparedSummary> {
    parseTemplate(request.template);
    const maxTokens = checkInteger('The maximum length', request.maxTokens, 2, MAX_TRAIN_TOKENS);
    const count = checkInteger('The number of prompts', request.count, 1, MAX_SYMBOL_PROMPTS);
    const perClass = checkInteger('Exemplars per class', request.perClass, 1, MAX_PER_CLASS);
    const seed = checkInteger('The seed', request.seed, 0, Number.MAX_SAFE_INTEGER);
    const kinds = request.kinds.filter((k) => SYMBOL_KINDS.includes(k));
    if (kinds.length === 0) throw new DataInputError('Choose at least one kind of symbol.');
    let pools: LabeledPool[];
    let from: string;
    let shortName: string;
    if (request.pools.kind === 'bundled') {
      const { ids, dataUrl } = request.pools;
      if (ids.length === 0) throw new DataInputError('Choose at least one bundled pool.');
      pools = await Promise.all(ids.map((id) => this.bundledPool(dataUrl, id)));
      from = `bundled pools ${ids.join(', ')}`;
      shortName = ids.join('+');
    } else {
      const source = this.sourceById(request.pools.sourceId);
      const good = this.usableRows(source);
      if (!source.mapped!.mapping.label) throw new DataInputError('Symbol tuning needs labelled rows: map the label column.');
      const name = this.sourceName(source);
      pools = [userPool(`upload:${name}`, name, good, { instruction: request.pools.instruction })];
      from = `${this.describeSource(source)}: ${source.mapped!.mapping.input} → ${source.mapped!.mapping.label}`;
      shortName = name;
    }
    const settings: SymbolTuningSettings = {
      pools: pools.map((p) => p.id),
      seed,
      count,
      perClass,
      kinds,
      instruction: request.instruction,
      shapes: request.shapes,
    };
    const template = parseTemplate(request.template);
    // Fit every prompt within the maximum length in tokens by taking fewer exemplars, never by cutting. Without
    // a tokenizer nothing can be measured: the prompts are kept whole, the page says so, and the Train page
    // leaves out any prompt whose answer its maximum length would cut.
    const tok = await this.findTokenizer();
    let measured = 0;
    const fitted = generateSymbolTuningData(pools, {
      seed,
      count,
      perClass,
      kinds,
      instruction: request.instruction,
      shapes: request.shapes,
      ...(tok && {
        fit: {
          maxLength: maxTokens,
          length: (e: InstructionExample) => {
            if (onProgress && ++measured % 200 === 0) onProgress(measured, count);
            return tok.tokenizer.encode(renderTemplate(template, e)).length;
          },
        },
      }),
    });
    if (fitted.examples.length === 0) {
      throw new DataInputError(
        `None of the ${count.toLocaleString('en-US')} prompts fits in ${maxTokens} tokens, even with one exemplar per class: ` +
          'raise the maximum length or choose pools with shorter texts.',
      );
    }
    const generated = fitted.examples;
    const rows = generated.map((e) => splitPromptCompletion(template, e));
    const fit: SymbolTuningFit = {
      fitted: tok !== null,
      maxLength: maxTokens,
      perClass,
      shortened: fitted.shortened,
      dropped: fitted.dropped.length,
      droppedExamples: fitted.dropped.slice(0, MAX_REPORTED_DROPPED).map((d) => ({ pool: d.source, length: d.length })),
      perClassCounts: fitted.perClassCounts,
    };
    return this.finishPrepared(
      {
        kind: 'symbol-tuning',
        template: request.template,
        maxTokens,
        description: `symbol tuning from ${from}; ${generated.length.toLocaleString('en-US')} prompts, up to ${perClass} exemplars per class, seed ${seed}`,
        suggestedName: `${shortName} symbol tuning (seed ${seed})`,
      },
      rows,
      { ...settings, fit },
      onProgress,
      generated.slice(0, PREPARED_PREVIEW_ROWS).map((e) => {
        const words = pools.find((p) => p.id === e.source)!.labelWords;
        return { pool: e.source, symbols: Object.fromEntries(Object.entries(e.symbols).map(([c, symbol]) => [words[c] ?? c, symbol])) };
      }),
    );
  }

  private async finishPrepared(
    head: Pick<PreparedSummary, 'kind' | 'template' | 'maxTokens' | 'description' | 'suggestedName'>,
    rows: TrainingExample[],
    symbolTuning: SymbolTuningSettings | undefined,
    onProgress?: (done: number, total: number) => void,
    extras: Array<Pick<PreparedExample, 'pool' | 'symbols'>> = [],
  ): Promise<PreparedSummary> {
    // Every row is counted: the number of truncated rows is a promise about the training set.
    const lengths = await this.measure(
      rows.length,
      (i) => rows[i].prompt + rows[i].completion,
      head.maxTokens,
      Number.POSITIVE_INFINITY,
      'the whole templated text of each row',
      onProgress,
    );
    const summary: PreparedSummary = {
      ...head,
      id: newId(),
      rowCount: rows.length,
      examples: rows.slice(0, PREPARED_PREVIEW_ROWS).map((r, k) => {
        const whole = r.prompt.length + r.completion.length <= PREPARED_PREVIEW_CHARS;
        // A very long row is shown cut: its start and the start of its completion.
        const prompt = whole ? r.prompt : cut(r.prompt, PREPARED_PREVIEW_CHARS);
        const completion = whole ? r.completion : cut(r.completion, PREPARED_PREVIEW_CHARS / 10);
        return { prompt, completion, cut: !whole, ...extras[k] };
      }),
      lengths,
      truncatedRows: lengths.unit === 'tokens' ? lengths.stats.overLimit : null,
      ...(symbolTuning?.fit ? { symbolFit: symbolTuning.fit } : {}),
    };
    this.prepared = { summary, rows, symbolTuning };
    return summary;
  }

  private sourceName(source: Source): string {
    const o = source.info.origin;
    return o.kind === 'file' ? o.name.replace(/\.[^.]*$/, '') : o.dataset.split('/').pop()!;
  }

  private describeSource(source: Source): string {
    const o = source.info.origin;
    return o.kind === 'file' ? o.name : `${o.dataset} (${o.config}/${o.split})${o.preset ? `, preset ${o.preset}` : ''}`;
  }

  // ---- saved datasets

  private store(): Promise<UserDataStore> {
    if (!this.userData) {
      const opening = UserDataStore.open(this.engine.platform.indexedDB);
      this.userData = opening;
      opening.catch(() => {
        if (this.userData === opening) this.userData = null;
      });
    }
    return this.userData;
  }

  private openHubCache(): Promise<HubDatasetsCache> {
    if (!this.hubCache) {
      const opening = openHubDatasetsCache(this.engine.platform.indexedDB);
      this.hubCache = opening;
      opening.catch(() => {
        if (this.hubCache === opening) this.hubCache = null;
      });
    }
    return this.hubCache;
  }

  async saveDataset(preparedId: string, name: string): Promise<SavedDatasetInfo> {
    const prepared = this.prepared;
    if (prepared?.summary.id !== preparedId) throw new DataInputError('That prepared dataset was replaced by a newer one: prepare it again, then save.');
    const s = prepared.summary;
    const now = Date.now();
    const info: SavedDatasetInfo = {
      id: newId(),
      name: checkDatasetName(name),
      kind: s.kind,
      description: s.description,
      rowCount: prepared.rows.length,
      template: s.template,
      maxTokens: s.maxTokens,
      truncatedRows: s.truncatedRows,
      chars: prepared.rows.reduce((a, r) => a + r.prompt.length + r.completion.length, 0),
      createdAt: now,
      updatedAt: now,
      ...(prepared.symbolTuning ? { symbolTuning: prepared.symbolTuning } : {}),
    };
    return (await this.store()).save(info, prepared.rows);
  }

  async listDatasets(): Promise<SavedDatasetInfo[]> {
    return (await this.store()).list();
  }

  async getDataset(id: string): Promise<TrainingDataset> {
    const store = await this.store();
    const info = await store.info(id);
    return { info, rows: await store.rows(id) };
  }

  async renameDataset(id: string, name: string): Promise<SavedDatasetInfo> {
    return (await this.store()).rename(id, name);
  }

  async deleteDataset(id: string): Promise<void> {
    await (await this.store()).delete(id);
  }

  async exportDataset(id: string, kind: TrlJsonlKind): Promise<{ fileName: string; blob: Blob }> {
    const { info, rows } = await this.getDataset(id);
    // prompt + completion is the templated text, so the identity template reproduces it exactly.
    const examples: InstructionExample[] = rows.map((r) => ({ question: r.prompt, response: r.completion }));
    const jsonl = toTrlJsonl(examples, kind, '{question}{response}');
    const slug = info.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'dataset';
    return { fileName: `${slug}.${kind}.jsonl`, blob: new Blob([jsonl], { type: 'application/x-ndjson' }) };
  }
}

/** The DataApi of one worker: a workspace bound to the engine's platform. */
export function dataApi(engine: Pick<Engine, 'platform'>): DataApi {
  const w = new DataWorkspace(engine);
  return {
    openUpload: (file) => w.openUpload(file),
    loadHubDataset: (request, onProgress) => w.loadHubDataset(request, onProgress),
    cancelHubLoad: (jobId) => w.cancelHubLoad(jobId),
    clearHubCache: () => w.clearHubCache(),
    mapSource: (sourceId, mapping, options) => w.mapSource(sourceId, mapping, options),
    setBadRowsDropped: (sourceId, dropped) => w.setBadRowsDropped(sourceId, dropped),
    badRowsFile: (sourceId) => w.badRowsFile(sourceId),
    columnValues: (sourceId, column) => w.columnValues(sourceId, column),
    tokenizerName: () => w.tokenizerName(),
    downloadTokenizer: (hubBaseUrl) => w.downloadTokenizer(hubBaseUrl),
    bundledPools: (dataUrl) => w.bundledPools(dataUrl),
    prepareInstructionData: (request, onProgress) => w.prepareInstructionData(request, onProgress),
    prepareSymbolTuning: (request, onProgress) => w.prepareSymbolTuning(request, onProgress),
    saveDataset: (preparedId, name) => w.saveDataset(preparedId, name),
    listDatasets: () => w.listDatasets(),
    getDataset: (id) => w.getDataset(id),
    renameDataset: (id, name) => w.renameDataset(id, name),
    deleteDataset: (id) => w.deleteDataset(id),
    exportDataset: (id, kind) => w.exportDataset(id, kind),
  };
}
