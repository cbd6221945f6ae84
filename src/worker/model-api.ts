import * as Comlink from 'comlink';
import type { Engine } from '../engine/engine';
import {
  ModelLibrary,
  type HubInspection,
  type HubSettings,
  type ImportOutcome,
  type LoadedModelInfo,
  type LoadOutcome,
  type LoadProgress,
  type ModelEstimate,
  type ModelImportProgress,
  type QuantScheme,
  type StorageUsage,
  type StoredModelInfo,
  type VerifyOutcome,
} from '../engine/session/models';
import type { Session } from '../engine/session/session';

export type {
  HubInspection,
  HubSettings,
  ImportOutcome,
  ImportProgress,
  LoadedModelInfo,
  LoadOutcome,
  LoadProgress,
  ModelDims,
  ModelEstimate,
  ModelImportProgress,
  ModelProblem,
  ModelSource,
  QuantScheme,
  StorageUsage,
  StoredModelInfo,
  VerifyOutcome,
} from '../engine/session/models';

/**
 * The Model page's side of the engine worker: comlink's face of the engine's ModelLibrary
 * (src/engine/session/models.ts). Long tasks take a progress callback (wrap it with Comlink.proxy),
 * whose port is freed here once the task no longer reports through it.
 */
export interface ModelApi {
  /** Every stored model, complete or not, most recently created first. */
  listModels(): Promise<StoredModelInfo[]>;
  /** Bytes this origin uses and may use, and whether the browser promised to keep them. */
  storageUsage(): Promise<StorageUsage>;
  /** Asks for persistent storage where a worker may and returns the usage with the resulting state. */
  requestPersistence(): Promise<StorageUsage>;
  /** Sizes on disk and on the GPU for each weight mode, from a config.json (Phi-2's by default). */
  estimates(config?: Record<string, unknown>): Promise<Record<QuantScheme, ModelEstimate>>;
  /** Reads config.json of a Hub repository: checks it exists, is public and is a Phi model, and sizes it. */
  inspectHub(settings: HubSettings): Promise<HubInspection>;
  /** Downloads a model from the Hub (or resumes it). */
  downloadFromHub(settings: HubSettings, scheme: QuantScheme, onProgress?: (p: ModelImportProgress) => void): Promise<ImportOutcome>;
  /** Imports local files; `displayName` (the folder's name) names the model. */
  importFiles(files: File[], scheme: QuantScheme, onProgress?: (p: ModelImportProgress) => void, displayName?: string): Promise<ImportOutcome>;
  /** Stops the running download or import; it resolves with status 'paused'. */
  pauseImport(): Promise<void>;
  /** Puts a stored model on the GPU (unloading the one there); loading the loaded model again is immediate. */
  loadModel(id: string, onProgress?: (p: LoadProgress) => void): Promise<LoadOutcome>;
  /** Stops a load in progress; what it had put on the GPU is freed. */
  cancelLoad(): Promise<void>;
  /** Frees the model's GPU memory (and the adapters loaded beside it). */
  unloadModel(): Promise<void>;
  loadedModel(): Promise<LoadedModelInfo | null>;
  /** Re-reads every stored record and checks its checksums; what fails is marked to be fetched again by a resume. */
  verifyModel(id: string, onProgress?: (done: number, total: number) => void): Promise<VerifyOutcome>;
  cancelVerify(): Promise<void>;
  /** Deletes a stored model (unloading it first if it is on the GPU). Refused while it is being imported. */
  deleteModel(id: string): Promise<void>;
}

/** Runs a task that reports through `callback`, then frees the callback's comlink port. */
async function releasing<T>(callback: unknown, task: () => Promise<T>): Promise<T> {
  try {
    return await task();
  } finally {
    const release = (callback as { [Comlink.releaseProxy]?: () => void } | undefined)?.[Comlink.releaseProxy];
    if (typeof release === 'function') release.call(callback);
  }
}

export function modelApi(engine: Pick<Engine, 'platform'>, session: Session): ModelApi {
  const models = new ModelLibrary(engine, session);
  return {
    listModels: () => models.list(),
    storageUsage: () => models.usage(),
    requestPersistence: () => models.requestPersistence(),
    estimates: (config) => models.estimates(config),
    inspectHub: (settings) => models.inspectHub(settings),
    downloadFromHub: (settings, scheme, onProgress) => releasing(onProgress, () => models.download(settings, scheme, onProgress)),
    importFiles: (files, scheme, onProgress, displayName) => releasing(onProgress, () => models.importFiles(files, scheme, onProgress, displayName)),
    pauseImport: async () => models.pauseImport(),
    loadModel: (id, onProgress) => releasing(onProgress, () => models.load(id, onProgress)),
    cancelLoad: async () => models.cancelLoad(),
    unloadModel: async () => models.unload(),
    loadedModel: () => models.loaded(),
    verifyModel: (id, onProgress) => releasing(onProgress, () => models.verify(id, onProgress)),
    cancelVerify: async () => models.cancelVerify(),
    deleteModel: (id) => models.delete(id),
  };
}
