import type { LoraSettings } from '../../shared/lora';
import { OptimizerStateError, type OptimizerState } from '../optim/adamw-state';
import { validateOptimizer, type OptimizerSettings } from '../../shared/optimizer';
import { readbackLater } from '../gpu/readback';
import { GRAD_STATS } from '../kernels/grad-norm';
import { residualAccumulate } from '../kernels/residual';
import { zeroTensor } from '../kernels/fill';
import type { Phi2Model } from '../model/phi2/forward';
import type { ComputePath } from '../model/phi2/frozen-linear';
import type { LoraState } from '../model/phi2/lora-state';
import { microBatchSeed, Phi2TrainStep } from '../model/phi2/train-step';
import { MAX_BUCKETS, nextBatch, PADDINGS, planRunBuckets, type DataPosition, type Padding, type TrainExample } from './batches';
import { learningRate, validateSchedule, type Schedule } from './schedule';

/**
 * The LoRA training loop: batches from a seeded order, gradient accumulation, a learning-rate
 * schedule, clipping and AdamW (f32 or 8-bit moments) on the GPU, NaN/Inf steps skipped and counted, pause, resume and
 * cancel between steps, checkpoints every N steps and on pause. Everything random derives from the
 * run's seed, the step and the data position, so a run resumed from a checkpoint ends with the same
 * adapter as one that never stopped. The loss is read back one step late, without stalling the GPU.
 */

export interface TrainConfig {
  lora: LoraSettings;
  schedule: Schedule;
  batchSize: number;
  gradAccumulation: number;
  maxLength: number;
  weightDecay: number;
  maxGradNorm: number;
  /** The model's residual dropout (Phi-2: 0.1); 0 disables it. */
  residDropout: number;
  seed: number;
  /** Save a checkpoint every this many optimizer steps (0: only on pause). */
  checkpointEvery: number;
  /** Stop after this many consecutive steps with NaN or infinite gradients. */
  maxNonFiniteSteps: number;
  /** AdamW with f32 moments (the default) or bitsandbytes' block-wise 8-bit moments (the paper's). */
  optimizer: OptimizerSettings;
  /** The frozen layers' matmuls: 'f32' (exact; the default, and what runs saved without it used) or 'int8'. */
  compute?: ComputePath;
  /**
   * How a batch is padded: 'buckets' (new runs) to one of at most MAX_BUCKETS lengths planned from the
   * run's batches, so each shape is recorded once and replayed (batches.ts); 'longest' to the batch's
   * longest sequence, which is what runs saved without this setting did: it reproduces them bit for bit.
   */
  padding?: Padding;
}

/**
 * A run's whole state. Version 2 holds the optimiser's state whatever its kind (`optimizer.kind` says
 * which); version 1 checkpoints (f32 AdamW moments as `expAvg`/`expAvgSq`) are read as version 2 by the
 * checkpoint store.
 */
export interface TrainCheckpoint {
  version: 2;
  config: TrainConfig;
  /** Optimizer steps completed. */
  step: number;
  position: DataPosition;
  params: Float32Array;
  optimizer: OptimizerState;
  nonFiniteRun: number;
  history: StepRecord[];
  elapsedMs: number;
}

export interface StepRecord {
  step: number;
  loss: number;
  gradNorm: number;
  lr: number;
  skipped: boolean;
}

export interface TrainProgress {
  step: number;
  totalSteps: number;
  last: StepRecord | null;
  /**
   * Tokens per second over this run's steps after its first (which also compiles the GPU kernels, and would
   * say little of the speed); over the first step alone until a second has finished.
   */
  tokensPerSecond: number;
  etaSeconds: number | null;
  elapsedMs: number;
}

export type TrainOutcome = 'finished' | 'paused' | 'cancelled';

export class TrainingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingError';
  }
}

export interface TrainerHooks {
  onStep?(record: StepRecord, progress: TrainProgress): void;
  saveCheckpoint?(checkpoint: TrainCheckpoint): Promise<void>;
  now(): number;
}

export class Trainer {
  private step = 0;
  private position: DataPosition = { epoch: 0, index: 0 };
  private nonFiniteRun = 0;
  private history: StepRecord[] = [];
  private elapsedBefore = 0;
  private request: 'pause' | 'cancel' | null = null;
  private readonly stepper: Phi2TrainStep;
  private readonly stepLoss;
  /** The padded lengths of this run's batches (null: each pads to its longest). */
  readonly buckets: readonly number[] | null;

  constructor(
    readonly model: Phi2Model,
    readonly lora: LoraState,
    readonly config: TrainConfig,
    readonly data: readonly TrainExample[],
    private readonly hooks: TrainerHooks,
  ) {
    const problems = [...validateSchedule(config.schedule)];
    if (!data.length) problems.push('the training set is empty.');
    if (!(config.batchSize >= 1 && config.gradAccumulation >= 1)) problems.push('batch size and gradient accumulation must be at least 1.');
    if (!(config.maxLength >= 2)) problems.push('the maximum length must be at least 2 tokens.');
    problems.push(...validateOptimizer(config.optimizer));
    if (config.padding !== undefined && !PADDINGS.includes(config.padding)) problems.push(`padding must be ${PADDINGS.join(' or ')} (got ${String(config.padding)}).`);
    if (problems.length) throw new TrainingError(`Training cannot start: ${problems.join(' ')}`);
    const longest = Math.min(config.maxLength, Math.max(...data.map((e) => e.input_ids.length)));
    // Planned over the whole run from its start, so a resumed run pads exactly as one that never stopped.
    this.buckets = (config.padding ?? 'longest') === 'buckets' ? planRunBuckets(data, config.seed, config.batchSize, config.schedule.totalSteps * config.gradAccumulation, config.maxLength, MAX_BUCKETS) : null;
    lora.enableTraining(config.optimizer);
    this.stepper = new Phi2TrainStep(model, lora, config.batchSize, longest, { compute: config.compute ?? 'f32' });
    this.stepLoss = model.gpu.tensor('step_loss', [1]);
  }

  /** Continues from a checkpoint of the same run (same data, settings and model). */
  restore(c: TrainCheckpoint): void {
    if (c.version !== 2) throw new TrainingError(`checkpoint version ${c.version} is not supported`);
    try {
      this.lora.optimizer!.write(c.optimizer);
    } catch (err) {
      if (err instanceof OptimizerStateError) throw new TrainingError(`This checkpoint cannot continue the run: ${err.message}`);
      throw err;
    }
    this.lora.setFlat('params', c.params);
    this.step = c.step;
    this.position = { ...c.position };
    this.nonFiniteRun = c.nonFiniteRun;
    this.history = [...c.history];
    this.elapsedBefore = c.elapsedMs;
  }

  pause(): void {
    this.request ??= 'pause';
  }

  cancel(): void {
    this.request = 'cancel';
  }

  /** The frozen layers' compute path of this run's steps. */
  get compute(): ComputePath {
    return this.stepper.compute;
  }

  /** Micro-steps recorded so far (the rest were replays of a recorded shape). */
  get microStepRecordings(): number {
    return this.stepper.microStepRecordings;
  }

  get completedSteps(): number {
    return this.step;
  }

  async run(): Promise<TrainOutcome> {
    const { config, model } = this;
    const gpu = model.gpu;
    const total = config.schedule.totalSteps;
    const started = this.hooks.now();
    const firstStep = this.step;
    let tokens = 0;
    let pending: Promise<void> | null = null;
    /** When the run's first step had finished, and the tokens it held: the rates are measured from there. */
    const warm: { at: number; tokens: number } = { at: NaN, tokens: 0 };
    this.request = null;
    while (this.step < total) {
      if (this.request) break;
      // One optimizer step: gradAccumulation micro-batches, the mean over all their counted labels.
      const micro = [];
      let position = this.position;
      for (let m = 0; m < config.gradAccumulation; m++) {
        const b = nextBatch(this.data, config.seed, position, config.batchSize, config.maxLength, this.buckets ?? undefined);
        micro.push(b);
        position = b.next;
      }
      const labelCount = micro.reduce((s, b) => s + this.stepper.countLabels(b.batch), 0);
      const step = this.step;
      const lr = learningRate(config.schedule, step);
      zeroTensor(gpu, this.stepLoss);
      if (labelCount > 0) {
        micro.forEach((b, m) => {
          this.stepper.microStep(b.batch, {
            residDropout: config.residDropout,
            loraDropout: config.lora.dropout,
            seed: microBatchSeed(config.seed, step, m),
            labelCount,
          });
          residualAccumulate(gpu, this.stepLoss, this.stepper.loss, 1);
        });
        this.stepper.optimizerStep({ lr, step: step + 1, weightDecay: config.weightDecay, maxGradNorm: config.maxGradNorm });
      }
      gpu.encoder.submit();
      tokens += micro.reduce((s, b) => s + b.tokens, 0);
      this.position = position;
      this.step = step + 1;
      // Look at the previous step's numbers while this one runs.
      if (pending) await pending;
      const timing = { started, tokens, stepsThisRun: this.step - firstStep, warm };
      pending = labelCount > 0 ? this.record(step, lr, timing) : Promise.resolve(this.recordEmpty(step, lr));
      if (config.checkpointEvery > 0 && this.step % config.checkpointEvery === 0 && this.step < total) {
        await pending;
        pending = null;
        await this.checkpoint(started);
      }
    }
    if (pending) await pending;
    if (this.request === 'cancel') return 'cancelled';
    if (this.step < total) {
      await this.checkpoint(started);
      return 'paused';
    }
    return 'finished';
  }

  private recordEmpty(step: number, lr: number): void {
    // A step whose batches hold no labels (all -100 after truncation) teaches nothing: skipped.
    this.history.push({ step: step + 1, loss: NaN, gradNorm: 0, lr, skipped: true });
  }

  private async record(step: number, lr: number, timing: { started: number; tokens: number; stepsThisRun: number; warm: { at: number; tokens: number } }): Promise<void> {
    const [loss, stats] = await readbackLater(this.model.gpu.device, [this.stepLoss, this.stepper.stats]);
    const nonFinite = stats[GRAD_STATS.nonFinite] !== 0 || !Number.isFinite(loss[0]);
    const rec: StepRecord = { step: step + 1, loss: loss[0], gradNorm: stats[GRAD_STATS.norm], lr, skipped: nonFinite };
    this.history.push(rec);
    this.nonFiniteRun = nonFinite ? this.nonFiniteRun + 1 : 0;
    const now = this.hooks.now();
    const elapsed = now - timing.started;
    const { warm } = timing;
    if (timing.stepsThisRun === 1) {
      warm.at = now;
      warm.tokens = timing.tokens;
    }
    // After the first step the rate leaves it out: its time is mostly compiling kernels, once per model load.
    const since = timing.stepsThisRun > 1 && Number.isFinite(warm.at) ? now - warm.at : elapsed;
    const tokensSince = timing.stepsThisRun > 1 && Number.isFinite(warm.at) ? timing.tokens - warm.tokens : timing.tokens;
    const msPerStep = since / (timing.stepsThisRun > 1 && Number.isFinite(warm.at) ? timing.stepsThisRun - 1 : timing.stepsThisRun);
    this.hooks.onStep?.(rec, {
      step: rec.step,
      totalSteps: this.config.schedule.totalSteps,
      last: rec,
      tokensPerSecond: since > 0 ? (tokensSince / since) * 1000 : 0,
      etaSeconds: since > 0 ? ((this.config.schedule.totalSteps - rec.step) * msPerStep) / 1000 : null,
      elapsedMs: this.elapsedBefore + elapsed,
    });
    if (this.nonFiniteRun >= this.config.maxNonFiniteSteps) {
      throw new TrainingError(
        `Training stopped: ${this.nonFiniteRun} steps in a row had NaN or infinite gradients (the weights were left as they were before them). ` +
          'Lower the learning rate, or check the data for empty or extreme examples.',
      );
    }
  }

  /** The run's full state, read back from the GPU. */
  async snapshot(elapsedMs = 0): Promise<TrainCheckpoint> {
    return {
      version: 2,
      config: this.config,
      step: this.step,
      position: { ...this.position },
      params: await this.lora.readFlat('params'),
      optimizer: await this.lora.optimizer!.read(),
      nonFiniteRun: this.nonFiniteRun,
      history: [...this.history],
      elapsedMs: this.elapsedBefore + elapsedMs,
    };
  }

  private async checkpoint(started: number): Promise<void> {
    if (!this.hooks.saveCheckpoint) return;
    await this.hooks.saveCheckpoint(await this.snapshot(this.hooks.now() - started));
  }

  get records(): readonly StepRecord[] {
    return this.history;
  }

  destroy(): void {
    this.stepper.destroy();
    this.stepLoss.buffer.destroy();
  }
}
