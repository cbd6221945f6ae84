import { PAPER_ADAPTERS } from '../engine/adapters/hub';
import type { BigBenchDataset } from '../engine/eval/paper';
import type { ClassificationFormat } from '../engine/eval/prompts';
import type { AdapterDownloadProgress } from '../worker/adapters-api';
import { Comlink, engine } from '../worker/client';
import { modelState } from './model.svelte';
import type {
  EvalItemResult,
  EvaluationOutcome,
  EvaluationPlan,
  EvaluationProgress,
  EvaluationRequest,
  EvaluationSetup,
  EvaluationTargets,
  RunnerSettings,
  StoredRun,
  StoredRunSummary,
  SuiteChoice,
} from '../worker/eval-api';

/**
 * The Evaluate page's state: what to run (the paper's 730 prompts, or suites drawn with a seed), on
 * which models (the base model and loaded adapters, side by side), the run in progress, and the saved
 * runs with their comparison against the paper's numbers. The worker does the work; this instance
 * outlives the page component, so a run carries on while the user looks at other pages.
 */

export const IN_CONTEXT: readonly ClassificationFormat[] = ['instruction_label', 'instruction_symbol', 'no_instruction_symbol'];

/** The paper's adapters, with the names its tables use. */
export const ADAPTER_PRESETS = PAPER_ADAPTERS.map((a, k) => ({ ...a, name: k === 0 ? 'FLAN-Phi-2' : 'FLAN-Phi-2-Symbol', paperModel: k === 0 ? 'flan-phi-2' : 'flan-phi-2-symbol' }));

/** One cell of a comparison: correct of total, or null where that model has no number. */
export type Score = { correct: number; total: number } | null;

export interface ComparisonRow {
  suite: string;
  dataset: string;
  format: string;
  /** One per compared run, in the order of `columns`. */
  runs: Score[];
  /** The paper's hand-scored result per paper model (pooled over the same datasets for "all"). */
  paper: Record<string, Score>;
}

export interface ComparisonTable {
  /** "in_context/instruction_label", "flipped/flipped", "bigbench/3_shot", "user/<kind>". */
  key: string;
  suite: string;
  format: string;
  rows: ComparisonRow[];
}

type PaperCells = EvaluationSetup['paper']['cells'];

/**
 * Tables side by side: per (suite, format), one row per dataset and an "all" row, with a column per
 * compared run and per paper model. Built from the runs' stored accuracy cells (no items needed).
 */
export function comparisonTables(runs: readonly StoredRunSummary[], paperCells: PaperCells, paperModels: readonly string[]): ComparisonTable[] {
  const lookup = new Map<string, { correct: number; total: number }>();
  for (const c of paperCells) lookup.set(`${c.suite}/${c.dataset}/${c.format}/${c.model}`, { correct: c.correct, total: c.total });
  const tables = new Map<string, ComparisonTable>();
  const rowOf = (suite: string, dataset: string, format: string): ComparisonRow => {
    const key = `${suite}/${format}`;
    let table = tables.get(key);
    if (!table) tables.set(key, (table = { key, suite, format, rows: [] }));
    let row = table.rows.find((r) => r.dataset === dataset);
    if (!row) table.rows.push((row = { suite, dataset, format, runs: runs.map(() => null), paper: {} }));
    return row;
  };
  runs.forEach((run, k) => {
    for (const cell of run.cells) rowOf(cell.suite, cell.dataset, cell.format).runs[k] = { correct: cell.correct, total: cell.total };
  });
  for (const table of tables.values()) {
    // "all" last; the datasets in the order the paper lists them, then any others.
    const order = ['teh', 'teo', 'subj', 'climate', 'add_elements', 'input_independent', 'modify_the_list', 'remove_elements', 'miscellaneous', 'turing'];
    const rank = (d: string) => (d === 'all' ? 1e9 : order.includes(d) ? order.indexOf(d) : 1e6);
    table.rows.sort((a, b) => rank(a.dataset) - rank(b.dataset) || a.dataset.localeCompare(b.dataset));
    const datasets = table.rows.filter((r) => r.dataset !== 'all').map((r) => r.dataset);
    for (const row of table.rows) {
      for (const model of paperModels) {
        const parts = (row.dataset === 'all' ? datasets : [row.dataset]).map((d) => lookup.get(`${row.suite}/${d}/${row.format}/${model}`));
        // A pooled number only where the paper has every dataset of the row; a partial sum would mislead.
        let pooled: Score = parts.length > 0 ? { correct: 0, total: 0 } : null;
        for (const p of parts) pooled = p && pooled ? { correct: pooled.correct + p.correct, total: pooled.total + p.total } : null;
        row.paper[model] = pooled;
      }
    }
  }
  const suiteOrder = ['in_context', 'flipped', 'bigbench', 'user'];
  return [...tables.values()].sort(
    (a, b) => suiteOrder.indexOf(a.suite) - suiteOrder.indexOf(b.suite) || (IN_CONTEXT as readonly string[]).indexOf(a.format) - (IN_CONTEXT as readonly string[]).indexOf(b.format),
  );
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return typeof err === 'string' ? err : 'Something went wrong in the worker; the browser console has details.';
}

function dataUrl(): string {
  return new URL('data/', globalThis.location?.href ?? 'http://localhost/').href;
}

export type ItemFilter = 'all' | 'correct' | 'wrong';

export class EvaluateState {
  setup = $state.raw<EvaluationSetup | null>(null);
  setupError = $state<string | null>(null);
  targets = $state.raw<EvaluationTargets | null>(null);

  /** What to run. */
  mode = $state<'paper' | 'custom'>('paper');
  datasets = $state<string[]>(['teh', 'teo', 'subj', 'climate']);
  formats = $state<ClassificationFormat[]>([...IN_CONTEXT]);
  count = $state<number | null>(25);
  bigbench = $state<BigBenchDataset[]>([]);
  /** Items per BIG-bench category; null: all of the paper's. */
  bigbenchCount = $state<number | null>(null);
  bigbenchVariant = $state<'paper' | 'resampled'>('paper');
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
  job = $state.raw<{ id: string; status: 'running' | 'cancelling'; progress: EvaluationProgress | null } | null>(null);
  runError = $state<string | null>(null);
  outcome = $state.raw<EvaluationOutcome | null>(null);

  /** Saved runs, and the ones compared (by id, in column order). */
  runs = $state.raw<StoredRunSummary[]>([]);
  runsError = $state<string | null>(null);
  compared = $state<string[]>([]);
  showOtherPaperModels = $state(false);
  /** The run whose items are shown, and the item opened. */
  openRun = $state.raw<StoredRun | null>(null);
  openRunError = $state<string | null>(null);
  itemFilter = $state<ItemFilter>('all');
  itemPage = $state(0);
  openItem = $state.raw<EvalItemResult | null>(null);
  lastExport = $state<{ url: string; fileName: string } | null>(null);
  exportError = $state<string | null>(null);
  importMessage = $state<string | null>(null);

  presetStatus = $state<Record<string, { state: 'loading' | 'loaded' | 'failed'; message: string }>>({});
  /** The preset being downloaded, if any (one download at a time). */
  presetLoading = $state<string | null>(null);

  private started = false;
  private planTimer: ReturnType<typeof setTimeout> | null = null;
  private planSeq = 0;

  /**
   * Each visit: what can be run (saved datasets may have been added on the Data page) and what is
   * loaded (the Model and Adapters pages change it); the saved runs once, they change only here.
   */
  start(): void {
    if (!this.started) {
      this.started = true;
      void this.refreshRuns();
    }
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
    const maxNew = this.maxNewTokens;
    if (maxNew === null || !Number.isInteger(maxNew) || maxNew < 0 || maxNew > 512) return problem('Max new tokens must be a whole number from 0 to 512.');
    if (this.scoring === 'generation' && maxNew === 0) return problem('Scoring the generation needs at least one new token.');
    if (this.models.length === 0) return problem('Choose at least one model to evaluate.');
    let suite: SuiteChoice;
    if (this.mode === 'paper') {
      suite = { kind: 'paper' };
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
        savedDatasets: [...this.savedDatasets],
      };
    }
    const settings: RunnerSettings = {
      wrapper: this.wrapper,
      decoding: 'greedy',
      maxNewTokens: maxNew,
      scoring: this.scoring,
      rankCandidates: this.scoring === 'rank' || this.rankCandidates,
      stopWhenAnswered: this.stopWhenAnswered,
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
      if (seq !== this.planSeq) return;
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
    if (this.job) return;
    this.runError = null;
    this.outcome = null;
    this.job = { id: request.jobId, status: 'running', progress: null };
    try {
      const outcome = await engine().runEvaluation(
        request,
        Comlink.proxy((p: EvaluationProgress) => {
          if (this.job?.id === p.jobId) this.job = { ...this.job, progress: p };
        }),
      );
      this.outcome = outcome;
      if (outcome.status === 'failed') this.runError = `The evaluation stopped: ${outcome.error}. What finished before is saved.`;
      await this.refreshRuns();
      if (outcome.runs.length) {
        this.compared = outcome.runs.map((r) => r.id);
        await this.open(outcome.runs[0].id);
      }
    } catch (err) {
      const e = err as { name?: string };
      this.runError = e?.name === 'AbortError' ? 'The evaluation was cancelled before any item ran.' : messageOf(err);
    } finally {
      this.job = null;
      void this.refreshTargets();
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
  }

  get comparedRuns(): StoredRunSummary[] {
    return this.compared.map((id) => this.runs.find((r) => r.id === id)).filter((r): r is StoredRunSummary => r !== undefined);
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
    return items.filter((i) => i.verdict.correct === (this.itemFilter === 'correct'));
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
