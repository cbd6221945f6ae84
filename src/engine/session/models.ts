import type { Engine } from '../engine';
import { localLocks, type Locks } from '../platform/locks';
import { StoreError, type ModelManifest, type ModelSource, type StorageUsage } from '../store';
import { weightBytes } from '../../shared/train-memory';
import { FilesSource, HubError, HubSource, QUANT_SCHEMES, defaultModelId, importModel, modelWriteLock, parsePhiConfig, type CheckpointSource, type ImportProgress, type LoadProgress, type QuantScheme } from '../weights';
import type { HubSettings } from '../../shared/hub';
import { PHI2_CONFIG_JSON } from '../../shared/presets';
import { modelDims, type ModelDims } from '../weights/config';
import { estimatesFor, total, type ModelEstimate } from './model-estimates';
import { describeProblem, type ModelProblem } from './model-problems';
import type { LoadedModel, Session } from './session';

/**
 * The Model page's part of the engine: getting a model's weights into IndexedDB (from the Hub or from
 * local files, resumable), the list of stored models, verifying and deleting them, and putting one on
 * the GPU through the shared Session, which every other page then uses.
 *
 * Long tasks (download/import, load, verify) take a progress callback and resolve with an outcome:
 * finished, stopped by the user, or failed with a `ModelProblem`. Failures travel as data because the
 * page needs the code (a full disk says how much is needed; a 404 is not a dropped connection) and a
 * worker boundary keeps an Error's message only. Short calls throw. One import runs at a time;
 * pauseImport() stops it and what was stored stays for a later resume. Imports go through importModel
 * with the Hub or files source built here, so that the id of the model being written is known while
 * it runs (deleting it meanwhile is refused).
 */

export type { HubSettings, ImportProgress, LoadProgress, ModelDims, ModelEstimate, ModelProblem, ModelSource, QuantScheme, StorageUsage };

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

export interface HubInspection {
  ok: boolean;
  /** With ok: the model's shape and sizes per mode. */
  dims?: ModelDims;
  estimates?: Record<QuantScheme, ModelEstimate>;
  problem?: ModelProblem;
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
  dims: ModelDims;
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

/** Progress is reported at most this often (the last report always goes): it crosses the worker boundary. */
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

function checkScheme(scheme: QuantScheme): void {
  if (!QUANT_SCHEMES.includes(scheme)) throw new RangeError(`Unknown weight mode "${String(scheme)}": use ${QUANT_SCHEMES.join(' or ')}.`);
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


export class ModelLibrary {
  private importing: ImportJob | null = null;
  private loading: AbortController | null = null;
  private verifying: AbortController | null = null;
  private readonly locks: Locks;

  constructor(
    private readonly engine: Pick<Engine, 'platform'>,
    private readonly session: Session,
  ) {
    this.locks = engine.platform.locks ?? localLocks;
  }

  /** Marks records for repair unless another tab holds the model's write lock; whether it did. */
  private async markForRepair(id: string, damaged: Array<{ key: string; index: number }>): Promise<boolean> {
    const store = await this.session.store();
    const done = await this.locks.ifFree(modelWriteLock(id), () => store.markForRepair(id, damaged));
    return !done.held;
  }

  private async describeModel(manifest: ModelManifest): Promise<StoredModelInfo> {
    const store = await this.session.store();
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
      dims = modelDims(config);
      gpuWeightBytes = total(weightBytes(dims, manifest.scheme));
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

  private async findModel(id: string | null): Promise<StoredModelInfo | null> {
    if (id === null) return null;
    try {
      const manifest = await (await this.session.store()).getModel(id);
      return manifest ? await this.describeModel(manifest) : null;
    } catch {
      return null;
    }
  }

  /**
   * Runs one import. `open` builds the source (which validates the settings or the files) inside the
   * try, so that bad input becomes a failed outcome like any other.
   */
  private async runImport(
    label: string,
    onProgress: ((p: ModelImportProgress) => void) | undefined,
    open: () => CheckpointSource,
    scheme: QuantScheme,
  ): Promise<ImportOutcome> {
    if (this.importing) {
      throw new Error(`${this.importing.label} is still running; pause it before starting another.`);
    }
    const job: ImportJob = { controller: new AbortController(), label, modelId: null };
    this.importing = job;
    const progress = throttle(() => this.engine.platform.now(), onProgress);
    try {
      const store = await this.session.store();
      const source = open();
      const modelId = defaultModelId(source.description, source.displayName, scheme);
      job.modelId = modelId;
      const manifest = await importModel({
        source,
        store,
        scheme,
        modelId,
        locks: this.engine.platform.locks,
        now: () => this.engine.platform.now(),
        signal: job.controller.signal,
        onProgress: (p) => {
          progress.push({ ...p, modelId });
          // Notices (a resume, a retry) and the end are rare and worth seeing: never left behind by the throttle.
          if (p.notice || p.phase === 'complete') progress.flush();
        },
      });
      progress.flush();
      return { status: 'complete', model: await this.describeModel(manifest) };
    } catch (err) {
      progress.flush();
      const model = await this.findModel(job.modelId);
      if (job.controller.signal.aborted) return { status: 'paused', model };
      return { status: 'failed', problem: describeProblem(err, 'The import failed'), model };
    } finally {
      this.importing = null;
    }
  }

  /** Every stored model, complete or not, most recently created first. */
  async list(): Promise<StoredModelInfo[]> {
    const store = await this.session.store();
    const manifests = await store.listModels();
    // Newest first by creation, so that rows keep their place while a download updates one.
    manifests.sort((a, b) => b.createdAt - a.createdAt);
    return Promise.all(manifests.map((m) => this.describeModel(m)));
  }

  /** Bytes this origin uses and may use, and whether the browser promised to keep them. */
  async usage(): Promise<StorageUsage> {
    return (await this.session.store()).usage();
  }

  /**
   * Asks for persistent storage where a worker may (StorageManager.persist is exposed to windows only in
   * Chromium, so the page asks first) and returns the usage with the resulting state.
   */
  async requestPersistence(): Promise<StorageUsage> {
    const store = await this.session.store();
    await store.requestPersistence();
    return store.usage();
  }

  /** Sizes on disk and on the GPU for each weight mode, from a config.json (Phi-2's by default). */
  async estimates(config?: Record<string, unknown>): Promise<Record<QuantScheme, ModelEstimate>> {
    return estimatesFor(parsePhiConfig(config ?? PHI2_CONFIG_JSON));
  }

  /** Reads config.json of a Hub repository: checks it exists, is public and is a Phi model, and sizes it. */
  async inspectHub(settings: HubSettings): Promise<HubInspection> {
    try {
      const source = new HubSource(this.engine.platform, settings);
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
      return { ok: true, dims: modelDims(config), estimates: estimatesFor(config) };
    } catch (err) {
      return { ok: false, problem: describeProblem(err, 'The repository could not be checked', 'check') };
    }
  }

  /** Downloads a model from the Hub (or resumes it: the same repository, revision and mode continue where they stopped). */
  async download(settings: HubSettings, scheme: QuantScheme, onProgress?: (p: ModelImportProgress) => void): Promise<ImportOutcome> {
    checkScheme(scheme);
    return this.runImport(`The download of ${settings.repo}`, onProgress, () => new HubSource(this.engine.platform, settings), scheme);
  }

  /**
   * Imports local files: config.json, model.safetensors or model.safetensors.index.json with its shards,
   * and the tokenizer files. `displayName` (the folder's name) names the model; importing the same files
   * again into the same name and mode resumes.
   */
  async importFiles(files: File[], scheme: QuantScheme, onProgress?: (p: ModelImportProgress) => void, displayName?: string): Promise<ImportOutcome> {
    checkScheme(scheme);
    if (!Array.isArray(files) || files.length === 0) {
      throw new Error('No files were chosen: choose the model folder or its files.');
    }
    return this.runImport(`The import of ${displayName ?? 'local files'}`, onProgress, () => new FilesSource(files, displayName), scheme);
  }

  /** Stops the running download or import; it resolves with status 'paused'. */
  pauseImport(): void {
    this.importing?.controller.abort();
  }

  /** Puts a stored model on the GPU (unloading the one there); loading the loaded model again is immediate. */
  async load(id: string, onProgress?: (p: LoadProgress) => void): Promise<LoadOutcome> {
    if (this.loading) {
      throw new Error('A model is already being loaded onto the GPU; wait for it or cancel it.');
    }
    const controller = new AbortController();
    this.loading = controller;
    const progress = throttle(() => this.engine.platform.now(), onProgress);
    try {
      const manifest = await (await this.session.store()).getModel(id);
      const loaded = await this.session.load(id, (p) => {
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
        const marked = await this.markForRepair(id, [err.record]).catch(() => false);
        if (marked) return { status: 'failed', problem: { ...problem, advice: REPAIR_ADVICE } };
      }
      return { status: 'failed', problem };
    } finally {
      this.loading = null;
    }
  }

  /** Stops a load in progress; what it had put on the GPU is freed. */
  cancelLoad(): void {
    this.loading?.abort();
  }

  /** Frees the model's GPU memory (and the adapters loaded beside it). */
  unload(): void {
    if (this.loading) throw new Error('A model is being loaded; cancel the load first.');
    this.session.unload();
  }

  async loaded(): Promise<LoadedModelInfo | null> {
    const loaded = this.session.loaded;
    if (!loaded) return null;
    const manifest = await (await this.session.store()).getModel(loaded.id).catch(() => undefined);
    return loadedInfo(loaded, manifest?.name ?? loaded.id);
  }

  /** Re-reads every stored record and checks its checksums; what fails is marked to be fetched again by a resume. */
  async verify(id: string, onProgress?: (done: number, total: number) => void): Promise<VerifyOutcome> {
    if (this.verifying) {
      throw new Error('Another model is being verified; wait for it or cancel it.');
    }
    const controller = new AbortController();
    this.verifying = controller;
    const progress = throttle<[number, number]>(() => this.engine.platform.now(), onProgress && (([done, all]) => onProgress(done, all)));
    try {
      const store = await this.session.store();
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
      const marked = await this.markForRepair(id, damaged);
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
      this.verifying = null;
    }
  }

  cancelVerify(): void {
    this.verifying?.abort();
  }

  /** Deletes a stored model (unloading it first if it is on the GPU). Refused while it is being imported. */
  async delete(id: string): Promise<void> {
    const store = await this.session.store();
    const manifest = await store.getModel(id);
    if (!manifest) return;
    if (this.importing?.modelId === id) throw new Error(`${manifest.name} is being imported right now; pause the import before deleting it.`);
    if (this.session.loaded?.id === id) {
      if (this.loading) throw new Error('A model is being loaded; cancel the load first.');
      this.session.unload();
    }
    const done = await this.locks.ifFree(modelWriteLock(id), () => store.deleteModel(id));
    if (done.held) throw new Error(`Another tab is importing or repairing ${manifest.name}; pause it there (or wait for it), then delete it.`);
  }
}

function loadedInfo(loaded: LoadedModel, name: string): LoadedModelInfo {
  return { id: loaded.id, name, dims: loaded.dims, weightMode: loaded.weightMode, gpuBytes: loaded.gpuBytes };
}
