import { encodeAdapter, type AdapterFiles } from '../adapters/files';
import type { Phi2Model } from '../model/phi2/forward';
import { LoraState } from '../model/phi2/lora-state';
import { SeededRandom } from '../random';
import type { TrainExample } from './batches';
import { Trainer, type StepRecord, type TrainCheckpoint, type TrainConfig, type TrainerHooks } from './trainer';

/**
 * The one way the engine trains a LoRA adapter, for the worker's training runs and the CLI alike: from
 * tokenised examples and a run's settings to the adapter's PEFT files. It puts the adapter on the GPU
 * (PEFT's initialisation drawn from the run's seed, a stored adapter's weights to continue, or a
 * checkpoint's state to resume), allocates every training buffer inside GPU error scopes, runs the
 * Trainer (checkpoints through the caller's hook), and encodes the result. Whatever it allocated is freed
 * on every way out.
 */

/** Where the adapter's weights start. */
export type AdapterStart =
  /** PEFT's initialisation (A uniform in ±1/sqrt(in), B zero), drawn from the run's seed. */
  | { kind: 'seed' }
  /** A stored adapter's PEFT tensors, of the same rank, alpha, targets and layers (symbol tuning continues one). */
  | { kind: 'weights'; tensors: ReadonlyMap<string, { data: Float32Array }> }
  /** The run's own checkpoint: weights, optimiser state, step and data position. */
  | { kind: 'checkpoint'; checkpoint: TrainCheckpoint };

export interface TrainAdapterOptions extends TrainerHooks {
  model: Phi2Model;
  config: TrainConfig;
  examples: readonly TrainExample[];
  start: AdapterStart;
  /** The base model's name, written into adapter_config.json. */
  baseModel: string | null;
  /** Called once the buffers exist, before the first step: the caller pauses or cancels the run through it. */
  onReady?(trainer: Trainer): void;
  /** A pause or cancel asked for before the trainer existed (while the data was prepared): honoured before the first step. */
  stopRequested?(): 'pause' | 'cancel' | null;
  /** Runs the training loop with exclusive use of the model (the session's lock); by default it just runs. */
  exclusive?<T>(task: () => Promise<T>): Promise<T>;
}

export type TrainAdapterResult =
  | { status: 'finished'; files: AdapterFiles; history: StepRecord[] }
  /** `unsaved`: the state of a run paused before its first step, which no checkpoint holds yet (null otherwise). */
  | { status: 'paused'; step: number; unsaved: TrainCheckpoint | null }
  | { status: 'cancelled' };

/** The GPU refused the training buffers: out of memory, or a buffer past the device's size limit. */
export class TrainAllocationError extends Error {
  override name = 'TrainAllocationError';
  constructor(
    readonly kind: 'out-of-memory' | 'buffer-too-large',
    /** The GPU's own words. */
    readonly gpuMessage: string,
    /** The device's largest buffer. */
    readonly maxBufferSize: number,
  ) {
    super(kind === 'out-of-memory' ? `The GPU ran out of memory allocating the training buffers (${gpuMessage}).` : `The GPU refused a training buffer (${gpuMessage}).`);
  }
}

/** The random numbers of a fresh adapter's initialisation: one stream of the engine's generator, keyed by the seed. */
export function loraInitRandom(seed: number): () => number {
  const random = SeededRandom.from(seed >>> 0, 'lora-init');
  return () => random.nextFloat();
}

export async function trainAdapter(o: TrainAdapterOptions): Promise<TrainAdapterResult> {
  const { config, start } = o;
  const { lora, trainer } = await allocate(o);
  try {
    o.onReady?.(trainer);
    const request = o.stopRequested?.() ?? null;
    if (request === 'cancel') return { status: 'cancelled' };
    if (request === 'pause') {
      return { status: 'paused', step: trainer.completedSteps, unsaved: start.kind === 'checkpoint' ? null : await trainer.snapshot() };
    }
    const run = () => trainer.run();
    const outcome = await (o.exclusive ? o.exclusive(run) : run());
    if (outcome === 'paused') return { status: 'paused', step: trainer.completedSteps, unsaved: null };
    if (outcome === 'cancelled') return { status: 'cancelled' };
    const files = encodeAdapter(config.lora, o.baseModel, lora.unflatten(await lora.readFlat('params')));
    return { status: 'finished', files, history: [...trainer.records] };
  } finally {
    trainer.destroy();
    lora.destroy();
  }
}

/**
 * The adapter and the trainer's buffers, allocated inside out-of-memory and validation error scopes:
 * browsers do not tell how much memory a GPU has, so everything is allocated up front and the answer
 * listened for. A buffer past the device's size limits is a validation error, caught the same way.
 */
async function allocate(o: TrainAdapterOptions): Promise<{ lora: LoraState; trainer: Trainer }> {
  const { model, config, start } = o;
  const device = model.gpu.device;
  device.pushErrorScope('validation');
  device.pushErrorScope('out-of-memory');
  let lora: LoraState | null = null;
  let trainer: Trainer | null = null;
  let constructionError: unknown = null;
  try {
    lora = new LoraState(model.gpu, model.dims, config.lora);
    // A checkpoint's weights and moments are restored once the trainer exists.
    if (start.kind === 'seed') lora.initialise(loraInitRandom(config.seed));
    else if (start.kind === 'weights') lora.setWeights((name) => start.tensors.get(name)!.data);
    trainer = new Trainer(model, lora, config, o.examples, { now: o.now, onStep: o.onStep, saveCheckpoint: o.saveCheckpoint });
    if (start.kind === 'checkpoint') trainer.restore(start.checkpoint);
  } catch (err) {
    constructionError = err;
  }
  const oom = await device.popErrorScope();
  const invalid = await device.popErrorScope();
  if (oom || invalid || constructionError) {
    trainer?.destroy();
    lora?.destroy();
    if (constructionError) throw constructionError;
    if (invalid) throw new TrainAllocationError('buffer-too-large', invalid.message, device.limits.maxBufferSize);
    throw new TrainAllocationError('out-of-memory', oom!.message, device.limits.maxBufferSize);
  }
  return { lora: lora!, trainer: trainer! };
}
