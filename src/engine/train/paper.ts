import { DEFAULT_OPTIMIZER } from '../../shared/optimizer';
import { APP_TRAINING_CHOICES, PAPER_TRAINING, stepsForEpochs, type PaperPreset } from '../../shared/paper-training';
import type { TrainConfig } from './trainer';

/**
 * The trainer configuration of the paper's run (src/shared/paper-training.ts) for a preset: one epoch over `examples` examples, with
 * the app's choices where the paper is silent. `residDropout` is the model config's (Phi-2: 0.1), as
 * transformers applies it in training mode.
 */
export function paperTrainConfig(preset: PaperPreset, examples: number, residDropout: number): TrainConfig {
  const batchSize = PAPER_TRAINING.batchSize[preset];
  const app = APP_TRAINING_CHOICES;
  const totalSteps = stepsForEpochs(PAPER_TRAINING.epochs, examples, batchSize, app.gradAccumulation);
  return {
    lora: { ...PAPER_TRAINING.lora, targets: [...PAPER_TRAINING.lora.targets] },
    schedule: { kind: app.schedule, lr: PAPER_TRAINING.learningRate, warmupSteps: Math.min(app.warmupSteps, totalSteps), totalSteps },
    batchSize,
    gradAccumulation: app.gradAccumulation,
    maxLength: PAPER_TRAINING.maxLength,
    weightDecay: app.weightDecay,
    maxGradNorm: app.maxGradNorm,
    residDropout,
    seed: app.seed,
    checkpointEvery: app.checkpointEvery,
    maxNonFiniteSteps: app.maxNonFiniteSteps,
    optimizer: DEFAULT_OPTIMIZER,
    compute: 'f32',
    padding: 'buckets',
  };
}
