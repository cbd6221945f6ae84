import { COMPUTE_PATHS, type ComputePath } from './compute';
import { validateLoraSettings, type LoraSettings } from './lora';
import { DEFAULT_OPTIMIZER, validateOptimizer, type OptimizerSettings } from './optimizer';
import { APP_TRAINING_CHOICES, PAPER_TRAINING, stepsForEpochs, type PaperPreset, type ScheduleKind } from './paper-training';

/**
 * A training run as the Train page describes it, the paper's presets, and the checks and numbers the
 * page and the engine share (the plan's problems, its step count, layer lists as people type them).
 * engine/train/plan.ts turns a plan into the trainer's configuration and its memory estimate.
 */

/** Where the examples come from. */
export type TrainDataSource = { kind: 'saved'; id: string } | { kind: 'demo' };

export interface TrainPlan {
  /** Name of the adapter the run produces. */
  name: string;
  preset: PaperPreset | 'custom';
  data: TrainDataSource;
  /** Loss on every token (the paper) or on the response (completion) only. */
  lossOn: 'all' | 'response';
  /** End every example with <|endoftext|> so the model learns to stop. */
  appendEos: boolean;
  /** Start from this stored adapter's weights (symbol tuning continues the instruction adapter). */
  baseAdapterId: string | null;
  lora: LoraSettings;
  schedule: { kind: ScheduleKind; lr: number; warmupSteps: number };
  /** Run length: optimizer steps, or passes over the data. */
  length: { unit: 'steps'; steps: number } | { unit: 'epochs'; epochs: number };
  batchSize: number;
  gradAccumulation: number;
  maxLength: number;
  weightDecay: number;
  /** 0 disables clipping. */
  maxGradNorm: number;
  seed: number;
  /** Checkpoint every this many steps (0: only on pause). */
  checkpointEvery: number;
  /** The GPU memory the user says the card has, checked against the estimate before anything is allocated. */
  gpuMemoryBytes: number | null;
  /** f32 AdamW (the default) or the paper's 8-bit AdamW. Absent in plans saved before it existed: f32. */
  optimizer?: OptimizerSettings;
  /** The frozen layers' matmuls: 'f32' (exact, the default) or 'int8' (SwitchBack). Absent: f32. */
  compute?: ComputePath;
}

// ---------------------------------------------------------------------------------------------------
// The paper's presets

/**
 * A preset: the paper's settings (paper-training.ts) with the app's choices where the paper is
 * silent. Instruction tuning starts a fresh adapter with batch size 2; symbol tuning continues an
 * instruction adapter's weights with batch size 4; both run one epoch over the chosen data.
 */
export function paperPlan(preset: PaperPreset, data: TrainDataSource, baseAdapterId: string | null = null): TrainPlan {
  const app = APP_TRAINING_CHOICES;
  return {
    name: preset === 'instruction' ? 'phi-2-instruction' : 'phi-2-instruction-symbol',
    preset,
    data,
    lossOn: PAPER_TRAINING.lossOn,
    appendEos: false,
    baseAdapterId: preset === 'symbol' ? baseAdapterId : null,
    lora: { ...PAPER_TRAINING.lora, targets: [...PAPER_TRAINING.lora.targets] },
    schedule: { kind: app.schedule, lr: PAPER_TRAINING.learningRate, warmupSteps: app.warmupSteps },
    length: { unit: 'epochs', epochs: PAPER_TRAINING.epochs },
    batchSize: PAPER_TRAINING.batchSize[preset],
    gradAccumulation: app.gradAccumulation,
    maxLength: PAPER_TRAINING.maxLength,
    weightDecay: app.weightDecay,
    maxGradNorm: app.maxGradNorm,
    seed: app.seed,
    checkpointEvery: app.checkpointEvery,
    gpuMemoryBytes: null,
    optimizer: DEFAULT_OPTIMIZER,
  };
}

// ---------------------------------------------------------------------------------------------------
// Checking a plan

function isInt(v: number, min: number, max = Infinity): boolean {
  return Number.isInteger(v) && v >= min && v <= max;
}

/** Every problem with a plan, as sentences (empty when it can run); the page shows them by its fields. */
export function planProblems(plan: TrainPlan, model: { shape: { layers: number }; maxPositions: number } | null): string[] {
  const p: string[] = [];
  if (!plan.name.trim()) p.push('Give the adapter a name.');
  p.push(...validateLoraSettings(plan.lora, model?.shape.layers ?? Infinity));
  if (!(plan.schedule.lr > 0 && plan.schedule.lr < 1)) p.push(`The learning rate must be above 0 and below 1 (got ${plan.schedule.lr}).`);
  if (!isInt(plan.schedule.warmupSteps, 0)) p.push('Warm-up must be a whole number of steps, 0 or more.');
  if (plan.length.unit === 'steps' && !isInt(plan.length.steps, 1, 10_000_000)) p.push('Steps must be a whole number from 1.');
  if (plan.length.unit === 'epochs' && !(plan.length.epochs > 0 && plan.length.epochs <= 1000)) p.push('Epochs must be above 0 (fractions are fine) and at most 1000.');
  if (!isInt(plan.batchSize, 1, 256)) p.push('Batch size must be a whole number from 1 to 256.');
  if (!isInt(plan.gradAccumulation, 1, 1024)) p.push('Gradient accumulation must be a whole number from 1 to 1024.');
  const maxPositions = model?.maxPositions ?? 2048;
  if (!isInt(plan.maxLength, 2, maxPositions)) p.push(`Maximum length must be a whole number of tokens from 2 to ${maxPositions} (the model's context).`);
  if (!(plan.weightDecay >= 0 && plan.weightDecay < 1)) p.push('Weight decay must be at least 0 and below 1.');
  if (!(plan.maxGradNorm >= 0 && Number.isFinite(plan.maxGradNorm))) p.push('Gradient clipping must be 0 (off) or a positive number.');
  if (!isInt(plan.seed, 0, 2 ** 32 - 1)) p.push('The seed must be a whole number from 0 to 4294967295.');
  if (!isInt(plan.checkpointEvery, 0)) p.push('The checkpoint interval must be a whole number of steps (0: only when pausing).');
  if (plan.preset === 'symbol' && !plan.baseAdapterId) p.push('Symbol tuning continues an instruction adapter: choose one.');
  if (plan.gpuMemoryBytes !== null && !(plan.gpuMemoryBytes > 0)) p.push('The stated GPU memory must be a positive number.');
  if (plan.optimizer) p.push(...validateOptimizer(plan.optimizer));
  if (plan.compute !== undefined && !COMPUTE_PATHS.includes(plan.compute)) p.push(`Unknown compute path ${JSON.stringify(plan.compute)}: use "f32" or "int8".`);
  return p;
}

/** Optimizer steps of a plan over `examples` examples. */
export function totalStepsOf(plan: TrainPlan, examples: number): number {
  if (plan.length.unit === 'steps') return plan.length.steps;
  return stepsForEpochs(plan.length.epochs, examples, plan.batchSize, plan.gradAccumulation);
}

// ---------------------------------------------------------------------------------------------------
// Layer lists as people type them

/** "0-3, 8, 30-31" → [0, 1, 2, 3, 8, 30, 31]; null when it does not parse. */
export function parseLayers(text: string): number[] | null {
  const out = new Set<number>();
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(part);
    if (!m) return null;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b - a > 10_000) return null;
    for (let i = a; i <= b; i++) out.add(i);
  }
  return out.size ? [...out].sort((x, y) => x - y) : null;
}

/** [0, 1, 2, 3, 8] → "0-3, 8". */
export function formatLayers(layers: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < layers.length; ) {
    let j = i;
    while (j + 1 < layers.length && layers[j + 1] === layers[j] + 1) j++;
    parts.push(i === j ? `${layers[i]}` : `${layers[i]}-${layers[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}
