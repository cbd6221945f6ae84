import { decodeAdapter, encodeAdapter } from '../engine/adapters/files';
import { AdapterStore, type AdapterInfo } from '../engine/adapters/store';
import { tokenizeInstructionData } from '../engine/data/template';
import type { Engine } from '../engine/engine';
import { ModelBusyError, withModel } from '../engine/eval/runner';
import { LoraState } from '../engine/model/phi2/lora-state';
import { SessionError, type LoadedModel, type Session } from '../engine/session';
import { StoreError } from '../engine/store/errors';
import type { TrainExample } from '../engine/train/batches';
import { describeOptimizer } from '../engine/optim/settings';
import { CheckpointStore } from '../engine/train/checkpoints';
import { suggestSmaller, type MemoryEstimate } from '../engine/train/memory';
import { Trainer, TrainingError, type StepRecord, type TrainCheckpoint, type TrainConfig, type TrainProgress } from '../engine/train/trainer';
import { UserDataStore, type SavedDatasetInfo, type TrainingExample } from './data-store';
import { planMemory, planProblems, trainConfigOf, type TrainingModelInfo, type TrainPlan } from './train-plan';

export type { StepRecord, TrainProgress } from '../engine/train/trainer';
export type { MemoryEstimate } from '../engine/train/memory';
export type { TrainDataSource, TrainingModelInfo, TrainPlan } from './train-plan';

/**
 * The Train page's side of the engine worker: LoRA training runs on the loaded model, from a dataset
 * saved on the Data page (or the bundled demo set), with checkpoints in IndexedDB so that a run paused,
 * or cut short by a reload, resumes exactly where it stopped (checkpoints.ts), and the finished adapter
 * saved to the adapters store and loaded beside the model for the Evaluate and Demo pages.
 *
 * One run at a time. startTraining/resumeTraining resolve when the run stops (finished, paused,
 * cancelled or failed) with an outcome; what happens meanwhile arrives through `onEvent` (wrap it with
 * Comlink.proxy). Failures travel as data with a title, the full message and what to do, because
 * comlink rebuilds thrown errors with their message only. The run holds the model (withModel) so an
 * evaluation or a demo cannot interleave with it.
 */
export interface TrainApi {
  /** The loaded model, saved datasets, stored adapters (to continue from) and runs that can be resumed. */
  trainingSetup(): Promise<TrainingSetup>;
  startTraining(plan: TrainPlan, onEvent?: (event: TrainEvent) => void): Promise<TrainOutcome>;
  /** Continues a run from its checkpoint (loading its model first when another, or none, is on the GPU). */
  resumeTraining(runId: string, onEvent?: (event: TrainEvent) => void): Promise<TrainOutcome>;
  /** Stops after the current step and saves a checkpoint; the run's promise resolves with 'paused'. */
  pauseTraining(): Promise<void>;
  /** Stops after the current step and forgets the run (its checkpoint is deleted). */
  cancelTraining(): Promise<void>;
  /** Deletes a paused run's checkpoint. */
  discardCheckpoint(runId: string): Promise<void>;
}

export interface ResumableRun {
  runId: string;
  name: string;
  datasetName: string;
  modelId: string;
  modelName: string;
  step: number;
  totalSteps: number;
  savedAt: number;
  lastLoss: number | null;
  /** Bytes the checkpoint takes in IndexedDB. */
  bytes: number;
  /** The run's optimiser, in words ("8-bit AdamW, blocks of 256"). */
  optimizer: string;
}

export interface TrainingSetup {
  model: TrainingModelInfo | null;
  datasets: SavedDatasetInfo[];
  /** Set when the saved datasets could not be listed (the page still offers the demo set). */
  datasetsError: string | null;
  demo: { rows: number; description: string };
  adapters: Array<Pick<AdapterInfo, 'id' | 'name' | 'baseModel' | 'settings' | 'createdAt'>>;
  runs: ResumableRun[];
  /** The run in progress, if any (the page may have been left and opened again). */
  active: { runId: string; name: string } | null;
}

export type TrainPhase = 'loading-model' | 'tokenizing' | 'allocating' | 'training' | 'checkpointing' | 'saving-adapter';

export type TrainEvent =
  | { kind: 'phase'; phase: TrainPhase; message: string; done?: number; total?: number }
  | {
      kind: 'started';
      runId: string;
      name: string;
      totalSteps: number;
      /** Steps already done (a resumed run) and their records, for the chart. */
      history: StepRecord[];
      examples: number;
      tokens: number;
      /** Examples left out, and why. */
      skipped: { empty: number; noLoss: number; truncated: number; answerCut: number };
      estimate: MemoryEstimate;
    }
  | { kind: 'step'; record: StepRecord; progress: TrainProgress }
  | { kind: 'checkpoint'; step: number; savedAt: number };

/** Why a run could not start or stopped: a title, the full explanation, and what to do. */
export interface TrainProblem {
  code: 'no-model' | 'invalid' | 'busy' | 'data' | 'memory' | 'out-of-memory' | 'non-finite' | 'storage' | 'changed' | 'failed';
  title: string;
  message: string;
  tips?: string[];
  estimate?: MemoryEstimate;
}

export type TrainOutcome =
  | { status: 'finished'; runId: string; adapter: AdapterInfo; loaded: boolean; history: StepRecord[] }
  | { status: 'paused'; runId: string; step: number; totalSteps: number }
  | { status: 'cancelled'; runId: string }
  | { status: 'failed'; runId: string | null; problem: TrainProblem };

/** What a checkpoint carries besides the trainer's state, to rebuild the run after a reload. */
interface RunMeta {
  plan: TrainPlan;
  modelId: string;
  modelName: string;
  weightMode: 'int8' | 'f16';
  datasetName: string;
  data: { examples: number; tokens: number; fingerprint: string };
  startedAt: number;
}

// ---------------------------------------------------------------------------------------------------
// The demo set

const PROMPT = (q: string) => `### Instruct: ${q}\n ### Output: `;

/**
 * A few instruction rows in the paper's template, for trying the page without preparing data first.
 * Far too small to teach Phi-2 anything useful; enough to see the loss fall.
 */
export const DEMO_ROWS: readonly TrainingExample[] = [
  ['What is 7 plus 5?', '7 plus 5 is 12.'],
  ['Name the largest planet in the solar system.', 'Jupiter is the largest planet in the solar system.'],
  ['Is the sentence "I loved every minute of it" positive or negative?', 'The sentence is positive.'],
  ['Translate "good morning" into French.', '"Good morning" in French is "bonjour".'],
  ['What is the opposite of "ancient"?', 'The opposite of "ancient" is "modern".'],
  ['How many days are there in a leap year?', 'A leap year has 366 days.'],
  ['Give the plural of "mouse".', 'The plural of "mouse" is "mice".'],
  ['What is 9 times 6?', '9 times 6 is 54.'],
  ['Which gas do plants take in for photosynthesis?', 'Plants take in carbon dioxide for photosynthesis.'],
  ['Is the sentence "The service was slow and rude" positive or negative?', 'The sentence is negative.'],
  ['What is the capital of Japan?', 'The capital of Japan is Tokyo.'],
  ['Sort these numbers from smallest to largest: 8, 3, 5.', 'From smallest to largest: 3, 5, 8.'],
  ['What does a thermometer measure?', 'A thermometer measures temperature.'],
  ['Complete the sequence: 2, 4, 6, 8, ...', 'The next number is 10.'],
  ['How many sides does a hexagon have?', 'A hexagon has six sides.'],
  ['What is water made of?', 'Water is made of hydrogen and oxygen.'],
].map(([q, a]) => ({ prompt: PROMPT(q), completion: a }));

export const DEMO_DESCRIPTION = `${DEMO_ROWS.length} short question-and-answer rows in the paper's template (built in)`;

// ---------------------------------------------------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a over every example's ids and labels: a resumed run must see exactly the data it started with. */
function fingerprint(examples: readonly TrainExample[]): string {
  let h = 0x811c9dc5;
  const mix = (v: number) => {
    h = Math.imul(h ^ (v & 0xffff), 0x01000193);
    h = Math.imul(h ^ (v >>> 16), 0x01000193);
  };
  for (const e of examples) {
    mix(e.input_ids.length);
    for (const id of e.input_ids) mix(id);
    for (const l of e.labels) mix(l);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

class Problem extends Error {
  constructor(readonly problem: TrainProblem) {
    super(problem.message);
  }
}

function describe(err: unknown): TrainProblem {
  if (err instanceof Problem) return err.problem;
  const message = err instanceof Error ? err.message || err.name : String(err);
  if (err instanceof TrainingError) {
    return message.includes('NaN')
      ? { code: 'non-finite', title: 'Training stopped: the gradients became NaN or infinite', message }
      : { code: 'invalid', title: 'The run cannot start', message };
  }
  if (err instanceof ModelBusyError) return { code: 'busy', title: 'The model is busy', message };
  if (err instanceof SessionError) return { code: 'no-model', title: 'No model on the GPU', message };
  if (err instanceof StoreError) {
    return { code: 'storage', title: err.code === 'quota' ? 'Browser storage is full' : 'Browser storage failed', message };
  }
  return { code: 'failed', title: 'Training failed', message };
}

const PROGRESS_ROWS = 256;
/** Tokenised whole, then cut here, so that a row's length before the cut is known. */
const UNCUT = 2 ** 30;

interface PreparedData {
  examples: TrainExample[];
  name: string;
  tokens: number;
  skipped: { empty: number; noLoss: number; truncated: number; answerCut: number };
}

interface Job {
  runId: string;
  name: string;
  trainer: Trainer | null;
  /** Asked before the trainer exists (while tokenizing or loading): honoured as soon as it does. */
  request: 'pause' | 'cancel' | null;
}

class TrainWorkspace {
  private job: Job | null = null;

  constructor(
    private readonly engine: Pick<Engine, 'platform'>,
    private readonly session: Session,
  ) {}

  private async checkpoints(): Promise<CheckpointStore<RunMeta>> {
    return CheckpointStore.over<RunMeta>(await this.session.store());
  }

  private async adapters(): Promise<AdapterStore> {
    return AdapterStore.over(await this.session.store());
  }

  private modelInfo(loaded: LoadedModel, name: string): TrainingModelInfo {
    const d = loaded.dims;
    return {
      id: loaded.id,
      name,
      weightMode: loaded.weightMode,
      shape: { vocab: d.vocab, hidden: d.hidden, intermediate: d.intermediate, layers: d.layers, heads: d.heads },
      maxPositions: d.maxPositions,
      residDropout: d.residDropout,
    };
  }

  private async modelName(id: string): Promise<string> {
    const manifest = await (await this.session.store()).getModel(id).catch(() => undefined);
    return manifest?.name ?? id;
  }

  async setup(): Promise<TrainingSetup> {
    const loaded = this.session.loaded;
    let datasets: SavedDatasetInfo[] = [];
    let datasetsError: string | null = null;
    try {
      const store = await UserDataStore.open(this.engine.platform.indexedDB);
      datasets = await store.list();
      store.close();
    } catch (err) {
      datasetsError = (err as Error).message;
    }
    const [checkpoints, adapters] = await Promise.all([this.checkpoints().then((s) => s.list()), this.adapters().then((s) => s.list())]);
    return {
      model: loaded ? this.modelInfo(loaded, await this.modelName(loaded.id)) : null,
      datasets,
      datasetsError,
      demo: { rows: DEMO_ROWS.length, description: DEMO_DESCRIPTION },
      adapters: adapters.map(({ id, name, baseModel, settings, createdAt }) => ({ id, name, baseModel, settings, createdAt })),
      runs: checkpoints.map((c) => ({
        runId: c.runId,
        name: c.meta.plan.name,
        datasetName: c.meta.datasetName,
        modelId: c.meta.modelId,
        modelName: c.meta.modelName,
        step: c.step,
        totalSteps: c.totalSteps,
        savedAt: c.savedAt,
        lastLoss: c.lastLoss,
        bytes: c.bytes,
        optimizer: describeOptimizer(c.optimizer),
      })),
      active: this.job ? { runId: this.job.runId, name: this.job.name } : null,
    };
  }

  private claim(runId: string, name: string): Job {
    if (this.job) throw new Problem({ code: 'busy', title: 'A run is already going', message: `"${this.job.name}" is training. Pause or cancel it first.` });
    this.job = { runId, name, trainer: null, request: null };
    return this.job;
  }

  pause(): void {
    if (!this.job) return;
    this.job.request ??= 'pause';
    this.job.trainer?.pause();
  }

  cancel(): void {
    if (!this.job) return;
    this.job.request = 'cancel';
    this.job.trainer?.cancel();
  }

  async discard(runId: string): Promise<void> {
    if (this.job?.runId === runId) throw new Error('That run is training now: cancel it instead.');
    await (await this.checkpoints()).delete(runId);
  }

  /** Tokenises the plan's examples with the loaded model's tokenizer, reporting progress. */
  private async prepareData(plan: TrainPlan, loaded: LoadedModel, emit: (e: TrainEvent) => void): Promise<PreparedData> {
    let rows: readonly TrainingExample[];
    let name: string;
    let answerLast = false;
    if (plan.data.kind === 'demo') {
      rows = DEMO_ROWS;
      name = 'Demo set (built in)';
    } else {
      let store: UserDataStore;
      try {
        store = await UserDataStore.open(this.engine.platform.indexedDB);
      } catch (err) {
        throw new Problem({ code: 'data', title: 'The saved datasets could not be opened', message: (err as Error).message });
      }
      try {
        const info = await store.info(plan.data.id);
        name = info.name;
        // A symbol-tuning prompt ends with its answer: cut at the maximum length, it would teach nothing.
        answerLast = info.kind === 'symbol-tuning';
        rows = await store.rows(plan.data.id);
      } catch (err) {
        throw new Problem({ code: 'data', title: 'The dataset could not be read', message: `${(err as Error).message} Choose another dataset on this page.` });
      } finally {
        store.close();
      }
    }
    const examples: TrainExample[] = [];
    const skipped = { empty: 0, noLoss: 0, truncated: 0, answerCut: 0 };
    let tokens = 0;
    const eos = plan.appendEos ? (loaded.tokenizer.eosTokenId ?? loaded.dims.eosTokenId ?? undefined) : undefined;
    for (let at = 0; at < rows.length; at += PROGRESS_ROWS) {
      emit({ kind: 'phase', phase: 'tokenizing', message: `Tokenising ${name}`, done: at, total: rows.length });
      const part = rows.slice(at, at + PROGRESS_ROWS).map((r) => ({ question: r.prompt, response: r.completion }));
      // prompt + completion is the templated text: the identity template reproduces it (data-api.ts).
      const t = tokenizeInstructionData(part, loaded.tokenizer, '{question}{response}', { maxTokens: UNCUT, lossOn: plan.lossOn, eosTokenId: eos });
      for (const whole of t.rows) {
        const text = whole.input_ids.length - (eos === undefined ? 0 : 1);
        if (answerLast && text > plan.maxLength) {
          skipped.answerCut++;
          continue;
        }
        if (whole.input_ids.length > plan.maxLength) skipped.truncated++;
        const row = { input_ids: whole.input_ids.slice(0, plan.maxLength), labels: whole.labels.slice(0, plan.maxLength) };
        if (row.input_ids.length < 2) {
          skipped.empty++;
          continue;
        }
        // A label only counts at position 1 or later (position 0 has nothing before it to predict from).
        if (!row.labels.some((l, i) => i > 0 && l !== -100)) {
          skipped.noLoss++;
          continue;
        }
        examples.push(row);
        tokens += row.input_ids.length;
      }
      // Let pause/cancel messages in between chunks of a large dataset.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    if (!examples.length) {
      throw new Problem({
        code: 'data',
        title: 'Nothing to train on',
        message: skipped.answerCut
          ? `The maximum length of ${plan.maxLength} tokens would cut the answer off ${skipped.answerCut} of the ${rows.length} symbol-tuning prompts of ${name}, and the rest have nothing to learn from: raise the maximum length, or prepare the prompts again at this length on the Data page.`
          : `None of the ${rows.length} rows of ${name} has a token to learn from at ${plan.maxLength} tokens` +
            (plan.lossOn === 'response' ? ' with the loss on the response only (the prompts fill the length): raise the maximum length or train on every token.' : '.'),
      });
    }
    return { examples, name, tokens, skipped };
  }

  /** Starts a new run. */
  async start(plan: TrainPlan, onEvent?: (e: TrainEvent) => void): Promise<TrainOutcome> {
    const runId = crypto.randomUUID();
    const emit = (e: TrainEvent) => onEvent?.(e);
    let job: Job | null = null;
    try {
      job = this.claim(runId, plan.name);
      const loaded = this.session.requireModel();
      const modelName = await this.modelName(loaded.id);
      const model = this.modelInfo(loaded, modelName);
      const problems = planProblems(plan, model);
      if (problems.length) throw new Problem({ code: 'invalid', title: 'Some settings need changing', message: problems.join(' ') });
      const data = await this.prepareData(plan, loaded, emit);
      const config = trainConfigOf(plan, data.examples.length, model.residDropout);
      const meta: RunMeta = {
        plan,
        modelId: loaded.id,
        modelName,
        weightMode: loaded.weightMode,
        datasetName: data.name,
        data: { examples: data.examples.length, tokens: data.tokens, fingerprint: fingerprint(data.examples) },
        startedAt: Date.now(),
      };
      let baseWeights: ((lora: LoraState) => void) | null = null;
      if (plan.baseAdapterId) baseWeights = await this.baseAdapter(plan, loaded);
      return await this.run(job, loaded, model, config, data, meta, null, baseWeights, emit);
    } catch (err) {
      return { status: 'failed', runId, problem: describe(err) };
    } finally {
      if (job && this.job === job) this.job = null;
    }
  }

  async resume(runId: string, onEvent?: (e: TrainEvent) => void): Promise<TrainOutcome> {
    const emit = (e: TrainEvent) => onEvent?.(e);
    let job: Job | null = null;
    try {
      const stored = await (await this.checkpoints()).load(runId);
      if (!stored) throw new Problem({ code: 'data', title: 'No such run', message: 'That run has no checkpoint any more: it finished, or was discarded in another tab.' });
      const { checkpoint, meta } = stored;
      job = this.claim(runId, meta.plan.name);
      let loaded = this.session.loaded;
      if (loaded?.id !== meta.modelId) {
        emit({ kind: 'phase', phase: 'loading-model', message: `Loading ${meta.modelName} onto the GPU` });
        try {
          loaded = await this.session.load(meta.modelId, (p) => emit({ kind: 'phase', phase: 'loading-model', message: `Loading ${meta.modelName} onto the GPU`, done: p.bytesDone, total: p.bytesTotal }));
        } catch (err) {
          throw new Problem({ code: 'no-model', title: `The run needs ${meta.modelName}`, message: `${(err as Error).message} The run was started on ${meta.modelName}; it continues only on that model.` });
        }
      }
      if (job.request === 'cancel') return await this.forget(runId);
      const model = this.modelInfo(loaded, meta.modelName);
      const data = await this.prepareData(meta.plan, loaded, emit);
      const now = fingerprint(data.examples);
      if (now !== meta.data.fingerprint || data.examples.length !== meta.data.examples) {
        throw new Problem({
          code: 'changed',
          title: 'The dataset changed since the run started',
          message:
            `"${data.name}" now gives ${data.examples.length} examples (${data.tokens} tokens); the run started with ${meta.data.examples} (${meta.data.tokens} tokens). ` +
            'A resumed run must see the same data to continue exactly. Start a new run, or discard this one.',
        });
      }
      return await this.run(job, loaded, model, checkpoint.config, data, meta, checkpoint, null, emit);
    } catch (err) {
      return { status: 'failed', runId, problem: describe(err) };
    } finally {
      if (job && this.job === job) this.job = null;
    }
  }

  /** A stored adapter's weights for the symbol-tuning preset, checked against the model and the plan. */
  private async baseAdapter(plan: TrainPlan, loaded: LoadedModel): Promise<(lora: LoraState) => void> {
    const store = await this.adapters();
    const info = await store.get(plan.baseAdapterId!);
    const decoded = decodeAdapter(await store.files(info.id), { hidden: loaded.dims.hidden, intermediate: loaded.dims.intermediate, layers: loaded.dims.layers });
    const a = decoded.settings;
    const same = (x: readonly unknown[] | 'all', y: readonly unknown[] | 'all') => JSON.stringify(x) === JSON.stringify(y);
    if (a.r !== plan.lora.r || a.alpha !== plan.lora.alpha || a.useRslora !== plan.lora.useRslora || !same(a.targets, plan.lora.targets) || !same(a.layers, plan.lora.layers)) {
      throw new Problem({
        code: 'invalid',
        title: 'The LoRA settings differ from the adapter being continued',
        message: `"${info.name}" has r ${a.r}, alpha ${a.alpha}${a.useRslora ? ' (rsLoRA)' : ''}, targets ${a.targets.join(', ')}, layers ${a.layers === 'all' ? 'all' : a.layers.join(', ')}. ` +
          'Continuing it needs the same rank, alpha, targets and layers (only dropout may change).',
      });
    }
    return (lora) => lora.setWeights((name) => decoded.tensors.get(name)!.data);
  }

  private async forget(runId: string): Promise<TrainOutcome> {
    await (await this.checkpoints()).delete(runId).catch(() => undefined);
    return { status: 'cancelled', runId };
  }

  private async run(
    job: Job,
    loaded: LoadedModel,
    model: TrainingModelInfo,
    config: TrainConfig,
    data: PreparedData,
    meta: RunMeta,
    checkpoint: TrainCheckpoint | null,
    baseWeights: ((lora: LoraState) => void) | null,
    emit: (e: TrainEvent) => void,
  ): Promise<TrainOutcome> {
    const { runId } = job;
    if (job.request === 'cancel') return this.forget(runId);
    const { estimate, shape } = planMemory(meta.plan, model);
    if (meta.plan.gpuMemoryBytes !== null && estimate.total > meta.plan.gpuMemoryBytes) {
      throw new Problem({
        code: 'memory',
        title: 'This run does not fit the GPU memory you stated',
        message: `It needs about ${gib(estimate.total)} and you stated ${gib(meta.plan.gpuMemoryBytes)}.`,
        tips: suggestSmaller(model.shape, shape, meta.plan.gpuMemoryBytes),
        estimate,
      });
    }
    const store = await this.checkpoints();
    const gpu = loaded.model.gpu;
    emit({ kind: 'phase', phase: 'allocating', message: 'Allocating the training buffers on the GPU' });
    // Browsers do not tell how much memory a GPU has: allocate everything now and listen for the answer.
    // A buffer past the device's size limits is a validation error instead: caught the same way.
    gpu.device.pushErrorScope('validation');
    gpu.device.pushErrorScope('out-of-memory');
    let lora: LoraState | null = null;
    let trainer: Trainer | null = null;
    let constructionError: unknown = null;
    try {
      lora = new LoraState(gpu, loaded.dims, config.lora);
      if (checkpoint) {
        // restore() below sets the weights and moments.
      } else if (baseWeights) baseWeights(lora);
      else lora.initialise(mulberry32(config.seed ^ 0x9e3779b9));
      trainer = new Trainer(loaded.model, lora, config, data.examples, {
        now: () => this.engine.platform.now(),
        onStep: (record, progress) => emit({ kind: 'step', record, progress }),
        saveCheckpoint: async (c) => {
          emit({ kind: 'phase', phase: 'checkpointing', message: `Saving a checkpoint at step ${c.step}` });
          await store.save(runId, c, meta);
          emit({ kind: 'checkpoint', step: c.step, savedAt: Date.now() });
          emit({ kind: 'phase', phase: 'training', message: 'Training' });
        },
      });
      if (checkpoint) trainer.restore(checkpoint);
    } catch (err) {
      constructionError = err;
    }
    const oom = await gpu.device.popErrorScope();
    const invalid = await gpu.device.popErrorScope();
    const release = () => {
      trainer?.destroy();
      lora?.destroy();
    };
    if (oom || invalid || constructionError) {
      release();
      if (constructionError) throw constructionError;
      if (invalid) {
        const limit = gpu.device.limits.maxBufferSize;
        throw new Problem({
          code: 'out-of-memory',
          title: 'A training buffer is larger than this GPU allows',
          message: `The GPU refused a buffer (${invalid.message}). Single buffers may hold at most ${gib(limit)} here; this run needs about ${gib(estimate.total)} in all. Nothing was trained.`,
          tips: suggestSmaller(model.shape, shape, estimate.total - 1),
          estimate,
        });
      }
      throw new Problem({
        code: 'out-of-memory',
        title: 'The GPU ran out of memory',
        message: `Allocating the training buffers failed (${oom!.message}). This run needs about ${gib(estimate.total)}; nothing was trained.`,
        tips: suggestSmaller(model.shape, shape, estimate.total - 1),
        estimate,
      });
    }
    job.trainer = trainer;
    emit({
      kind: 'started',
      runId,
      name: meta.plan.name,
      totalSteps: config.schedule.totalSteps,
      history: [...trainer!.records],
      examples: data.examples.length,
      tokens: data.tokens,
      skipped: data.skipped,
      estimate,
    });
    emit({ kind: 'phase', phase: 'training', message: 'Training' });
    try {
      // A pause or cancel asked for while the data was being prepared: honoured before the first step.
      // (Read afresh: messages were handled at every await since the check above.)
      const request = job.request as Job['request'];
      if (request === 'cancel') return await this.forget(runId);
      if (request === 'pause') {
        if (!checkpoint) await store.save(runId, await trainer!.snapshot(), meta);
        return { status: 'paused', runId, step: trainer!.completedSteps, totalSteps: config.schedule.totalSteps };
      }
      const outcome = await withModel(loaded.generator, `training "${meta.plan.name}"`, () => trainer!.run());
      if (outcome === 'paused') return { status: 'paused', runId, step: trainer!.completedSteps, totalSteps: config.schedule.totalSteps };
      if (outcome === 'cancelled') return await this.forget(runId);
      emit({ kind: 'phase', phase: 'saving-adapter', message: 'Saving the adapter' });
      const history = [...trainer!.records];
      const tensors = lora!.unflatten(await lora!.readFlat('params'));
      const files = encodeAdapter(config.lora, meta.modelName, tensors);
      const adapters = await this.adapters();
      const info = await adapters.put(files, {
        name: meta.plan.name,
        origin: {
          kind: 'training',
          runId,
          dataset: meta.datasetName,
          steps: config.schedule.totalSteps,
          training: {
            model: meta.modelName,
            lr: config.schedule.lr,
            schedule: config.schedule.kind,
            warmupSteps: config.schedule.warmupSteps,
            totalSteps: config.schedule.totalSteps,
            batchSize: config.batchSize,
            gradAccumulation: config.gradAccumulation,
            maxLength: config.maxLength,
            lossOn: meta.plan.lossOn,
            weightDecay: config.weightDecay,
            maxGradNorm: config.maxGradNorm,
            seed: config.seed,
            examples: meta.data.examples,
            tokens: meta.data.tokens,
          },
        },
        id: await adapters.newId(meta.plan.name, this.session.loadedAdapters()),
      });
      release();
      lora = null;
      trainer = null;
      let loadedBeside = false;
      try {
        this.session.addAdapter(info.id, files);
        this.session.activeAdapter = info.id;
        loadedBeside = true;
      } catch {
        // Saved but not on the GPU (the model went away meanwhile): the Adapters page can load it.
      }
      await store.delete(runId).catch(() => undefined);
      return { status: 'finished', runId, adapter: info, loaded: loadedBeside, history };
    } finally {
      job.trainer = null;
      release();
    }
  }
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(bytes < 10 * 2 ** 30 ? 2 : 1)} GiB`;
}

export function trainApi(engine: Pick<Engine, 'platform'>, session: Session): TrainApi {
  const w = new TrainWorkspace(engine, session);
  return {
    trainingSetup: () => w.setup(),
    startTraining: (plan, onEvent) => w.start(plan, onEvent),
    resumeTraining: (runId, onEvent) => w.resume(runId, onEvent),
    pauseTraining: async () => w.pause(),
    cancelTraining: async () => w.cancel(),
    discardCheckpoint: (runId) => w.discard(runId),
  };
}
