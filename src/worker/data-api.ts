import type { Engine } from '../engine/engine';
import type { TrlJsonlKind } from '../engine/data/export';
import type { ColumnMapping } from '../engine/data/mapping';
import type { BundledPoolInfo, InstructionRequest, PreparedSummary, SymbolTuningRequest } from '../engine/data/preparation';
import type { TrainingDataset } from '../engine/data/saved';
import type { HubLoadProgress, HubLoadRequest, MappingReport, SourceInfo } from '../engine/data/sources';
import { DataWorkspace } from '../engine/data/workspace';
import type { SavedDatasetInfo } from '../engine/store/datasets';

export type { PreparedKind, SavedDatasetInfo, SymbolTuningFit, SymbolTuningSettings, TrainingExample } from '../engine/store/datasets';
export type { TrlJsonlKind } from '../engine/data/export';
export type { LengthReport } from '../engine/data/lengths';
export type { BundledPoolInfo, InstructionRequest, PreparedExample, PreparedSummary, SymbolTuningRequest } from '../engine/data/preparation';
export type { TrainingDataset } from '../engine/data/saved';
export type { HubLoadProgress, HubLoadRequest, HubPresetId, MappingReport, SourceInfo, SourceOrigin } from '../engine/data/sources';

/**
 * The Data page's side of the engine worker: comlink's face of the engine's DataWorkspace
 * (src/engine/data/workspace.ts). Files are parsed, mapped and validated in the worker, Hub datasets read
 * and prepared datasets stored there, so the page never freezes and never holds more than what it shows
 * (a preview, counts, the first problems).
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

/** The DataApi of one worker: a workspace bound to the engine's platform. */
export function dataApi(engine: Pick<Engine, 'platform'>): DataApi {
  const { sources, preparation, saved, lengths } = new DataWorkspace(engine.platform);
  return {
    openUpload: (file) => sources.openUpload(file),
    loadHubDataset: (request, onProgress) => sources.loadHubDataset(request, onProgress),
    cancelHubLoad: (jobId) => sources.cancelHubLoad(jobId),
    clearHubCache: () => sources.clearHubCache(),
    mapSource: (sourceId, mapping, options) => sources.mapSource(sourceId, mapping, options),
    setBadRowsDropped: (sourceId, dropped) => sources.setBadRowsDropped(sourceId, dropped),
    badRowsFile: (sourceId) => sources.badRowsFile(sourceId),
    columnValues: (sourceId, column) => sources.columnValues(sourceId, column),
    tokenizerName: async () => (await lengths.tokenizer())?.name ?? null,
    downloadTokenizer: async (hubBaseUrl) => (await lengths.tokenizers.download(hubBaseUrl)).name,
    bundledPools: (dataUrl) => preparation.bundledPools(dataUrl),
    prepareInstructionData: (request, onProgress) => preparation.prepareInstructionData(request, onProgress),
    prepareSymbolTuning: (request, onProgress) => preparation.prepareSymbolTuning(request, onProgress),
    saveDataset: (preparedId, name) => preparation.saveDataset(preparedId, name),
    listDatasets: () => saved.list(),
    getDataset: (id) => saved.get(id),
    renameDataset: (id, name) => saved.rename(id, name),
    deleteDataset: (id) => saved.delete(id),
    exportDataset: (id, kind) => saved.export(id, kind),
  };
}
