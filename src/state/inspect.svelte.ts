import type { LoraTarget } from '../shared/lora';
import { Comlink, engine } from '../worker/client';
import type { ContrastDirection, ContrastUpdate, InspectProgress, IntruderResult, UpdateCell } from '../worker/inspect-api';
import { isCancel, messageOf } from './errors';

/**
 * The Inspect view of the Adapters page: an adapter (and optionally a second to compare with), its
 * update spectra per module, intruder dimensions against the loaded model, and contrastive generation.
 * Each of the three runs in the worker with progress and can be cancelled; one at a time each.
 */

export interface JobView {
  jobId: string;
  done: number;
  total: number;
  cancelling: boolean;
}

/** What the update maps are coloured by (the cosine map is shown beside them when two adapters are compared). */
export type MapMetric = 'norm' | 'effectiveRank';

/** Defaults: the paper's k = 10, ε = 0.5 (one of the thresholds it plots). */
export const INTRUDER_DEFAULTS = { k: 10, threshold: 0.5, compareWith: 64, iterations: 8 };

export class InspectState {
  /** Open when the page's address ends in #adapters/inspect (so the view can be linked to). */
  open = $state(typeof location !== 'undefined' && /^#adapters\/inspect/.test(location.hash));

  adapter = $state<string | null>(null);
  compareWith = $state<string | null>(null);

  // ---- where the adapter acts
  cells = $state.raw<UpdateCell[]>([]);
  /** The adapters the cells describe (ids), so a change of selection does not relabel old numbers. */
  cellsFor = $state.raw<[string, string | null] | null>(null);
  spectraJob = $state<JobView | null>(null);
  spectraError = $state<string | null>(null);
  metric = $state<MapMetric>('norm');
  selected = $state<{ layer: number; target: LoraTarget } | null>(null);

  // ---- intruder dimensions
  k = $state<number | null>(INTRUDER_DEFAULTS.k);
  threshold = $state<number | null>(INTRUDER_DEFAULTS.threshold);
  compareVectors = $state<number | null>(INTRUDER_DEFAULTS.compareWith);
  iterations = $state<number | null>(INTRUDER_DEFAULTS.iterations);
  intruderTarget = $state<LoraTarget | 'all'>('all');
  intruders = $state.raw<IntruderResult[]>([]);
  intrudersThreshold = $state(INTRUDER_DEFAULTS.threshold);
  intruderJob = $state<JobView | null>(null);
  intruderError = $state<string | null>(null);

  // ---- contrastive generation
  prompt = $state('Instruct: ');
  wrapper = $state<'paper' | 'none'>('none');
  direction = $state<ContrastDirection>('adapter-over-base');
  samples = $state<number | null>(3);
  maxNewTokens = $state<number | null>(40);
  plausibility = $state<number | null>(0.1);
  temperature = $state<number | null>(1);
  seed = $state<number | null>(0);
  contrast = $state.raw<ContrastUpdate | null>(null);
  contrastJob = $state<string | null>(null);
  contrastCancelling = $state(false);
  contrastError = $state<string | null>(null);

  show(open: boolean): void {
    this.open = open;
    const hash = open ? '#adapters/inspect' : '#adapters';
    if (typeof location !== 'undefined' && location.hash !== hash) history.replaceState(history.state, '', hash);
  }

  selectedCell = $derived(this.selected ? (this.cells.find((c) => c.layer === this.selected!.layer && c.target === this.selected!.target) ?? null) : null);

  async computeSpectra(): Promise<void> {
    if (!this.adapter || this.spectraJob) return;
    const jobId = crypto.randomUUID();
    const pair: [string, string | null] = [this.adapter, this.compareWith && this.compareWith !== this.adapter ? this.compareWith : null];
    this.spectraJob = { jobId, done: 0, total: 0, cancelling: false };
    this.spectraError = null;
    this.cells = [];
    this.cellsFor = pair;
    this.selected = null;
    try {
      this.cells = await engine().inspectSpectra(
        { jobId, adapter: pair[0], compareWith: pair[1] },
        Comlink.proxy((p: InspectProgress<UpdateCell>) => {
          if (this.spectraJob?.jobId !== p.jobId) return;
          this.spectraJob = { ...this.spectraJob, done: p.done, total: p.total };
          this.cells = [...this.cells, p.item];
        }),
      );
      this.selected ??= this.cells[0] ? { layer: this.cells[0].layer, target: this.cells[0].target } : null;
    } catch (err) {
      this.spectraError = isCancel(err) ? `Stopped after ${this.cells.length} modules; the map shows those.` : messageOf(err);
    } finally {
      this.spectraJob = null;
    }
  }

  async computeIntruders(): Promise<void> {
    if (!this.adapter || this.intruderJob) return;
    const [k, threshold, compareWith, iterations] = [this.k, this.threshold, this.compareVectors, this.iterations];
    if (k === null || threshold === null || compareWith === null || iterations === null) {
      this.intruderError = 'Fill in k, the threshold, the pre-trained vectors compared with and the iterations.';
      return;
    }
    if (!Number.isInteger(iterations) || iterations < 1 || iterations > 50) {
      this.intruderError = `Iterations must be a whole number from 1 to 50, got ${iterations}.`;
      return;
    }
    const jobId = crypto.randomUUID();
    this.intruderJob = { jobId, done: 0, total: 0, cancelling: false };
    this.intruderError = null;
    this.intruders = [];
    this.intrudersThreshold = threshold;
    try {
      const adapter = this.adapter;
      this.intruders = await engine().inspectIntruders(
        { jobId, adapter, modules: this.intruderTarget, settings: { k, threshold, compareWith, subspace: { iterations, oversample: 10, seed: 1 } } },
        Comlink.proxy((p: InspectProgress<IntruderResult>) => {
          if (this.intruderJob?.jobId !== p.jobId) return;
          this.intruderJob = { ...this.intruderJob, done: p.done, total: p.total };
          this.intruders = [...this.intruders, p.item];
        }),
      );
    } catch (err) {
      this.intruderError = isCancel(err) ? `Stopped after ${this.intruders.length} modules; the chart shows those.` : messageOf(err);
    } finally {
      this.intruderJob = null;
    }
  }

  async cancel(which: 'spectra' | 'intruders'): Promise<void> {
    const job = which === 'spectra' ? this.spectraJob : this.intruderJob;
    if (!job) return;
    if (which === 'spectra') this.spectraJob = { ...job, cancelling: true };
    else this.intruderJob = { ...job, cancelling: true };
    await engine().cancelInspect(job.jobId);
  }

  async runContrast(): Promise<void> {
    if (!this.adapter || this.contrastJob) return;
    const [samples, maxNewTokens, plausibility, temperature, seed] = [this.samples, this.maxNewTokens, this.plausibility, this.temperature, this.seed];
    if (samples === null || maxNewTokens === null || plausibility === null || temperature === null || seed === null) {
      this.contrastError = 'Fill in every setting.';
      return;
    }
    const jobId = crypto.randomUUID();
    this.contrastJob = jobId;
    this.contrastCancelling = false;
    this.contrastError = null;
    this.contrast = null;
    try {
      this.contrast = await engine().runContrast(
        { jobId, prompt: this.prompt, wrapper: this.wrapper, adapter: this.adapter, direction: this.direction, samples, maxNewTokens, plausibility, temperature, seed },
        Comlink.proxy((u: ContrastUpdate) => {
          if (u.jobId === this.contrastJob) this.contrast = u;
        }),
      );
    } catch (err) {
      this.contrastError = messageOf(err);
    } finally {
      this.contrastJob = null;
    }
  }

  async cancelContrast(): Promise<void> {
    if (!this.contrastJob) return;
    this.contrastCancelling = true;
    await engine().cancelInspect(this.contrastJob);
  }
}

export const inspectState = new InspectState();
