import * as Comlink from 'comlink';
import { LORA_TARGETS, PAPER_LORA } from '../engine/adapters/lora-config';
import type { Engine } from '../engine/engine';
import type { Phi2Dims } from '../engine/model/phi2/params';
import { GpuError } from '../engine/gpu/device';
import { SessionError, type LoadedModel, type Session } from '../engine/session/session';
import { TokenizerError } from '../engine/tokenizer';
import { localLocks } from '../engine/platform/locks';
import { StoreError, type ModelManifest, type ModelSource, type StorageUsage } from '../engine/store';
import { inferenceMemory, trainingMemory, weightBytes, type MemoryEstimate, type ModelShape } from '../engine/train/memory';
import {
  CheckpointError,
  FilesSource,
  HubError,
  HubSource,
  PHI2_CONFIG_JSON,
  QUANT_SCHEMES,
  SafetensorsError,
  WeightsError,
  defaultModelId,
  importModel,
  modelWriteLock,
  parsePhiConfig,
  phiParamSpecs,
  storedBytes,
  storedDType,
  type CheckpointSource,
  type HubSettings,
  type ImportProgress,
  type LoadProgress,
  type PhiConfig,
  type QuantScheme,
} from '../engine/weights';

export type { HubSettings, ImportProgress, LoadProgress, QuantScheme, StorageUsage, ModelSource, Phi2Dims };

/**
 * The Model page's side of the engine worker: getting Phi-2's weights into IndexedDB (from the Hub or
 * from local files, resumable), the list of stored models, and putting one on the GPU through the
 * shared Session, which every other area then uses.
 *
 * Long tasks (download/import, load, verify) take a progress callback (wrap it with Comlink.proxy) and
 * resolve with an outcome: finished, stopped by the user, or failed with a `ModelProblem`. Failures
 * travel as data because comlink rebuilds a thrown Error with its message only, and the page needs
 * the code (a full disk says how much is needed; a 404 is not a dropped connection). Short calls throw.
 * One import runs at a time; pauseImport() stops it and what was stored stays for a later resume.
 * Imports go through importModel with the Hub or files source built here (what importFromHub and
 * importFromFiles do), so that the id of the model being written is known while it runs.
 */
export interface ModelApi {
  /** Every stored model, complete or not, most recently created first. */
  listModels(): Promise<StoredModelInfo[]>;
  /** Bytes this origin uses and may use, and whether the browser promised to keep them. */
  storageUsage(): Promise<StorageUsage>;
  /**
   * Asks for persistent storage where a worker may (StorageManager.persist is exposed to windows
   * only in Chromium, so the page asks first) and returns the usage with the resulting state.
   */
  requestPersistence(): Promise<StorageUsage>;
  /** Sizes on disk and on the GPU for each weight mode, from a config.json (Phi-2's by default). */
  estimates(config?: Record<string, unknown>): Promise<Record<QuantScheme, ModelEstimate>>;
  /** Reads config.json of a Hub repository: checks it exists, is public and is a Phi model, and sizes it. */
  inspectHub(settings: HubSettings): Promise<HubInspection>;
  /** Downloads a model from the Hub (or resumes it: the same repository, revision and mode continue where they stopped). */
  downloadFromHub(settings: HubSettings, scheme: QuantScheme, onProgress?: (p: ModelImportProgress) => void): Promise<ImportOutcome>;
  /**
   * Imports local files: config.json, model.safetensors or model.safetensors.index.json with its
   * shards, and the tokenizer files. `displayName` (the folder's name) names the model; importing the
   * same files again into the same name and mode resumes.
   */
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

/** The shape numbers of a model, from its config.json. */
export interface ModelDims {
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  headDim: number;
}

export interface StoredModelInfo {
  id: string;
  /** "microsoft/phi-2", or the imported folder's name. */
  name: string;
  source: ModelSource;
  scheme: QuantScheme;
  complete: boolean;
  /** Bytes the model takes once stored completely, and bytes stored so far. */
  bytesTotal: number;
  bytesStored: number;
  tensorsTotal: number;
  tensorsStored: number;
  /** tokenizer.json is stored with it (generation and evaluation need it). */
  tokenizer: boolean;
  /** null when its config.json can no longer be parsed (an older app version stored it). */
  dims: ModelDims | null;
  /** GPU memory its weights take once loaded. */
  gpuWeightBytes: number | null;
  createdAt: number;
  updatedAt: number;
}

export interface ModelEstimate {
  scheme: QuantScheme;
  /** Bytes of the checkpoint's safetensors, in the dtype config.json names (torch_dtype), and that dtype. */
  downloadBytes: number;
  sourceDtype: string;
  /** IndexedDB bytes once stored. */
  storedBytes: number;
  /** GPU memory: the weights alone, generation, and LoRA training (paper settings), item by item. */
  gpuWeights: MemoryEstimate;
  inference: MemoryEstimate & { tokens: number };
  training: MemoryEstimate & { tokens: number; loraRank: number };
}

export interface HubInspection {
  ok: boolean;
  /** With ok: the model's shape and sizes per mode. */
  dims?: ModelDims;
  estimates?: Record<QuantScheme, ModelEstimate>;
  problem?: ModelProblem;
}

/** Why a long task failed, for the page: what happened and, where it helps, what to do. */
export interface ModelProblem {
  /** The engine's error code ('not-found', 'unauthorized', 'quota', 'network', 'files-incomplete', ...) or 'failed'. */
  code: string;
  /** One line: "Not found on the Hub (HTTP 404)". */
  title: string;
  /** The full explanation, naming the file, repository and numbers involved. */
  message: string;
  /** What to do next, when the message does not already say it. */
  advice?: string;
  /** Storage full: bytes still to store, and bytes free (null when the browser cannot say). */
  neededBytes?: number;
  availableBytes?: number | null;
  /** HTTP status, when there was one. */
  status?: number;
}

/** The importer's progress, with the id of the model it writes to. */
export type ModelImportProgress = ImportProgress & { modelId: string };

export type ImportOutcome =
  | { status: 'complete'; model: StoredModelInfo }
  | { status: 'paused'; model: StoredModelInfo | null }
  | { status: 'failed'; problem: ModelProblem; model: StoredModelInfo | null };

export interface LoadedModelInfo {
  id: string;
  name: string;
  dims: Phi2Dims;
  weightMode: QuantScheme;
  /** GPU memory the weights hold. */
  gpuBytes: number;
}

export type LoadOutcome = { status: 'loaded'; model: LoadedModelInfo } | { status: 'cancelled' } | { status: 'failed'; problem: ModelProblem };

export type VerifyOutcome =
  | { status: 'ok'; bytesChecked: number }
  | { status: 'damaged'; problem: ModelProblem }
  | { status: 'cancelled' }
  | { status: 'failed'; problem: ModelProblem };

/** What to do about records marked for repair. */
const REPAIR_ADVICE = 'Resume its download or import (for local files, choose the same files again) to repair it: only the damaged parts are fetched again.';

/** Tokens of one generation (prompt + answer) and of one training sequence used in the GPU estimates. */
export const INFERENCE_ESTIMATE_TOKENS = 1024;
export const TRAINING_ESTIMATE_TOKENS = 512;

/** Progress is sent across the worker boundary at most this often (the last report always goes). */
const PROGRESS_INTERVAL_MS = 100;

interface ImportJob {
  controller: AbortController;
  label: string;
  /** Known once the source is open. */
  modelId: string | null;
}

/** Thrown from inside a progress callback to stop a load or a verification: the engine then frees what it made. */
class StoppedByUser extends Error {
  override name = 'StoppedByUser';
}

function dimsOf(c: PhiConfig): ModelDims {
  return { vocab: c.vocabSize, hidden: c.hiddenSize, intermediate: c.intermediateSize, layers: c.numLayers, heads: c.numHeads, headDim: c.headDim };
}

function shapeOf(d: ModelDims): ModelShape {
  return { vocab: d.vocab, hidden: d.hidden, intermediate: d.intermediate, layers: d.layers, heads: d.heads };
}

function total(items: Array<{ bytes: number }>): number {
  return items.reduce((a, i) => a + i.bytes, 0);
}

/** Stored bytes (the importer's own layout) and GPU memory of a config in one weight mode. */
/** Bytes per value of a checkpoint saved in `torchDtype` (F16 when config.json does not say). */
function sourceDtypeOf(torchDtype: string | null): { label: string; bytes: number } {
  if (torchDtype === 'float32') return { label: 'F32', bytes: 4 };
  if (torchDtype === 'bfloat16') return { label: 'BF16', bytes: 2 };
  return { label: 'F16', bytes: 2 };
}

export function estimateFor(config: PhiConfig, scheme: QuantScheme): ModelEstimate {
  const shape = shapeOf(dimsOf(config));
  const specs = phiParamSpecs(config);
  const stored = specs.reduce((a, spec) => a + storedBytes(spec, storedDType(spec, scheme)), 0);
  const source = sourceDtypeOf(config.torchDtype);
  const downloadBytes = specs.reduce((a, spec) => a + spec.shape.reduce((x, y) => x * y, 1) * source.bytes, 0);
  const weights = weightBytes(shape, scheme);
  const inferenceTokens = Math.min(INFERENCE_ESTIMATE_TOKENS, config.maxPositions);
  const trainingTokens = Math.min(TRAINING_ESTIMATE_TOKENS, config.maxPositions);
  return {
    scheme,
    downloadBytes,
    sourceDtype: source.label,
    storedBytes: stored,
    gpuWeights: { items: weights, total: total(weights) },
    inference: { ...inferenceMemory(shape, { batch: 1, maxTokens: inferenceTokens, weights: scheme }), tokens: inferenceTokens },
    training: {
      ...trainingMemory(shape, {
        batch: 1,
        seq: trainingTokens,
        lora: { ...PAPER_LORA, targets: [...LORA_TARGETS] },
        weights: scheme,
        keepActivations: false,
      }),
      tokens: trainingTokens,
      loraRank: PAPER_LORA.r,
    },
  };
}

function estimatesFor(config: PhiConfig): Record<QuantScheme, ModelEstimate> {
  return Object.fromEntries(QUANT_SCHEMES.map((s) => [s, estimateFor(config, s)])) as Record<QuantScheme, ModelEstimate>;
}

/**
 * Turns an engine error into what the page shows; `fallbackTitle` heads errors of no known kind. `task`
 * says what failed, so that the advice fits it: a download resumes, a repository check is just run again.
 */
export function describeProblem(err: unknown, fallbackTitle = 'Something went wrong', task: 'download' | 'check' = 'download'): ModelProblem {
  const message = err instanceof Error ? err.message || err.name : String(err);
  if (err instanceof HubError) {
    const status = err.status;
    const check = task === 'check';
    const later = check ? 'check again' : 'resume: everything stored so far is kept';
    switch (err.code) {
      case 'not-found':
        return { code: err.code, status, title: status === 404 ? 'Not found on the Hub (HTTP 404)' : 'Not a valid Hub location', message, advice: 'Check the repository, revision and base URL under "Advanced".' };
      case 'unauthorized':
        return { code: err.code, status, title: `The repository needs a login (HTTP ${status ?? '401/403'})`, message };
      case 'rate-limited':
        return { code: err.code, status, title: 'The Hub is limiting requests (HTTP 429)', message, advice: `Wait a minute, then ${later}.` };
      case 'unreachable':
        return {
          code: err.code,
          title: 'The Hub cannot be reached',
          message,
          advice: `Check the network connection (or the base URL under "Advanced"), then ${check ? 'check again' : 'try again: everything stored so far is kept'}. Or import the model's files from disk.`,
        };
      case 'network':
        return {
          code: err.code,
          title: 'The connection failed',
          message,
          advice: check ? 'Check the network connection, then check again.' : 'Check the network, then resume: the download continues where it stopped.',
        };
      case 'redirects':
        return { code: err.code, status, title: 'The server redirects in a loop', message, advice: 'Check the repository, revision and base URL under "Advanced".' };
      case 'http':
        return { code: err.code, status, title: `The server answered HTTP ${status ?? 'an error'}`, message, advice: check ? 'Check again later.' : 'Resume later: everything stored so far is kept.' };
      case 'changed':
        return { code: err.code, status, title: 'The file changed on the server', message, advice: 'Resume later, or pin a fixed revision (a commit hash) under "Advanced".' };
      case 'bad-response':
        return {
          code: err.code,
          status,
          title: 'The server sent something unexpected',
          message,
          advice: check ? 'Check again; if it keeps failing, the server may not be a Hub or a mirror of one.' : 'Resume to try again; if it keeps failing, the mirror may not support byte ranges.',
        };
      default:
        return { code: err.code, status, title: check ? 'The repository could not be checked' : 'The download failed', message };
    }
  }
  if (err instanceof StoreError) {
    switch (err.code) {
      case 'quota':
        return { code: err.code, title: 'Browser storage is full', message, neededBytes: err.needed, availableBytes: err.available ?? null };
      case 'unavailable':
        return { code: err.code, title: 'Browser storage is not available', message, advice: 'Private windows and some settings block IndexedDB; use a normal window of this site.' };
      case 'corrupt':
        return { code: err.code, title: 'Stored data is damaged', message };
      case 'missing':
        return { code: err.code, title: 'Stored data is missing', message };
      default:
        return { code: err.code, title: 'Browser storage failed', message };
    }
  }
  if (err instanceof CheckpointError) {
    const titles: Record<string, string> = {
      'unsupported-model': 'Not a supported Phi checkpoint',
      'config-invalid': 'config.json is not usable',
      'files-incomplete': 'Files are missing',
      'tensor-missing': 'A weight is missing',
      'tensor-unexpected': 'The checkpoint has weights Phi does not',
      'tensor-shape': 'A weight has the wrong shape',
      'tensor-dtype': 'A weight has an unsupported type',
      'tensor-values': 'A weight holds invalid numbers',
    };
    return { code: err.code, title: titles[err.code] ?? 'The checkpoint is not usable', message };
  }
  if (err instanceof SafetensorsError) return { code: err.code, title: 'A weights file is damaged or not safetensors', message };
  if (err instanceof WeightsError) return { code: err.code, title: 'The weights could not be read', message };
  if (err instanceof GpuError) return { code: err.code, title: 'No usable GPU', message };
  if (err instanceof TokenizerError) return { code: `tokenizer-${err.code}`, title: 'The stored tokenizer is not usable', message };
  if (err instanceof SessionError) return { code: 'session', title: fallbackTitle, message };
  const name = (err as { name?: string } | null)?.name;
  if (name === 'OperationError' || /out of memory/i.test(message)) {
    return { code: 'gpu-memory', title: 'The GPU ran out of memory', message, advice: 'Close other GPU-heavy tabs and programs, or use the int8 weight mode.' };
  }
  return { code: 'failed', title: fallbackTitle, message };
}

/** Calls `report` at most every PROGRESS_INTERVAL_MS; `flush` sends the latest value. */
function throttle<T>(now: () => number, report: ((value: T) => unknown) | undefined): { push(value: T): void; flush(): void } {
  let last = -Infinity;
  let pending: T | undefined;
  let hasPending = false;
  const send = (value: T) => {
    last = now();
    hasPending = false;
    // A callback from the page is a comlink proxy: its promise settles on the page's schedule; never wait for it.
    void Promise.resolve(report?.(value)).catch(() => undefined);
  };
  return {
    push(value) {
      pending = value;
      hasPending = true;
      if (now() - last >= PROGRESS_INTERVAL_MS) send(value);
    },
    flush() {
      if (hasPending) send(pending as T);
    },
  };
}

/** Frees a comlink proxy's port once a task no longer reports through it. */
function release(callback: unknown): void {
  const release = (callback as { [Comlink.releaseProxy]?: () => void } | undefined)?.[Comlink.releaseProxy];
  if (typeof release === 'function') release.call(callback);
}

function checkScheme(scheme: QuantScheme): void {
  if (!QUANT_SCHEMES.includes(scheme)) throw new RangeError(`Unknown weight mode "${String(scheme)}": use ${QUANT_SCHEMES.join(' or ')}.`);
}

export function modelApi(engine: Engine, session: Session): ModelApi {
  let importing: ImportJob | null = null;
  let loading: AbortController | null = null;
  let verifying: AbortController | null = null;
  const locks = engine.platform.locks ?? localLocks;

  /** Marks records for repair unless another tab holds the model's write lock; whether it did. */
  async function markForRepair(id: string, damaged: Array<{ key: string; index: number }>): Promise<boolean> {
    const store = await session.store();
    const done = await locks.ifFree(modelWriteLock(id), () => store.markForRepair(id, damaged));
    return !done.held;
  }

  async function describeModel(manifest: ModelManifest): Promise<StoredModelInfo> {
    const store = await session.store();
    const [entries, tokenizer] = await Promise.all([store.getTensors(manifest.id), store.getTokenizer(manifest.id)]);
    let bytesStored = 0;
    let tensorsStored = 0;
    for (const e of entries) {
      if (e.complete) tensorsStored++;
      // Records hold whole rows, rowsPerRecord each (the last fewer), and bytes are proportional to rows.
      bytesStored += e.complete ? e.bytes : Math.round((e.bytes * Math.min(e.rows, e.recordsDone * e.rowsPerRecord)) / e.rows);
    }
    let dims: ModelDims | null = null;
    let gpuWeightBytes: number | null = null;
    try {
      const config = parsePhiConfig(manifest.config);
      dims = dimsOf(config);
      gpuWeightBytes = total(weightBytes(shapeOf(dims), manifest.scheme));
    } catch {
      // Listed anyway, so that it can be deleted.
    }
    return {
      id: manifest.id,
      name: manifest.name,
      source: manifest.source,
      scheme: manifest.scheme,
      complete: manifest.complete,
      bytesTotal: manifest.storedBytes,
      bytesStored: manifest.complete ? manifest.storedBytes : bytesStored,
      tensorsTotal: manifest.tensorCount,
      tensorsStored: manifest.complete ? manifest.tensorCount : tensorsStored,
      tokenizer: tokenizer !== undefined && 'tokenizer.json' in tokenizer,
      dims,
      gpuWeightBytes,
      createdAt: manifest.createdAt,
      updatedAt: manifest.updatedAt,
    };
  }

  async function findModel(id: string | null): Promise<StoredModelInfo | null> {
    if (id === null) return null;
    try {
      const manifest = await (await session.store()).getModel(id);
      return manifest ? await describeModel(manifest) : null;
    } catch {
      return null;
    }
  }

  /**
   * Runs one import. `open` builds the source (which validates the settings or the files) inside the
   * try, so that bad input becomes a failed outcome like any other.
   */
  async function runImport(
    label: string,
    onProgress: ((p: ModelImportProgress) => void) | undefined,
    open: () => CheckpointSource,
    scheme: QuantScheme,
  ): Promise<ImportOutcome> {
    if (importing) {
      release(onProgress);
      throw new Error(`${importing.label} is still running; pause it before starting another.`);
    }
    const job: ImportJob = { controller: new AbortController(), label, modelId: null };
    importing = job;
    const progress = throttle(() => engine.platform.now(), onProgress);
    try {
      const store = await session.store();
      const source = open();
      const modelId = defaultModelId(source.description, source.displayName, scheme);
      job.modelId = modelId;
      const manifest = await importModel({
        source,
        store,
        scheme,
        modelId,
        locks: engine.platform.locks,
        now: () => engine.platform.now(),
        signal: job.controller.signal,
        onProgress: (p) => {
          progress.push({ ...p, modelId });
          // Notices (a resume, a retry) and the end are rare and worth seeing: never left behind by the throttle.
          if (p.notice || p.phase === 'complete') progress.flush();
        },
      });
      progress.flush();
      return { status: 'complete', model: await describeModel(manifest) };
    } catch (err) {
      progress.flush();
      const model = await findModel(job.modelId);
      if (job.controller.signal.aborted) return { status: 'paused', model };
      return { status: 'failed', problem: describeProblem(err, 'The import failed'), model };
    } finally {
      importing = null;
      release(onProgress);
    }
  }

  return {
    async listModels() {
      const store = await session.store();
      const manifests = await store.listModels();
      // Newest first by creation, so that rows keep their place while a download updates one.
      manifests.sort((a, b) => b.createdAt - a.createdAt);
      return Promise.all(manifests.map((m) => describeModel(m)));
    },

    async storageUsage() {
      return (await session.store()).usage();
    },

    async requestPersistence() {
      const store = await session.store();
      await store.requestPersistence();
      return store.usage();
    },

    async estimates(config) {
      return estimatesFor(parsePhiConfig(config ?? PHI2_CONFIG_JSON));
    },

    async inspectHub(settings) {
      try {
        const source = new HubSource(engine.platform, settings);
        const text = await source.readText('config.json');
        if (text === null) {
          throw new HubError(
            'not-found',
            `${source.settings.repo} at revision ${source.settings.revision} has no config.json (HTTP 404): check the repository name and the revision.`,
            'config.json',
            404,
          );
        }
        const config = parsePhiConfig(text);
        return { ok: true, dims: dimsOf(config), estimates: estimatesFor(config) };
      } catch (err) {
        return { ok: false, problem: describeProblem(err, 'The repository could not be checked', 'check') };
      }
    },

    async downloadFromHub(settings, scheme, onProgress) {
      checkScheme(scheme);
      return runImport(`The download of ${settings.repo}`, onProgress, () => new HubSource(engine.platform, settings), scheme);
    },

    async importFiles(files, scheme, onProgress, displayName) {
      checkScheme(scheme);
      if (!Array.isArray(files) || files.length === 0) {
        release(onProgress);
        throw new Error('No files were chosen: choose the model folder or its files.');
      }
      return runImport(`The import of ${displayName ?? 'local files'}`, onProgress, () => new FilesSource(files, displayName), scheme);
    },

    async pauseImport() {
      importing?.controller.abort();
    },

    async loadModel(id, onProgress) {
      if (loading) {
        release(onProgress);
        throw new Error('A model is already being loaded onto the GPU; wait for it or cancel it.');
      }
      const controller = new AbortController();
      loading = controller;
      const progress = throttle(() => engine.platform.now(), onProgress);
      try {
        const manifest = await (await session.store()).getModel(id);
        const loaded = await session.load(id, (p) => {
          if (controller.signal.aborted) throw new StoppedByUser('Loading was cancelled.');
          progress.push(p);
        });
        progress.flush();
        return { status: 'loaded', model: loadedInfo(loaded, manifest?.name ?? id) };
      } catch (err) {
        if (controller.signal.aborted) return { status: 'cancelled' };
        const problem = describeProblem(err, 'The model could not be loaded');
        if (err instanceof StoreError && err.record) {
          // A record failed its checksum on the way to the GPU: mark it (and the rest of its tensor) to be
          // fetched again, so that resuming repairs the model instead of a delete and a full re-download.
          const marked = await markForRepair(id, [err.record]).catch(() => false);
          if (marked) return { status: 'failed', problem: { ...problem, advice: REPAIR_ADVICE } };
        }
        return { status: 'failed', problem };
      } finally {
        loading = null;
        release(onProgress);
      }
    },

    async cancelLoad() {
      loading?.abort();
    },

    async unloadModel() {
      if (loading) throw new Error('A model is being loaded; cancel the load first.');
      session.unload();
    },

    async loadedModel() {
      const loaded = session.loaded;
      if (!loaded) return null;
      const manifest = await (await session.store()).getModel(loaded.id).catch(() => undefined);
      return loadedInfo(loaded, manifest?.name ?? loaded.id);
    },

    async verifyModel(id, onProgress) {
      if (verifying) {
        release(onProgress);
        throw new Error('Another model is being verified; wait for it or cancel it.');
      }
      const controller = new AbortController();
      verifying = controller;
      const progress = throttle<[number, number]>(() => engine.platform.now(), onProgress && (([done, all]) => onProgress(done, all)));
      try {
        const store = await session.store();
        const manifest = await store.getModel(id);
        if (!manifest) return { status: 'failed', problem: { code: 'missing', title: 'No such model', message: `No stored model "${id}"; it may have been deleted in another tab.` } };
        if (!manifest.complete) {
          return {
            status: 'failed',
            problem: { code: 'incomplete', title: 'Not completely stored', message: `${manifest.name} is only partly stored. Resume its download or import first, then verify it.` },
          };
        }
        let bytesChecked = 0;
        const damaged = await store.checkRecords(id, (done, all) => {
          if (controller.signal.aborted) throw new StoppedByUser('Verification was cancelled.');
          bytesChecked = done;
          progress.push([done, all]);
        });
        progress.flush();
        if (!damaged.length) return { status: 'ok', bytesChecked };
        const marked = await markForRepair(id, damaged);
        const first = damaged[0];
        return {
          status: 'damaged',
          problem: {
            code: first.reason === 'missing' ? 'missing' : 'corrupt',
            title: 'Stored data is damaged',
            message:
              `${damaged.length} tensor${damaged.length === 1 ? ' has' : 's have'} missing or damaged records (e.g. ${first.key}, record ${first.index}: ${first.reason}).` +
              (marked ? ' They are marked to be fetched again.' : ' Another tab is writing this model; verify again once it is done.'),
            advice: marked ? REPAIR_ADVICE : undefined,
          },
        };
      } catch (err) {
        if (controller.signal.aborted) return { status: 'cancelled' };
        return { status: 'failed', problem: describeProblem(err, 'Verification failed') };
      } finally {
        verifying = null;
        release(onProgress);
      }
    },

    async cancelVerify() {
      verifying?.abort();
    },

    async deleteModel(id) {
      const store = await session.store();
      const manifest = await store.getModel(id);
      if (!manifest) return;
      if (importing?.modelId === id) throw new Error(`${manifest.name} is being imported right now; pause the import before deleting it.`);
      if (session.loaded?.id === id) {
        if (loading) throw new Error('A model is being loaded; cancel the load first.');
        session.unload();
      }
      const done = await locks.ifFree(modelWriteLock(id), () => store.deleteModel(id));
      if (done.held) throw new Error(`Another tab is importing or repairing ${manifest.name}; pause it there (or wait for it), then delete it.`);
    },
  };
}

function loadedInfo(loaded: LoadedModel, name: string): LoadedModelInfo {
  return {
    id: loaded.id,
    name,
    dims: loaded.dims,
    weightMode: loaded.weightMode,
    gpuBytes: loaded.gpuBytes,
  };
}
