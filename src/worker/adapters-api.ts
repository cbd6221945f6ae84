import type { Engine } from '../engine/engine';
import type { AdapterDownloadProgress } from '../engine/adapters/hub';
import { AdapterLibrary, type AdapterSourcePreview, type AdaptersOverview, type DownloadRequest, type ExportedFile, type MergeResult } from '../engine/session/adapters';
import type { AdapterInfo } from '../engine/adapters/store';
import type { Session } from '../engine/session/session';

export type { AdapterInfo, AdapterOrigin } from '../engine/adapters/store';
export type { AdapterDownloadProgress } from '../engine/adapters/hub';

export type { AdapterListing, AdapterSourcePreview, AdaptersOverview, DownloadRequest, ExportedFile, MergeResult, PartialDownloadInfo } from '../engine/session/adapters';

/**
 * The Adapters page's side of the engine worker: comlink's face of the engine's AdapterLibrary
 * (engine/session/adapters.ts). Short calls throw errors whose messages say what happened and what to
 * do; comlink carries the message.
 */
export interface AdaptersApi {
  listAdapters(): Promise<AdaptersOverview>;
  /** Imports adapter_config.json + adapter_model.safetensors, or one .zip holding them. */
  importAdapterFiles(files: File[], name?: string): Promise<AdapterInfo>;
  /**
   * The adapter as PEFT files (two) or one .zip, to download; with `baseModel` (a Hub id, owner/name), its
   * adapter_config.json names that base model, so that PEFT finds it on the Hub.
   */
  exportAdapter(id: string, format: 'files' | 'zip', options?: { baseModel?: string }): Promise<ExportedFile[]>;
  /** What a Hub repository id or URL holds (config, size, fit to the model) before downloading it. */
  inspectAdapterSource(repoOrUrl: string, hubBaseUrl?: string): Promise<AdapterSourcePreview>;
  /** Downloads (or resumes downloading) an adapter into the store; with `load`, also onto the GPU. */
  downloadAdapter(repoOrUrl: string, onProgress?: (p: AdapterDownloadProgress) => void, options?: DownloadRequest): Promise<AdapterInfo>;
  /**
   * The Evaluate page's presets: a Hub repository id (or URL) downloaded into the store unless it is
   * there already, then loaded beside the model and made active.
   */
  loadAdapterFromHub(repoOrUrl: string, onProgress?: (p: AdapterDownloadProgress) => void, hubBaseUrl?: string): Promise<AdapterInfo>;
  /** Stops the running download; nothing of it is kept. */
  cancelAdapterDownload(): Promise<void>;
  /** Forgets an unfinished download (by the URL listed in the overview), or all of them (null). */
  clearPartialDownload(url: string | null): Promise<void>;
  /** Puts a stored adapter on the GPU beside the model and makes it active. */
  loadAdapter(id: string): Promise<void>;
  unloadAdapter(id: string): Promise<void>;
  /** Which loaded adapter generation and evaluation use by default (null: the base model). */
  setActiveAdapter(id: string | null): Promise<void>;
  /** W' = W + scaling·B·A into the loaded weights (until the model is loaded again); the adapter is then unloaded. */
  mergeAdapterIntoModel(id: string): Promise<MergeResult>;
  renameAdapter(id: string, name: string): Promise<AdapterInfo>;
  deleteAdapter(id: string): Promise<void>;
}

export function adaptersApi(engine: Pick<Engine, 'platform'>, session: Session): AdaptersApi {
  const w = new AdapterLibrary(engine, session);
  return {
    listAdapters: () => w.list(),
    importAdapterFiles: (files, name) => w.importFiles(files, name),
    exportAdapter: (id, format, options) => w.export(id, format, options),
    inspectAdapterSource: (repoOrUrl, hubBaseUrl) => w.inspect(repoOrUrl, hubBaseUrl),
    downloadAdapter: (repoOrUrl, onProgress, options) => w.downloadInto(repoOrUrl, onProgress, options),
    loadAdapterFromHub: (repoOrUrl, onProgress, hubBaseUrl) => w.downloadInto(repoOrUrl, onProgress, { hubBaseUrl, load: true }),
    cancelAdapterDownload: async () => w.cancelDownload(),
    clearPartialDownload: (url) => w.clearPartialDownload(url),
    loadAdapter: (id) => w.load(id),
    unloadAdapter: async (id) => w.unload(id),
    setActiveAdapter: async (id) => w.setActive(id),
    mergeAdapterIntoModel: (id) => w.merge(id),
    renameAdapter: (id, name) => w.rename(id, name),
    deleteAdapter: (id) => w.delete(id),
  };
}
