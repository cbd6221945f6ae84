import { DEFAULT_HUB_SETTINGS, type HubSettings } from '../shared/hub';
import type { RetryStatus } from '../engine/weights/retry';
import { PHI_PRESETS, presetOf, type PhiPresetId } from '../shared/presets';
import { Comlink, engine } from '../worker/client';
import type {
  HubInspection,
  ImportOutcome,
  LoadedModelInfo,
  LoadProgress,
  ModelEstimate,
  ModelImportProgress,
  ModelProblem,
  QuantScheme,
  StorageUsage,
  StoredModelInfo,
} from '../worker/model-api';
import { messageOf } from './errors';
import { selectModelFiles, type FileSelection, type PickedFile } from './model/files';
import { sameHubSettings, saveHubSettings, storedHubSettings, trimmed } from './model/hub-settings';

/**
 * The Model page's state: the weight mode and Hub settings chosen, the one download or import that may
 * run, the stored models and the browser's storage, and the model on the GPU. Filled from the worker,
 * which does the work; the module-level instance outlives the page component, so a download carries on
 * while the user looks at other pages.
 */

export type TaskStatus = 'running' | 'pausing' | 'paused' | 'complete' | 'failed';

export interface ImportTask {
  kind: 'hub' | 'files';
  /** "microsoft/phi-2" or the folder's name. */
  label: string;
  scheme: QuantScheme;
  status: TaskStatus;
  /** The stored model it writes to, once the worker has said. */
  modelId: string | null;
  progress: ModelImportProgress | null;
  /** Resumes and restarts the importer reported, oldest first (retries are counted instead). */
  notices: string[];
  /** The wait before another try while there is one; cleared when the next report says work goes on. */
  retry: RetryStatus | null;
  /** Tries that failed and were tried again, and the last failure (one line on the page, not one per try). */
  retries: number;
  lastRetryReason: string | null;
  problem: ModelProblem | null;
  model: StoredModelInfo | null;
}

export interface LoadTask {
  id: string;
  name: string;
  status: 'loading' | 'cancelling' | 'failed';
  progress: LoadProgress | null;
  problem: ModelProblem | null;
}

export interface VerifyTask {
  status: 'running' | 'cancelling' | 'ok' | 'damaged' | 'failed' | 'cancelled';
  done: number;
  total: number;
  problem: ModelProblem | null;
}

function failure(err: unknown): ModelProblem {
  return { code: 'failed', title: 'Something went wrong', message: messageOf(err) };
}

export class ModelState {
  /** The weight mode for downloads and imports. */
  scheme = $state<QuantScheme>('int8');
  hub = $state<HubSettings>(storedHubSettings());
  /** Sizes per weight mode: Phi-2's, or the checked repository's. */
  estimates = $state.raw<Record<QuantScheme, ModelEstimate> | null>(null);
  /** The last "Check repository" result and the settings it was for. */
  inspection = $state<{ settings: HubSettings; status: 'checking' | 'done'; result: HubInspection | null } | null>(null);

  task = $state<ImportTask | null>(null);
  /** Files chosen for a local import, before it starts. Raw: File arrays must reach postMessage unproxied. */
  selection = $state.raw<FileSelection | null>(null);

  models = $state.raw<StoredModelInfo[]>([]);
  listStatus = $state<'loading' | 'ready' | 'error'>('loading');
  listError = $state<string | null>(null);
  usage = $state.raw<StorageUsage | null>(null);
  persistence = $state<'idle' | 'asking' | 'granted' | 'refused'>('idle');

  loaded = $state.raw<LoadedModelInfo | null>(null);
  load = $state<LoadTask | null>(null);
  verifications = $state<Record<string, VerifyTask>>({});
  /** The model whose delete button asks for confirmation. */
  confirmingDelete = $state<string | null>(null);
  /** The failure of a short action (delete, unload), with the model it concerns. */
  actionError = $state<{ id: string | null; message: string } | null>(null);

  /** Sizes of each preset, from its known config.json. */
  private presetEstimates: Partial<Record<PhiPresetId, Record<QuantScheme, ModelEstimate>>> = {};
  private started = false;
  /** The download or import that runs, until it ends. */
  private running: Promise<void> | null = null;

  /** The preset's sizes (Phi-2's for other repositories) unless a checked repository told its own. */
  readonly estimate = $derived(this.estimates?.[this.scheme] ?? null);
  /** The repository check, while it is for the settings in the form. */
  readonly formInspection = $derived(this.inspection && sameHubSettings(this.inspection.settings, this.hub) ? this.inspection : null);
  /** The Phi model the form names (repository and revision of a preset), or null. */
  readonly preset = $derived(presetOf(this.hub.repo, this.hub.revision));
  readonly estimateIsForRepo = $derived(this.formInspection?.result?.ok === true && this.preset === null);
  /** Whose sizes are shown. */
  readonly estimateSubject = $derived(this.estimateIsForRepo ? this.hub.repo.trim() : (this.preset?.label ?? 'Phi-2'));
  readonly isDefaultHub = $derived(sameHubSettings(this.hub, DEFAULT_HUB_SETTINGS));
  readonly busy = $derived(this.task?.status === 'running' || this.task?.status === 'pausing');

  /** The stored model the Hub form would write to (same repository, revision, server and mode). */
  readonly hubModel = $derived(
    this.models.find(
      (m) =>
        m.source.kind === 'hub' &&
        m.scheme === this.scheme &&
        sameHubSettings({ repo: m.source.repo, revision: m.source.revision, baseUrl: m.source.baseUrl }, this.hub),
    ) ?? null,
  );

  /** Free bytes the browser reports for this origin, or null when it does not say. */
  readonly freeBytes = $derived(this.usage?.usage != null && this.usage.quota != null ? Math.max(0, this.usage.quota - this.usage.usage) : null);

  /** First visit of the page: estimates, stored models, storage, what is on the GPU. */
  start(): void {
    if (this.started) return;
    this.started = true;
    void this.loadEstimates();
    void this.refresh();
  }

  async loadEstimates(): Promise<void> {
    try {
      const api = engine();
      for (const p of PHI_PRESETS) this.presetEstimates[p.id] = await api.estimates(p.config);
      this.pickEstimates();
    } catch (err) {
      console.warn('size estimates unavailable:', err);
    }
  }

  /** The checked repository's sizes, else the preset's, else Phi-2's. */
  private pickEstimates(): void {
    const checked = this.estimateIsForRepo ? this.formInspection?.result?.estimates : undefined;
    this.estimates = checked ?? this.presetEstimates[this.preset?.id ?? 'phi-2'] ?? null;
  }

  /** Re-reads the stored models, the storage usage and the loaded model. */
  async refresh(): Promise<void> {
    const api = engine();
    try {
      const [models, usage, loaded] = await Promise.all([api.listModels(), api.storageUsage(), api.loadedModel()]);
      this.models = models;
      this.usage = usage;
      this.loaded = loaded;
      if (usage.persisted) this.persistence = 'granted';
      this.listStatus = 'ready';
      this.listError = null;
    } catch (err) {
      this.listStatus = 'error';
      this.listError = messageOf(err);
    }
  }

  async refreshLoaded(): Promise<void> {
    try {
      this.loaded = await engine().loadedModel();
    } catch {
      this.loaded = null;
    }
  }

  // ---- Hub settings

  editHub(patch: Partial<HubSettings>): void {
    this.hub = { ...this.hub, ...patch };
    this.pickEstimates();
    saveHubSettings(this.hub);
  }

  resetHub(): void {
    this.inspection = null;
    this.editHub({ ...DEFAULT_HUB_SETTINGS });
  }

  /** Phi-2, Phi-1.5 or Phi-1: its repository and revision in the form (the server stays). */
  choosePreset(id: PhiPresetId): void {
    const p = PHI_PRESETS.find((x) => x.id === id);
    if (!p) return;
    this.inspection = null;
    this.editHub({ repo: p.repo, revision: p.revision });
  }

  /** Reads the repository's config.json: catches a wrong name or a gated repository before a download, and sizes it. */
  async inspectHub(): Promise<void> {
    const settings = trimmed(this.hub);
    this.inspection = { settings, status: 'checking', result: null };
    let result: HubInspection;
    try {
      result = await engine().inspectHub(settings);
    } catch (err) {
      result = { ok: false, problem: failure(err) };
    }
    if (!this.inspection || !sameHubSettings(this.inspection.settings, settings)) return; // edited meanwhile
    this.inspection = { settings, status: 'done', result };
    this.pickEstimates();
  }

  // ---- download and import

  /** Starts (or resumes) a download with the form's settings and mode. */
  download(): Promise<void> {
    return this.downloadWith(trimmed(this.hub), this.scheme);
  }

  /** Resumes an incomplete model from the Hub with the settings it was started with. */
  resume(model: StoredModelInfo): Promise<void> {
    if (model.source.kind !== 'hub') return Promise.resolve();
    const { repo, revision, baseUrl } = model.source;
    return this.downloadWith({ repo, revision, baseUrl }, model.scheme);
  }

  private async downloadWith(settings: HubSettings, scheme: QuantScheme): Promise<void> {
    if (this.busy) return;
    await this.run({ kind: 'hub', label: settings.repo, scheme }, (report) => engine().downloadFromHub(settings, scheme, report));
  }

  pickFiles(picked: PickedFile[]): void {
    this.selection = selectModelFiles(picked);
  }

  clearSelection(): void {
    this.selection = null;
  }

  async importSelection(): Promise<void> {
    const selection = this.selection;
    if (!selection || selection.problem || this.busy) return;
    const scheme = this.scheme;
    const label = selection.folder ?? 'local files';
    await this.run({ kind: 'files', label, scheme }, (report) => engine().importFiles(selection.files, scheme, report, selection.folder ?? undefined));
    if (this.task?.status === 'complete') this.selection = null;
  }

  private run(what: Pick<ImportTask, 'kind' | 'label' | 'scheme'>, start: (report: (p: ModelImportProgress) => void) => Promise<ImportOutcome>): Promise<void> {
    const running = this.runTask(what, start);
    this.running = running;
    return running;
  }

  private async runTask(
    what: Pick<ImportTask, 'kind' | 'label' | 'scheme'>,
    start: (report: (p: ModelImportProgress) => void) => Promise<ImportOutcome>,
  ): Promise<void> {
    this.task = { ...what, status: 'running', modelId: null, progress: null, notices: [], retry: null, retries: 0, lastRetryReason: null, problem: null, model: null };
    // The reactive proxy of the task: writes through it update the page.
    const current = this.task;
    let listed = false;
    const report = Comlink.proxy((p: ModelImportProgress) => {
      if (this.task !== current) return;
      // The model's row (incomplete) exists from the moment weights arrive.
      if (p.phase === 'weights' && !listed) {
        listed = true;
        void this.refresh();
      }
      current.progress = p;
      current.modelId = p.modelId;
      if (p.retry) {
        current.retry = p.retry;
        current.retries++;
        current.lastRetryReason = p.retry.reason;
      } else {
        current.retry = null;
        if (p.notice) current.notices = [...current.notices.slice(-4), p.notice];
      }
    });
    let outcome: ImportOutcome;
    try {
      outcome = await start(report);
    } catch (err) {
      outcome = { status: 'failed', problem: failure(err), model: null };
    }
    current.model = outcome.model;
    current.retry = null;
    if (outcome.status === 'complete') current.status = 'complete';
    else if (outcome.status === 'paused') current.status = 'paused';
    else {
      current.status = 'failed';
      current.problem = outcome.problem;
    }
    await this.refresh();
  }

  async pause(): Promise<void> {
    if (this.task?.status !== 'running') return;
    this.task.status = 'pausing';
    await engine().pauseImport();
  }

  /** Pauses the running download or import and waits until it has stopped (everything stored is kept). */
  async stop(): Promise<void> {
    if (!this.busy) return;
    await this.pause();
    await this.running;
  }

  dismissTask(): void {
    if (!this.busy) this.task = null;
  }

  // ---- storage

  /**
   * Asks the browser to keep this site's data under storage pressure. StorageManager.persist() is
   * exposed to windows only, so the page asks; the worker then reports the resulting state.
   */
  async requestPersistence(): Promise<void> {
    this.persistence = 'asking';
    let granted = false;
    try {
      granted = (await globalThis.navigator?.storage?.persist?.()) ?? false;
    } catch {
      granted = false;
    }
    try {
      this.usage = await engine().requestPersistence();
      granted ||= this.usage.persisted;
    } catch {
      // the answer above stands
    }
    this.persistence = granted ? 'granted' : 'refused';
  }

  // ---- the GPU

  async loadModel(model: StoredModelInfo): Promise<void> {
    if (this.load?.status === 'loading' || this.load?.status === 'cancelling') return;
    this.actionError = null;
    this.load = { id: model.id, name: model.name, status: 'loading', progress: null, problem: null };
    const current = this.load;
    const report = Comlink.proxy((p: LoadProgress) => {
      if (this.load === current && current.status !== 'failed') current.progress = p;
    });
    try {
      const outcome = await engine().loadModel(model.id, report);
      if (outcome.status === 'loaded') {
        this.loaded = outcome.model;
        this.load = null;
      } else if (outcome.status === 'cancelled') {
        this.load = null;
        await this.refreshLoaded();
      } else {
        current.status = 'failed';
        current.problem = outcome.problem;
        await this.refreshLoaded();
      }
    } catch (err) {
      current.status = 'failed';
      current.problem = failure(err);
    }
  }

  async cancelLoad(): Promise<void> {
    if (this.load?.status !== 'loading') return;
    this.load.status = 'cancelling';
    await engine().cancelLoad();
  }

  dismissLoadProblem(): void {
    if (this.load?.status === 'failed') this.load = null;
  }

  async unload(): Promise<void> {
    this.actionError = null;
    try {
      await engine().unloadModel();
    } catch (err) {
      this.actionError = { id: this.loaded?.id ?? null, message: messageOf(err) };
    }
    await this.refreshLoaded();
  }

  // ---- verify and delete

  async verify(model: StoredModelInfo): Promise<void> {
    if (Object.values(this.verifications).some((v) => v.status === 'running' || v.status === 'cancelling')) return;
    this.verifications[model.id] = { status: 'running', done: 0, total: model.bytesTotal, problem: null };
    const current = this.verifications[model.id];
    const report = Comlink.proxy((done: number, total: number) => {
      if (current.status === 'running') {
        current.done = done;
        current.total = total;
      }
    });
    try {
      const outcome = await engine().verifyModel(model.id, report);
      if (outcome.status === 'ok') {
        current.status = 'ok';
        current.done = current.total = outcome.bytesChecked;
      } else if (outcome.status === 'cancelled') {
        current.status = 'cancelled';
      } else {
        current.status = outcome.status;
        current.problem = outcome.problem;
      }
    } catch (err) {
      current.status = 'failed';
      current.problem = failure(err);
    }
  }

  async cancelVerify(): Promise<void> {
    for (const v of Object.values(this.verifications)) if (v.status === 'running') v.status = 'cancelling';
    await engine().cancelVerify();
  }

  askDelete(id: string | null): void {
    this.confirmingDelete = id;
    this.actionError = null;
  }

  async deleteModel(id: string): Promise<void> {
    this.confirmingDelete = null;
    this.actionError = null;
    try {
      await engine().deleteModel(id);
      delete this.verifications[id];
      if (this.task?.model?.id === id && !this.busy) this.task = null;
    } catch (err) {
      this.actionError = { id, message: messageOf(err) };
    }
    await this.refresh();
  }
}

export const modelState = new ModelState();
