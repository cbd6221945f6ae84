import { formatBytes } from '../../shared/bytes';
import { describeOptimizer } from '../../shared/optimizer';
import { decodeAdapter } from '../adapters/files';
import { AdapterStore, type AdapterInfo } from '../adapters/store';
import type { Engine } from '../engine';
import { UserDataStore, type SavedDatasetInfo } from '../store/datasets';
import { CheckpointStore } from '../train/checkpoints';
import { DEMO_DESCRIPTION, DEMO_ROWS } from '../train/demo-set';
import { examplesFingerprint } from '../train/examples';
import { suggestSmaller, planMemory } from '../../shared/train-memory';
import { trainConfigOf, type TrainingModelInfo } from '../train/plan';
import { planProblems, type TrainPlan } from '../../shared/train-plan';
import { TrainAllocationError, trainAdapter, type AdapterStart } from '../train/train-adapter';
import type { TrainCheckpoint, TrainConfig, Trainer } from '../train/trainer';
import { hubIdOf } from '../weights/presets';
import { withModel, type LoadedModel, type Session } from './session';
import { prepareTrainingData, type PreparedData } from './training-data';
import { allocationProblem, TrainProblemError, trainProblemOf, type TrainEvent, type TrainOutcome } from './training-events';

/**
 * LoRA training runs on the session's model, as the Train page starts them: from a dataset saved on the
 * Data page (or the built-in demo set), with checkpoints in IndexedDB so that a run paused, or cut short
 * by a reload, resumes exactly where it stopped (train/checkpoints.ts), and the finished adapter saved to the
 * adapters store and loaded beside the model for the Evaluate and Demo pages. The training itself is
 * trainAdapter (train/train-adapter.ts), which the CLI calls too.
 *
 * One run at a time. start/resume resolve when the run stops (finished, paused, cancelled or failed)
 * with an outcome; what happens meanwhile arrives through `onEvent`. Failures are returned as data with a
 * title, the full message and what to do (a worker's RPC would keep the message only). The run holds the
 * model (withModel) so an evaluation or a demo cannot interleave with it.
 */

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

interface Job {
  runId: string;
  name: string;
  trainer: Trainer | null;
  /** Asked before the trainer exists (while tokenizing or loading): honoured as soon as it does. */
  request: 'pause' | 'cancel' | null;
}

export class TrainingRuns {
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

  /** The Hub id an adapter trained on a stored model names as its base (a folder's name only when nothing better says). */
  private async hubModelId(id: string, name: string): Promise<string> {
    const manifest = await (await this.session.store()).getModel(id).catch(() => undefined);
    return (manifest && hubIdOf(manifest)) ?? name;
  }

  private async modelName(id: string): Promise<string> {
    const manifest = await (await this.session.store()).getModel(id).catch(() => undefined);
    return manifest?.name ?? id;
  }

  /** The loaded model, saved datasets, stored adapters (to continue from) and runs that can be resumed. */
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
    if (this.job) throw new TrainProblemError({ code: 'busy', title: 'A run is already going', message: `"${this.job.name}" is training. Pause or cancel it first.` });
    this.job = { runId, name, trainer: null, request: null };
    return this.job;
  }

  /** Stops after the current step and saves a checkpoint; the run's promise resolves with 'paused'. */
  pause(): void {
    if (!this.job) return;
    this.job.request ??= 'pause';
    this.job.trainer?.pause();
  }

  /** Stops after the current step and forgets the run (its checkpoint is deleted). */
  cancel(): void {
    if (!this.job) return;
    this.job.request = 'cancel';
    this.job.trainer?.cancel();
  }

  /** Deletes a paused run's checkpoint. */
  async discard(runId: string): Promise<void> {
    if (this.job?.runId === runId) throw new Error('That run is training now: cancel it instead.');
    await (await this.checkpoints()).delete(runId);
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
      if (problems.length) throw new TrainProblemError({ code: 'invalid', title: 'Some settings need changing', message: problems.join(' ') });
      const data = await prepareTrainingData(this.engine.platform.indexedDB, plan, loaded, emit);
      const config = trainConfigOf(plan, data.examples.length, model.residDropout);
      const meta: RunMeta = {
        plan,
        modelId: loaded.id,
        modelName,
        weightMode: loaded.weightMode,
        datasetName: data.name,
        data: { examples: data.examples.length, tokens: data.tokens, fingerprint: examplesFingerprint(data.examples) },
        startedAt: Date.now(),
      };
      const start: AdapterStart = plan.baseAdapterId ? await this.baseAdapter(plan, loaded) : { kind: 'seed' };
      return await this.run(job, loaded, model, config, data, meta, start, emit);
    } catch (err) {
      return { status: 'failed', runId, problem: trainProblemOf(err) };
    } finally {
      if (job && this.job === job) this.job = null;
    }
  }

  /** Continues a run from its checkpoint (loading its model first when another, or none, is on the GPU). */
  async resume(runId: string, onEvent?: (e: TrainEvent) => void): Promise<TrainOutcome> {
    const emit = (e: TrainEvent) => onEvent?.(e);
    let job: Job | null = null;
    try {
      const stored = await (await this.checkpoints()).load(runId);
      if (!stored) throw new TrainProblemError({ code: 'data', title: 'No such run', message: 'That run has no checkpoint any more: it finished, or was discarded in another tab.' });
      const { checkpoint, meta } = stored;
      job = this.claim(runId, meta.plan.name);
      let loaded = this.session.loaded;
      if (loaded?.id !== meta.modelId) {
        emit({ kind: 'phase', phase: 'loading-model', message: `Loading ${meta.modelName} onto the GPU` });
        try {
          loaded = await this.session.load(meta.modelId, (p) => emit({ kind: 'phase', phase: 'loading-model', message: `Loading ${meta.modelName} onto the GPU`, done: p.bytesDone, total: p.bytesTotal }));
        } catch (err) {
          throw new TrainProblemError({ code: 'no-model', title: `The run needs ${meta.modelName}`, message: `${(err as Error).message} The run was started on ${meta.modelName}; it continues only on that model.` });
        }
      }
      if (job.request === 'cancel') return await this.forget(runId);
      const model = this.modelInfo(loaded, meta.modelName);
      const data = await prepareTrainingData(this.engine.platform.indexedDB, meta.plan, loaded, emit);
      const now = examplesFingerprint(data.examples);
      if (now !== meta.data.fingerprint || data.examples.length !== meta.data.examples) {
        throw new TrainProblemError({
          code: 'changed',
          title: 'The dataset changed since the run started',
          message:
            `"${data.name}" now gives ${data.examples.length} examples (${data.tokens} tokens); the run started with ${meta.data.examples} (${meta.data.tokens} tokens). ` +
            'A resumed run must see the same data to continue exactly. Start a new run, or discard this one.',
        });
      }
      return await this.run(job, loaded, model, checkpoint.config, data, meta, { kind: 'checkpoint', checkpoint }, emit);
    } catch (err) {
      return { status: 'failed', runId, problem: trainProblemOf(err) };
    } finally {
      if (job && this.job === job) this.job = null;
    }
  }

  /** A stored adapter's weights for the symbol-tuning preset, checked against the model and the plan. */
  private async baseAdapter(plan: TrainPlan, loaded: LoadedModel): Promise<AdapterStart> {
    const store = await this.adapters();
    const info = await store.get(plan.baseAdapterId!);
    const decoded = decodeAdapter(await store.files(info.id), { hidden: loaded.dims.hidden, intermediate: loaded.dims.intermediate, layers: loaded.dims.layers });
    const a = decoded.settings;
    const same = (x: readonly unknown[] | 'all', y: readonly unknown[] | 'all') => JSON.stringify(x) === JSON.stringify(y);
    if (a.r !== plan.lora.r || a.alpha !== plan.lora.alpha || a.useRslora !== plan.lora.useRslora || !same(a.targets, plan.lora.targets) || !same(a.layers, plan.lora.layers)) {
      throw new TrainProblemError({
        code: 'invalid',
        title: 'The LoRA settings differ from the adapter being continued',
        message: `"${info.name}" has r ${a.r}, alpha ${a.alpha}${a.useRslora ? ' (rsLoRA)' : ''}, targets ${a.targets.join(', ')}, layers ${a.layers === 'all' ? 'all' : a.layers.join(', ')}. ` +
          'Continuing it needs the same rank, alpha, targets and layers (only dropout may change).',
      });
    }
    return { kind: 'weights', tensors: decoded.tensors };
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
    start: AdapterStart,
    emit: (e: TrainEvent) => void,
  ): Promise<TrainOutcome> {
    const { runId } = job;
    if (job.request === 'cancel') return this.forget(runId);
    const { estimate, shape } = planMemory(meta.plan, model);
    if (meta.plan.gpuMemoryBytes !== null && estimate.total > meta.plan.gpuMemoryBytes) {
      throw new TrainProblemError({
        code: 'memory',
        title: 'This run does not fit the GPU memory you stated',
        message: `It needs about ${formatBytes(estimate.total)} and you stated ${formatBytes(meta.plan.gpuMemoryBytes)}.`,
        tips: suggestSmaller(model.shape, shape, meta.plan.gpuMemoryBytes),
        estimate,
      });
    }
    const store = await this.checkpoints();
    emit({ kind: 'phase', phase: 'allocating', message: 'Allocating the training buffers on the GPU' });
    const baseModel = await this.hubModelId(meta.modelId, meta.modelName);
    let result;
    try {
      result = await trainAdapter({
        model: loaded.model,
        config,
        examples: data.examples,
        start,
        baseModel,
        now: () => this.engine.platform.now(),
        onStep: (record, progress) => emit({ kind: 'step', record, progress }),
        saveCheckpoint: async (c: TrainCheckpoint) => {
          emit({ kind: 'phase', phase: 'checkpointing', message: `Saving a checkpoint at step ${c.step}` });
          await store.save(runId, c, meta);
          emit({ kind: 'checkpoint', step: c.step, savedAt: Date.now() });
          emit({ kind: 'phase', phase: 'training', message: 'Training' });
        },
        onReady: (trainer) => {
          job.trainer = trainer;
          emit({
            kind: 'started',
            runId,
            name: meta.plan.name,
            totalSteps: config.schedule.totalSteps,
            history: [...trainer.records],
            examples: data.examples.length,
            tokens: data.tokens,
            skipped: data.skipped,
            estimate,
            compute: trainer.compute,
          });
          emit({ kind: 'phase', phase: 'training', message: 'Training' });
        },
        // Read afresh: messages were handled at every await since the check above.
        stopRequested: () => job.request,
        exclusive: (task) => withModel(loaded.generator, `training "${meta.plan.name}"`, task),
      });
    } catch (err) {
      if (!(err instanceof TrainAllocationError)) throw err;
      throw new TrainProblemError(allocationProblem(err, estimate, suggestSmaller(model.shape, shape, estimate.total - 1)));
    } finally {
      job.trainer = null;
    }
    if (result.status === 'cancelled') return this.forget(runId);
    if (result.status === 'paused') {
      if (result.unsaved) await store.save(runId, result.unsaved, meta);
      return { status: 'paused', runId, step: result.step, totalSteps: config.schedule.totalSteps };
    }
    emit({ kind: 'phase', phase: 'saving-adapter', message: 'Saving the adapter' });
    const adapters = await this.adapters();
    const info = await adapters.put(result.files, {
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
    let loadedBeside = false;
    try {
      this.session.addAdapter(info.id, result.files);
      this.session.activeAdapter = info.id;
      loadedBeside = true;
    } catch {
      // Saved but not on the GPU (the model went away meanwhile): the Adapters page can load it.
    }
    await store.delete(runId).catch(() => undefined);
    return { status: 'finished', runId, adapter: info, loaded: loadedBeside, history: result.history };
  }
}
