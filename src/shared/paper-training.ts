import { PAPER_LORA, type LoraSettings } from './lora';

/** How the learning rate moves over a run (engine/train/schedule.ts computes it). */
export type ScheduleKind = 'constant' | 'linear' | 'cosine';

/**
 * The paper's training settings, defined once. The Train page's presets (engine/train/plan.ts), the
 * CLI's `train` defaults and every constant named after the paper read them from here, and
 * test/unit/engine/train/paper.test.ts fails if any of them drifts.
 *
 * What the paper states (section 5): LoRA r 64, alpha 64, dropout 0.05 on all six linear layers of every
 * block; learning rate 2.5e-5; sequences of 512 tokens; one epoch; batch size 2 for instruction tuning and
 * 4 for symbol tuning, which continues the instruction adapter; the loss on every token of the template;
 * 8-bit AdamW (bitsandbytes). What it does not state is in APP_TRAINING_CHOICES. One deliberate
 * difference: the app's default optimiser is f32 AdamW (DEFAULT_OPTIMIZER), exact against the goldens;
 * the paper's 8-bit AdamW is an option of every run.
 */

export type PaperPreset = 'instruction' | 'symbol';

export interface PaperTraining {
  lora: Readonly<LoraSettings>;
  learningRate: number;
  /** Tokens per example; longer examples are cut at the end. */
  maxLength: number;
  epochs: number;
  batchSize: Readonly<Record<PaperPreset, number>>;
  lossOn: 'all';
  /** The paper's optimiser; the app offers it as an option and keeps f32 AdamW its default. */
  optimizer: 'adamw-8bit';
}

export const PAPER_TRAINING: Readonly<PaperTraining> = Object.freeze({
  lora: PAPER_LORA,
  learningRate: 2.5e-5,
  maxLength: 512,
  epochs: 1,
  batchSize: Object.freeze({ instruction: 2, symbol: 4 }),
  lossOn: 'all',
  optimizer: 'adamw-8bit',
});

export interface AppTrainingChoices {
  schedule: ScheduleKind;
  warmupSteps: number;
  weightDecay: number;
  /** Gradient-norm clipping threshold (0: off). */
  maxGradNorm: number;
  seed: number;
  gradAccumulation: number;
  /** Save a checkpoint every this many optimizer steps. */
  checkpointEvery: number;
  /** Stop after this many consecutive steps with NaN or infinite gradients. */
  maxNonFiniteSteps: number;
}

/**
 * What the paper does not say, chosen by the app: transformers' Trainer defaults (a linear schedule
 * without warm-up, no weight decay, gradients clipped at norm 1, seed 42, no accumulation), which a run
 * that left them unstated would have used. The UI and the README mark each as the app's choice.
 */
export const APP_TRAINING_CHOICES: Readonly<AppTrainingChoices> = Object.freeze({
  schedule: 'linear',
  warmupSteps: 0,
  weightDecay: 0,
  maxGradNorm: 1,
  seed: 42,
  gradAccumulation: 1,
  checkpointEvery: 50,
  maxNonFiniteSteps: 5,
});

/** Optimizer steps for `epochs` passes over `examples` examples, rounding the last partial step up. */
export function stepsForEpochs(epochs: number, examples: number, batchSize: number, gradAccumulation: number): number {
  return Math.max(1, Math.ceil((epochs * examples) / (batchSize * gradAccumulation)));
}
