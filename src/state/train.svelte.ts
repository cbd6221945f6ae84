import { LORA_TARGETS, type LoraTarget } from '../shared/lora';
import { ADAMW_8BIT_BLOCK_SIZES, type Adam8bitBlockSize } from '../shared/optimizer';
import { APP_TRAINING_CHOICES, PAPER_TRAINING, type PaperPreset } from '../shared/paper-training';
import { Comlink, engine } from '../worker/client';
import { saveBlob } from './download';
import type { StepRecord, TrainEvent, TrainingSetup, TrainOutcome, TrainPhase, TrainProblem, TrainProgress } from '../worker/train-api';
import { planMemory, type MemoryEstimate } from '../shared/train-memory';
import { formatLayers, paperPlan, parseLayers, planProblems, totalStepsOf, type TrainDataSource, type TrainPlan } from '../shared/train-plan';
import type { LoraSettings } from '../shared/lora';
import { messageOf } from './errors';
import { computePathProblem, INT8_DOT_FEATURE } from '../shared/compute';
import { gpuState } from './gpu.svelte';

type LoraSettingsLayers = LoraSettings['layers'];

export { formatLayers, parseLayers };

/**
 * The Train page's state: what the worker offers (model, datasets, adapters to continue, runs to
 * resume), the plan being edited (presets fill it; every field can be changed), its memory estimate
 * and problems, and the run in progress with its loss history. This instance outlives the page
 * component, so a run carries on, and is shown again, while the user looks at other pages.
 */

export type PresetId = PaperPreset;

const P = PAPER_TRAINING;
const A = APP_TRAINING_CHOICES;
const SHARED = `LoRA r ${P.lora.r}, alpha ${P.lora.alpha}, dropout ${P.lora.dropout} on all six linear layers; learning rate ${P.learningRate.toExponential()}; ${P.maxLength} tokens; ${P.epochs === 1 ? 'one epoch' : `${P.epochs} epochs`}`;

export const PRESETS: Array<{ id: PresetId; label: string; description: string }> = [
  {
    id: 'instruction',
    label: 'Paper: instruction tuning',
    description: `${SHARED}; batch size ${P.batchSize.instruction}; loss on every token.`,
  },
  {
    id: 'symbol',
    label: 'Paper: symbol tuning, continuing an instruction adapter',
    description: `The same LoRA and optimiser with batch size ${P.batchSize.symbol}, starting from a stored instruction adapter’s weights, on symbol-tuning data.`,
  },
];

/** What the paper does not state, as the page says it: the app's choices (transformers' Trainer defaults). */
export const APP_CHOICES_NOTE =
  `The paper does not state the schedule, warm-up, weight decay, clipping or seed: the app chooses transformers’ Trainer defaults ` +
  `(${A.schedule} decay, ${A.warmupSteps} warm-up steps, weight decay ${A.weightDecay}, gradient norm clipped at ${A.maxGradNorm}, seed ${A.seed}).`;

/** Which run is on screen: none, one being set up (tokenising, loading), training, or stopping. */
export type RunStatus = 'idle' | 'starting' | 'running' | 'pausing' | 'cancelling';

export interface RunView {
  runId: string | null;
  name: string;
  totalSteps: number;
  examples: number;
  tokens: number;
  skipped: { empty: number; noLoss: number; truncated: number; answerCut: number } | null;
  estimate: MemoryEstimate | null;
  lastCheckpoint: { step: number; savedAt: number } | null;
  /** The frozen layers' matmuls of the run: 'f32' (exact) or 'int8' (SwitchBack); null until it starts. */
  compute: 'f32' | 'int8' | null;
}

const EMPTY_RUN: RunView = { runId: null, name: '', totalSteps: 0, examples: 0, tokens: 0, skipped: null, estimate: null, lastCheckpoint: null, compute: null };

export class TrainState {
  setup = $state<TrainingSetup | null>(null);
  setupError = $state<string | null>(null);
  refreshing = $state(false);

  plan = $state<TrainPlan>(paperPlan('instruction', { kind: 'demo' }));
  /** The layers field as typed ("all" is a separate choice). */
  layersText = $state('0-31');
  allLayers = $state(true);
  /** Run length as edited: the unit and both values, so switching units keeps what was typed. */
  lengthUnit = $state<'steps' | 'epochs'>('epochs');
  steps = $state(100);
  epochs = $state(1);
  gpuMemoryGiB = $state<number | null>(null);

  status = $state<RunStatus>('idle');
  phase = $state<{ phase: TrainPhase; message: string; done?: number; total?: number } | null>(null);
  /** performance.now() when the run on screen was started, and when its current phase began: the page counts from them. */
  startedAt = $state<number | null>(null);
  phaseStartedAt = $state<number | null>(null);
  run = $state<RunView>({ ...EMPTY_RUN });
  /** The loss history: a plain array appended to in place (a run has thousands of steps); `version` says it changed. */
  history = $state.raw<StepRecord[]>([]);
  version = $state(0);
  progress = $state<TrainProgress | null>(null);
  outcome = $state<TrainOutcome | null>(null);
  /** A problem found before the worker was asked (the form's), or the worker's. */
  problem = $state<TrainProblem | null>(null);

  /** The plan with the fields that are edited apart (layers, length, GPU memory) folded in. */
  readonly effectivePlan = $derived.by((): TrainPlan => {
    const layers = this.allLayers ? 'all' : (parseLayers(this.layersText) ?? []);
    return {
      ...this.plan,
      lora: { ...this.plan.lora, layers },
      length: this.lengthUnit === 'steps' ? { unit: 'steps', steps: this.steps } : { unit: 'epochs', epochs: this.epochs },
      gpuMemoryBytes: this.gpuMemoryGiB === null || (this.gpuMemoryGiB as unknown) === '' ? null : Number(this.gpuMemoryGiB) * 2 ** 30,
    };
  });

  /** Why int8 compute cannot run (the loaded model's weights, this browser's WGSL), or null when it can. */
  readonly int8ComputeProblem = $derived.by((): string | null => {
    // Until the worker has a GPU to ask, only the weights can say no (without a GPU nothing trains anyway).
    const report = gpuState.detail?.state === 'ready' ? gpuState.detail.report : null;
    return computePathProblem('int8', this.setup?.model?.weightMode ?? null, report ? report.wgslFeatures.includes(INT8_DOT_FEATURE) : true);
  });

  readonly problems = $derived.by(() => {
    const p = planProblems(this.effectivePlan, this.setup?.model ?? null);
    if (this.effectivePlan.compute === 'int8' && this.int8ComputeProblem) p.push(`Turn int8 compute off: ${this.int8ComputeProblem}`);
    if (!this.allLayers && parseLayers(this.layersText) === null) p.unshift('Layers: write indices and ranges such as "0-7, 30, 31".');
    return p;
  });

  readonly memory = $derived.by(() => {
    const model = this.setup?.model;
    if (!model) return null;
    const { estimate } = planMemory(this.effectivePlan, model);
    const stated = this.effectivePlan.gpuMemoryBytes;
    return { estimate, stated, fits: stated === null ? null : estimate.total <= stated };
  });

  /** Examples in the chosen data, before tokenising (rows too long or without a response are found then). */
  readonly dataRows = $derived.by(() => {
    const d = this.plan.data;
    if (d.kind === 'demo') return this.setup?.demo.rows ?? null;
    return this.setup?.datasets.find((x) => x.id === d.id)?.rowCount ?? null;
  });

  readonly estimatedSteps = $derived(this.dataRows === null ? null : totalStepsOf(this.effectivePlan, this.dataRows));

  readonly busy = $derived(this.status !== 'idle');

  /** What the last preset change did to the data, said beside the presets (the symbol preset switches to symbol data). */
  presetNote = $state<string | null>(null);

  /**
   * How the settings differ from the chosen preset's, one phrase each ("r 16 instead of 64"); empty while they are
   * the preset's. Continuing an adapter, its rank, alpha, targets and layers are the preset's too.
   */
  readonly presetChanges = $derived.by((): string[] => {
    const id = this.plan.preset;
    if (id === 'custom') return [];
    const base = paperPlan(id, this.plan.data, this.plan.baseAdapterId);
    const adapter = id === 'symbol' ? this.setup?.adapters.find((a) => a.id === this.plan.baseAdapterId) : undefined;
    if (adapter) base.lora = { ...base.lora, r: adapter.settings.r, alpha: adapter.settings.alpha, useRslora: adapter.settings.useRslora, targets: [...adapter.settings.targets], layers: adapter.settings.layers };
    const e = this.effectivePlan;
    const out: string[] = [];
    const differs = (label: string, now: unknown, preset: unknown, show: (v: never) => string = String) => {
      if (now !== preset) out.push(`${label} ${show(now as never)} instead of ${show(preset as never)}`);
    };
    const layers = (v: LoraSettingsLayers) => (v === 'all' ? 'all' : formatLayers(v));
    const lr = (v: number) => (Number.isFinite(v) && v > 0 ? v.toExponential() : String(v));
    differs('r', e.lora.r, base.lora.r);
    differs('alpha', e.lora.alpha, base.lora.alpha);
    differs('dropout', e.lora.dropout, base.lora.dropout);
    if (e.lora.useRslora !== base.lora.useRslora) out.push(e.lora.useRslora ? 'rsLoRA on' : 'rsLoRA off');
    differs('targets', [...e.lora.targets].sort().join(', '), [...base.lora.targets].sort().join(', '));
    differs('layers', layers(e.lora.layers), layers(base.lora.layers));
    differs('learning rate', lr(e.schedule.lr), lr(base.schedule.lr));
    differs('schedule', e.schedule.kind, base.schedule.kind);
    differs('warm-up', e.schedule.warmupSteps, base.schedule.warmupSteps);
    const length = (l: TrainPlan['length']) => (l.unit === 'steps' ? `${l.steps} steps` : `${l.epochs} epoch${l.epochs === 1 ? '' : 's'}`);
    differs('length', length(e.length), length(base.length));
    differs('batch size', e.batchSize, base.batchSize);
    differs('accumulation', e.gradAccumulation, base.gradAccumulation);
    differs('maximum length', e.maxLength, base.maxLength);
    if (e.lossOn !== base.lossOn) out.push(e.lossOn === 'response' ? 'loss on the response only' : 'loss on every token');
    differs('weight decay', e.weightDecay, base.weightDecay);
    differs('clipping', e.maxGradNorm, base.maxGradNorm);
    differs('seed', e.seed, base.seed);
    return out;
  });

  /** The symbol-tuning preset trains on symbol-tuning prompts: said when the chosen data is something else. */
  readonly presetDataWarning = $derived.by((): string | null => {
    if (this.plan.preset !== 'symbol') return null;
    const d = this.plan.data;
    const info = d.kind === 'saved' ? this.setup?.datasets.find((x) => x.id === d.id) : undefined;
    if (info?.kind === 'symbol-tuning') return null;
    const what = d.kind === 'demo' ? 'the built-in demo set (instruction rows)' : `"${info?.name ?? 'the chosen dataset'}", instruction rows`;
    return `The symbol-tuning preset trains on symbol-tuning prompts, but the data is ${what}: choose a symbol-tuning dataset, or prepare one on the Data page.`;
  });

  async refresh(): Promise<void> {
    this.refreshing = true;
    try {
      const setup = await engine().trainingSetup();
      this.setup = setup;
      this.setupError = null;
      // A saved dataset deleted meanwhile: fall back to the demo set.
      const d = this.plan.data;
      if (d.kind === 'saved' && !setup.datasets.some((x) => x.id === d.id)) this.plan.data = { kind: 'demo' };
      if (this.plan.baseAdapterId && !setup.adapters.some((a) => a.id === this.plan.baseAdapterId)) this.plan.baseAdapterId = null;
      if (setup.model && this.allLayers) this.layersText = `0-${setup.model.shape.layers - 1}`;
    } catch (err) {
      this.setupError = messageOf(err);
    } finally {
      this.refreshing = false;
    }
  }

  applyPreset(id: PresetId): void {
    const base = id === 'symbol' ? (this.plan.baseAdapterId ?? this.setup?.adapters[0]?.id ?? null) : null;
    // Symbol tuning trains on symbol-tuning prompts: with other data chosen, switch to the newest such dataset.
    let data = this.plan.data;
    this.presetNote = null;
    if (id === 'symbol') {
      const current = data.kind === 'saved' ? this.setup?.datasets.find((x) => x.id === (data as { id: string }).id) : undefined;
      const symbol = this.setup?.datasets.find((x) => x.kind === 'symbol-tuning');
      if (current?.kind !== 'symbol-tuning' && symbol) {
        data = { kind: 'saved', id: symbol.id };
        this.presetNote = `The data is now "${symbol.name}" (symbol-tuning prompts), which the symbol-tuning preset trains on.`;
      }
    }
    // The optimiser and the compute path are the user's choices, kept across presets (the exact f32 defaults, or the 8-bit ones).
    const next = { ...paperPlan(id, data, base), optimizer: this.plan.optimizer, compute: this.plan.compute };
    const chosen = data.kind === 'saved' ? this.setup?.datasets.find((x) => x.id === (data as { id: string }).id) : undefined;
    if (chosen) next.maxLength = Math.min(chosen.maxTokens, this.setup?.model?.maxPositions ?? chosen.maxTokens);
    this.plan = next;
    this.allLayers = true;
    this.lengthUnit = next.length.unit;
    if (next.length.unit === 'epochs') this.epochs = next.length.epochs;
    if (base) this.matchAdapter(base);
  }

  /** The chosen preset's settings again, keeping the adapter's name and the data. */
  resetToPreset(): void {
    const id = this.plan.preset;
    if (id === 'custom') return;
    const { name, data } = this.plan;
    this.applyPreset(id);
    this.plan = { ...this.plan, name, data };
    this.presetNote = null;
  }

  /** Continuing an adapter needs its rank, alpha, targets and layers: take them from it. */
  matchAdapter(id: string | null): void {
    this.plan.baseAdapterId = id;
    const a = this.setup?.adapters.find((x) => x.id === id);
    if (!a) return;
    this.plan.lora = { ...this.plan.lora, r: a.settings.r, alpha: a.settings.alpha, useRslora: a.settings.useRslora, targets: [...a.settings.targets] };
    this.allLayers = a.settings.layers === 'all';
    if (a.settings.layers !== 'all') this.layersText = formatLayers(a.settings.layers);
  }

  chooseData(source: TrainDataSource): void {
    this.plan.data = source;
    if (source.kind === 'saved') {
      const info = this.setup?.datasets.find((x) => x.id === source.id);
      if (info) {
        this.plan.maxLength = Math.min(info.maxTokens, this.setup?.model?.maxPositions ?? info.maxTokens);
        // Symbol-tuning data continues an instruction adapter; instruction data starts fresh.
        if (info.kind === 'symbol-tuning' && this.plan.preset === 'instruction') this.applyPreset('symbol');
      }
    }
  }

  /** 'adamw', or 'adamw-8bit:256' / 'adamw-8bit:2048' (the select's values). */
  chooseOptimizer(value: string): void {
    const [kind, size] = value.split(':');
    const blockSize = Number(size) as Adam8bitBlockSize;
    this.plan.optimizer = kind === 'adamw-8bit' && ADAMW_8BIT_BLOCK_SIZES.includes(blockSize) ? { kind, blockSize } : { kind: 'adamw' };
  }

  toggleTarget(target: LoraTarget, on: boolean): void {
    const set = new Set(this.plan.lora.targets);
    if (on) set.add(target);
    else set.delete(target);
    this.plan.lora.targets = LORA_TARGETS.filter((t) => set.has(t));
  }

  private onEvent = (e: TrainEvent): void => {
    switch (e.kind) {
      case 'phase':
        if (this.phase?.phase !== e.phase || this.phase.message !== e.message) this.phaseStartedAt = performance.now();
        this.phase = { phase: e.phase, message: e.message, done: e.done, total: e.total };
        break;
      case 'started':
        this.run = { runId: e.runId, name: e.name, totalSteps: e.totalSteps, examples: e.examples, tokens: e.tokens, skipped: e.skipped, estimate: e.estimate, lastCheckpoint: null, compute: e.compute };
        this.history = [...e.history];
        this.version++;
        if (this.status === 'starting') this.status = 'running';
        break;
      case 'step':
        this.history.push(e.record);
        this.version++;
        this.progress = e.progress;
        break;
      case 'checkpoint':
        this.run.lastCheckpoint = { step: e.step, savedAt: e.savedAt };
        break;
    }
  };

  private async drive(task: (onEvent: (e: TrainEvent) => void) => Promise<TrainOutcome>, name: string): Promise<void> {
    this.status = 'starting';
    this.outcome = null;
    this.problem = null;
    this.progress = null;
    this.phase = null;
    this.startedAt = this.phaseStartedAt = performance.now();
    this.run = { ...EMPTY_RUN, name };
    this.history = [];
    this.version++;
    try {
      const outcome = await task(Comlink.proxy(this.onEvent));
      this.outcome = outcome;
      if (outcome.status === 'failed') this.problem = outcome.problem;
    } catch (err) {
      this.problem = { code: 'failed', title: 'The worker did not answer', message: messageOf(err) };
    } finally {
      this.status = 'idle';
      this.phase = null;
      void this.refresh();
    }
  }

  async start(): Promise<void> {
    if (this.busy) return;
    if (this.problems.length) {
      this.problem = { code: 'invalid', title: 'Some settings need changing', message: this.problems.join(' ') };
      return;
    }
    const plan = $state.snapshot(this.effectivePlan) as TrainPlan;
    await this.drive((onEvent) => engine().startTraining(plan, onEvent), plan.name);
  }

  async resume(runId: string): Promise<void> {
    if (this.busy) return;
    const name = this.setup?.runs.find((r) => r.runId === runId)?.name ?? 'run';
    await this.drive((onEvent) => engine().resumeTraining(runId, onEvent), name);
  }

  async pause(): Promise<void> {
    if (this.status !== 'running' && this.status !== 'starting') return;
    this.status = 'pausing';
    await engine().pauseTraining();
  }

  async cancel(): Promise<void> {
    if (this.status === 'idle') return;
    this.status = 'cancelling';
    await engine().cancelTraining();
  }

  /** "Run this on a cluster": the run as a TRL + PEFT folder (.zip), or why it cannot be made. */
  cluster = $state<{ status: 'idle' | 'working' | 'done' | 'failed'; message: string | null }>({ status: 'idle', message: null });

  async exportCluster(): Promise<void> {
    if (this.cluster.status === 'working') return;
    if (this.problems.length) {
      this.cluster = { status: 'failed', message: `Some settings need changing first: ${this.problems.join(' ')}` };
      return;
    }
    this.cluster = { status: 'working', message: null };
    try {
      const plan = $state.snapshot(this.effectivePlan) as TrainPlan;
      const f = await engine().exportClusterRun(plan);
      saveBlob(f.blob, f.fileName);
      this.cluster = { status: 'done', message: `${f.fileName}: ${f.rows} rows, train.py for ${f.baseModel}; its README.md has the command for one GPU, DDP, DeepSpeed ZeRO-2 and FSDP.` };
    } catch (err) {
      this.cluster = { status: 'failed', message: messageOf(err) };
    }
  }

  async discard(runId: string): Promise<void> {
    try {
      await engine().discardCheckpoint(runId);
    } catch (err) {
      this.problem = { code: 'failed', title: 'The checkpoint could not be deleted', message: messageOf(err) };
    }
    await this.refresh();
  }
}

export const trainState = new TrainState();
