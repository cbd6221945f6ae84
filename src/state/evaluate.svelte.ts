import { PAPER_ADAPTERS } from '../shared/paper-adapters';
import type { BigBenchDataset } from '../engine/eval/paper';
import type { ClassificationFormat } from '../engine/data/prompts';
import type { AdapterDownloadProgress } from '../worker/adapters-api';
import { Comlink, engine } from '../worker/client';
import type { VerdictChoice } from './evaluate-tables';
import { modelState } from './model.svelte';
import type {
  EvalItemResult,
  EvaluationOutcome,
  EvaluationPlan,
  EvaluationProgress,
  EvaluationRequest,
  EvaluationSetup,
  EvaluationTargets,
  HandScore,
  ResumableEvaluation,
  RunnerSettings,
  StoredRun,
  StoredRunSummary,
  SuiteChoice,
} from '../worker/eval-api';
import { isCancel, messageOf } from './errors';

export { comparisonTables, type ComparisonRow, type ComparisonTable, type Score, type VerdictChoice } from './evaluate-tables';

/**
 * The Evaluate page's state: what to run (the paper's 730 prompts, all or a stratified sample, or
 * suites drawn with a seed), on which models (the base model and loaded adapters, side by side), the
 * run in progress, runs to resume after a reload, and the saved runs with their comparison against the
 * paper's numbers and their hand reviews. The worker does the work; this instance outlives the page
 * component, so a run carries on while the user looks at other pages.
 */

export const IN_CONTEXT: readonly ClassificationFormat[] = ['instruction_label', 'instruction_symbol', 'no_instruction_symbol'];

/** The paper's adapters, with the names its tables use. */
export const ADAPTER_PRESETS = PAPER_ADAPTERS.map((a, k) => ({ ...a, name: k === 0 ? 'FLAN-Phi-2' : 'FLAN-Phi-2-Symbol', paperModel: k === 0 ? 'flan-phi-2' : 'flan-phi-2-symbol' }));

/** The instruction line BIG-bench prompts get when asked for one (editable; the paper's prompts have none). */
export const DEFAULT_BIG_BENCH_INSTRUCTION = 'Each input maps to its output by the same rule. Apply that rule to the last input.';

/** Saved runs as the worker lists them: a 'running' one nobody runs any more is `interrupted`. */
export type ListedRun = StoredRunSummary & { interrupted: boolean };

function dataUrl(): string {
  return new URL('data/', globalThis.location?.href ?? 'http://localhost/').href;
}

export type ItemFilter = 'all' | 'correct' | 'wrong' | 'unreviewed';

export class EvaluateState {
  setup = $state.raw<EvaluationSetup | null>(null);
  setupError = $state<string | null>(null);
  targets = $state.raw<EvaluationTargets | null>(null);

  /** What to run. */
  mode = $state<'paper' | 'custom'>('paper');
  /** Paper replication: all 730 prompts, or perGroup of each dataset and format (and BIG-bench task). */
  paperSample = $state<'all' | 'sample'>('all');
  perGroup = $state<number | null>(5);
  datasets = $state<string[]>(['teh', 'teo', 'subj', 'climate']);
  formats = $state<ClassificationFormat[]>([...IN_CONTEXT]);
  count = $state<number | null>(25);
  bigbench = $state<BigBenchDataset[]>([]);
  /** Items per BIG-bench category; null: all of the paper's. */
  bigbenchCount = $state<number | null>(null);
  bigbenchVariant = $state<'paper' | 'resampled'>('paper');
  /** An instruction line before BIG-bench demonstrations (off: none, as the paper's prompts). */
  bigbenchInstructionOn = $state(false);
  bigbenchInstruction = $state(DEFAULT_BIG_BENCH_INSTRUCTION);
  savedDatasets = $state<string[]>([]);
  seed = $state<number | null>(0);
  /** Models to evaluate: null is the base model, strings are loaded adapters. */
  models = $state<Array<string | null>>([null]);

  /** How. */
  wrapper = $state<'paper' | 'none'>('paper');
  maxNewTokens = $state<number | null>(50);
  scoring = $state<'generation' | 'rank'>('generation');
  rankCandidates = $state(false);
  stopWhenAnswered = $state(true);

  plan = $state.raw<EvaluationPlan | null>(null);
  planError = $state<string | null>(null);
  planning = $state(false);

  /** The run under way, if any. */
  /**
   * The run under way, if any; `startedAt` and `phaseAt` (performance.now()) when it began and when its current phase
   * (preparing, loading, running a model) began, so that the page counts every wait from its first second.
   */
  job = $state.raw<{ id: string; status: 'running' | 'cancelling'; progress: EvaluationProgress | null; startedAt: number; phaseAt: number } | null>(null);
  runError = $state<string | null>(null);
  outcome = $state.raw<EvaluationOutcome | null>(null);

  /** Requests cut short (a reload, a closed tab, a failure) that can go on. */
  resumable = $state.raw<ResumableEvaluation[]>([]);
  resumableError = $state<string | null>(null);

  /** Saved runs, and the ones compared (by id, in column order). */
  runs = $state.raw<ListedRun[]>([]);
  runsError = $state<string | null>(null);
  compared = $state<string[]>([]);
  showOtherPaperModels = $state(false);
  /** The verdict the comparison tables count. */
  verdict = $state<VerdictChoice>('answer');
  /** The run whose items are shown, and the item opened. */
  openRun = $state.raw<StoredRun | null>(null);
  openRunError = $state<string | null>(null);
  itemFilter = $state<ItemFilter>('all');
  itemPage = $state(0);
  openItem = $state.raw<EvalItemResult | null>(null);
  reviewError = $state<string | null>(null);
  lastExport = $state<{ url: string; fileName: string } | null>(null);
  exportError = $state<string | null>(null);
  importMessage = $state<string | null>(null);

  presetStatus = $state<Record<string, { state: 'loading' | 'loaded' | 'failed'; message: string }>>({});
  /** The preset being downloaded, if any (one download at a time). */
  presetLoading = $state<string | null>(null);

  private started = false;
  private planTimer: ReturnType<typeof setTimeout> | null = null;
  private planSeq = 0;
  private pollTimer: ReturnType<typeof setTimeout> | null = null;

  /**
   * Each visit: what can be run (saved datasets may have been added on the Data page) and what is
   * loaded (the Model and Adapters pages change it); the saved runs once, they change only here.
   */
  start(): void {
    if (!this.started) {
      this.started = true;
      void this.refreshRuns();
    }
    void this.refreshResumable();
    void this.loadSetup();
    void this.refreshTargets();
  }

  async loadSetup(): Promise<void> {
    try {
      this.setup = await engine().evaluationSetup(dataUrl());
      this.setupError = null;
      this.schedulePlan();
    } catch (err) {
      this.setupError = `The evaluation data could not be loaded: ${messageOf(err)}`;
    }
  }

  async refreshTargets(): Promise<void> {
    try {
      const targets = await engine().evaluationTargets();
      this.targets = targets;
      // Adapters that went away are no longer chosen; the base model stays chosen when nothing else is.
      const kept = this.models.filter((m) => m === null || targets.adapters.includes(m));
      this.models = kept.length ? kept : [null];
      this.schedulePlan();
    } catch (err) {
      this.targets = null;
      this.runError = messageOf(err);
    }
  }

  get paperModels(): string[] {
    const all = this.setup?.paper.models ?? [];
    return this.showOtherPaperModels ? all : all.filter((m) => m.includes('phi'));
  }

  /** The request the current choices make, or the reason there is none. */
  get request(): { request: EvaluationRequest | null; problem: string | null } {
    const problem = (text: string) => ({ request: null, problem: text });
    const seed = this.seed;
    if (seed === null || !Number.isSafeInteger(seed) || seed < 0) return problem('The seed must be a whole number of 0 or more.');
    // The paper replication always runs with the paper's generation settings (the worker enforces them too).
    const paper = this.mode === 'paper';
    const maxNew = paper ? 50 : this.maxNewTokens;
    if (maxNew === null || !Number.isInteger(maxNew) || maxNew < 0 || maxNew > 512) return problem('Max new tokens must be a whole number from 0 to 512.');
    if (this.scoring === 'generation' && maxNew === 0) return problem('Scoring the generation needs at least one new token.');
    if (this.models.length === 0) return problem('Choose at least one model to evaluate.');
    let suite: SuiteChoice;
    if (this.mode === 'paper') {
      const k = this.perGroup;
      if (this.paperSample === 'sample' && (k === null || !Number.isInteger(k) || k < 1 || k > 120)) return problem('Prompts per dataset and format must be a whole number from 1 to 120.');
      suite = { kind: 'paper', perGroup: this.paperSample === 'sample' ? k : null };
    } else {
      const count = this.count;
      if (count === null || !Number.isInteger(count) || count < 1 || count > 1000) return problem('Items per dataset and format must be a whole number from 1 to 1000.');
      const bb = this.bigbenchCount;
      if (bb !== null && (!Number.isInteger(bb) || bb < 1)) return problem('Items per BIG-bench category must be a whole number of 1 or more (or empty for all).');
      const classification = this.datasets.length > 0 && this.formats.length > 0;
      if (!classification && this.bigbench.length === 0 && this.savedDatasets.length === 0) {
        return problem('Choose at least one dataset and one format, a BIG-bench category or a saved dataset.');
      }
      suite = {
        kind: 'custom',
        datasets: classification ? [...this.datasets] : [],
        formats: classification ? [...this.formats] : [],
        count,
        bigbench: [...this.bigbench],
        bigbenchCount: bb,
        bigbenchVariant: this.bigbenchVariant,
        bigbenchInstruction: this.bigbenchInstructionOn ? this.bigbenchInstruction.trim() : '',
        savedDatasets: [...this.savedDatasets],
      };
      if (this.bigbenchInstructionOn && this.bigbench.length > 0 && this.bigbenchInstruction.trim() === '') return problem('Type the BIG-bench instruction line, or turn it off.');
    }
    const scoring = paper ? 'generation' : this.scoring;
    const settings: RunnerSettings = {
      wrapper: paper ? 'paper' : this.wrapper,
      decoding: 'greedy',
      maxNewTokens: maxNew,
      scoring,
      rankCandidates: scoring === 'rank' || this.rankCandidates,
      stopWhenAnswered: paper ? false : this.stopWhenAnswered,
      ...(this.targets?.model ? { precision: this.targets.model.weightMode } : {}),
      ...(suite.kind === 'custom' ? { count: suite.count } : {}),
    };
    return { request: { jobId: crypto.randomUUID(), dataUrl: dataUrl(), suite, seed, adapters: [...this.models], settings }, problem: null };
  }

  /** Re-plans shortly after the choices stop changing (planning tokenises every prompt in the worker). */
  schedulePlan(): void {
    if (this.planTimer) clearTimeout(this.planTimer);
    this.planTimer = setTimeout(() => void this.updatePlan(), 300);
  }

  async updatePlan(): Promise<void> {
    const { request, problem } = this.request;
    const seq = ++this.planSeq;
    if (!request || !this.setup) {
      this.plan = null;
      this.planError = problem;
      return;
    }
    this.planning = true;
    try {
      const plan = await engine().planEvaluation(request);
      if (seq !== this.planSeq) return;
      this.plan = plan;
      this.planError = null;
    } catch (err) {
      // A plan stopped by a run starting keeps the last plan shown: the run's progress takes over.
      if (seq !== this.planSeq || isCancel(err)) return;
      this.plan = null;
      this.planError = messageOf(err);
    } finally {
      if (seq === this.planSeq) this.planning = false;
    }
  }

  toggle<T>(list: 'datasets' | 'formats' | 'bigbench' | 'savedDatasets' | 'models', value: T, on: boolean): void {
    const current = this[list] as T[];
    const next = on ? (current.includes(value) ? current : [...current, value]) : current.filter((v) => v !== value);
    (this[list] as T[]) = next;
    this.schedulePlan();
  }

  async run(): Promise<void> {
    const { request, problem } = this.request;
    if (!request) {
      this.runError = problem;
      return;
    }
    await this.drive(request.jobId, (onProgress) => engine().runEvaluation(request, onProgress));
  }

  /** Goes on with a request that stopped part way, from its last saved batch. */
  async resume(groupId: string): Promise<void> {
    const jobId = crypto.randomUUID();
    await this.drive(jobId, (onProgress) => engine().resumeEvaluation(jobId, groupId, onProgress));
  }

  /** Gives up a resumable request; what finished stays saved (marked cancelled). */
  async discard(groupId: string): Promise<void> {
    try {
      await engine().discardEvaluation(groupId);
      await Promise.all([this.refreshResumable(), this.refreshRuns()]);
    } catch (err) {
      this.resumableError = messageOf(err);
    }
  }

  private async drive(jobId: string, start: (onProgress: (p: EvaluationProgress) => void) => Promise<EvaluationOutcome>): Promise<void> {
    if (this.job) return;
    this.runError = null;
    this.outcome = null;
    const startedAt = performance.now();
    this.job = { id: jobId, status: 'running', progress: null, startedAt, phaseAt: startedAt };
    try {
      const outcome = await start(
        Comlink.proxy((p: EvaluationProgress) => {
          if (this.job?.id !== p.jobId) return;
          const before = this.job.progress;
          const moved = !before || before.phase !== p.phase || before.model !== p.model;
          // Saving reports no speeds of its own: the last ones measured stay on screen rather than turning to "–".
          const shown =
            p.phase === 'saving' && before?.model === p.model
              ? { ...p, decodeTokensPerSecond: p.decodeTokensPerSecond ?? before.decodeTokensPerSecond, prefillTokensPerSecond: p.prefillTokensPerSecond ?? before.prefillTokensPerSecond, last: p.last ?? before.last }
              : p;
          this.job = { ...this.job, progress: shown, phaseAt: moved ? performance.now() : this.job.phaseAt };
        }),
      );
      this.outcome = outcome;
      if (outcome.status === 'failed') {
        const saved = outcome.runs.reduce((a, r) => a + r.itemCount, 0);
        this.runError = `The evaluation stopped: ${outcome.error ?? 'no reason was given'}. The ${saved} item${saved === 1 ? '' : 's'} that finished are saved; resume it below to go on from there.`;
      }
      await Promise.all([this.refreshRuns(), this.refreshResumable()]);
      if (outcome.runs.length) {
        this.compared = outcome.runs.map((r) => r.id);
        await this.open(outcome.runs[0].id);
      }
    } catch (err) {
      const e = err as { name?: string };
      this.runError = e?.name === 'AbortError' ? 'The evaluation was cancelled before any item ran.' : messageOf(err);
      void this.refreshResumable();
    } finally {
      this.job = null;
      void this.refreshTargets();
    }
  }

  async refreshResumable(): Promise<void> {
    try {
      this.resumable = await engine().resumableEvaluations();
      this.resumableError = null;
    } catch (err) {
      this.resumableError = `Evaluations to resume could not be read: ${messageOf(err)}`;
    }
  }

  async cancel(): Promise<void> {
    if (!this.job) return;
    this.job = { ...this.job, status: 'cancelling' };
    await engine().cancelEvaluation(this.job.id);
  }

  async refreshRuns(): Promise<void> {
    try {
      this.runs = await engine().listEvaluations();
      this.runsError = null;
      const ids = new Set(this.runs.map((r) => r.id));
      this.compared = this.compared.filter((id) => ids.has(id));
    } catch (err) {
      this.runsError = `Saved evaluations could not be read: ${messageOf(err)}`;
    }
    // A run that says it is running, but not here, is either alive in another tab or was cut short
    // by a reload moments ago: look again shortly, so an interrupted one is offered for resuming.
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = null;
    const elsewhere = this.runs.some((r) => r.status === 'running' && !r.interrupted && this.job === null);
    if (elsewhere) this.pollTimer = setTimeout(() => void Promise.all([this.refreshRuns(), this.refreshResumable()]), 5_000);
  }

  get comparedRuns(): ListedRun[] {
    return this.compared.map((id) => this.runs.find((r) => r.id === id)).filter((r): r is ListedRun => r !== undefined);
  }

  setCompared(id: string, on: boolean): void {
    this.compared = on ? (this.compared.includes(id) ? this.compared : [...this.compared, id]) : this.compared.filter((x) => x !== id);
  }

  async open(id: string): Promise<void> {
    try {
      this.openRun = await engine().getEvaluation(id);
      this.openRunError = null;
      this.itemPage = 0;
      this.openItem = null;
    } catch (err) {
      this.openRunError = messageOf(err);
    }
  }

  closeRun(): void {
    this.openRun = null;
    this.openItem = null;
  }

  get filteredItems(): EvalItemResult[] {
    const items = this.openRun?.items ?? [];
    if (this.itemFilter === 'all') return items;
    if (this.itemFilter === 'unreviewed') return items.filter((i) => i.review === undefined);
    return items.filter((i) => i.verdict.correct === (this.itemFilter === 'correct'));
  }

  /** Moves the opened item by `step` within the filtered list (for reviewing by keyboard). */
  stepItem(step: number): void {
    const items = this.filteredItems;
    if (!this.openItem || items.length === 0) return;
    const at = items.findIndex((i) => i.id === this.openItem!.id);
    const next = items[Math.min(items.length - 1, Math.max(0, (at < 0 ? 0 : at) + step))];
    this.openItem = next;
  }

  /**
   * Sets the opened item's hand review (1 right, 0.5 half, 0 wrong; null clears it), saved with the
   * run at once; the tables' hand-review numbers follow.
   */
  async review(score: HandScore | null): Promise<void> {
    const run = this.openRun;
    const item = this.openItem;
    if (!run || !item) return;
    try {
      const summary = await engine().reviewEvaluationItem(run.id, item.id, score);
      const updated: EvalItemResult = { ...item };
      if (score === null) delete updated.review;
      else updated.review = score;
      this.openRun = { ...run, ...summary, items: run.items.map((i) => (i.id === item.id ? updated : i)) };
      if (this.openItem?.id === item.id) this.openItem = updated;
      this.runs = this.runs.map((r) => (r.id === summary.id ? { ...r, ...summary } : r));
      this.reviewError = null;
    } catch (err) {
      this.reviewError = `The review was not saved: ${messageOf(err)}`;
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await engine().deleteEvaluation(id);
      if (this.openRun?.id === id) this.closeRun();
      this.compared = this.compared.filter((x) => x !== id);
      await this.refreshRuns();
    } catch (err) {
      this.runsError = `Deleting failed: ${messageOf(err)}`;
    }
  }

  async exportRuns(ids: string[], kind: 'csv' | 'json'): Promise<void> {
    this.exportError = null;
    try {
      // A plain copy: rune state arrays are proxies, which structured clone refuses.
      const { fileName, blob } = await engine().exportEvaluations([...ids], kind);
      if (this.lastExport) URL.revokeObjectURL(this.lastExport.url);
      this.lastExport = { url: URL.createObjectURL(blob), fileName };
    } catch (err) {
      this.exportError = messageOf(err);
    }
  }

  async importFile(file: File): Promise<void> {
    this.importMessage = null;
    try {
      const saved = await engine().importEvaluations(file);
      await this.refreshRuns();
      this.compared = saved.map((r) => r.id);
      this.importMessage = `Imported ${saved.length} run${saved.length === 1 ? '' : 's'} from ${file.name}.`;
    } catch (err) {
      this.importMessage = `${file.name} could not be imported: ${messageOf(err)}`;
    }
  }

  /**
   * Downloads one of the paper's adapters (kept in the store, so a second time is quick) through the
   * Adapters area, puts it on the GPU and chooses it for the next run. It comes from the Hub server set
   * on the Model page (huggingface.co unless changed there).
   */
  async loadPreset(repo: string): Promise<void> {
    if (this.presetLoading) return;
    this.presetLoading = repo;
    const set = (state: 'loading' | 'loaded' | 'failed', message: string) => (this.presetStatus = { ...this.presetStatus, [repo]: { state, message } });
    set('loading', `Downloading ${repo}…`);
    const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MB`;
    try {
      const info = await engine().loadAdapterFromHub(
        repo,
        Comlink.proxy((p: AdapterDownloadProgress) => set('loading', `${p.file}: ${mb(p.received)}${p.total ? ` of ${mb(p.total)}` : ''}${p.notice ? ` (${p.notice})` : ''}`)),
        modelState.hub.baseUrl.trim() || undefined,
      );
      set('loaded', `On the GPU as adapter “${info.id}”, and chosen for the next run.`);
      await this.refreshTargets();
      if (!this.models.includes(info.id)) this.models = [...this.models, info.id];
    } catch (err) {
      set('failed', messageOf(err));
    } finally {
      this.presetLoading = null;
    }
  }

  async cancelPreset(): Promise<void> {
    await engine().cancelAdapterDownload();
  }
}

export const evaluateState = new EvaluateState();
