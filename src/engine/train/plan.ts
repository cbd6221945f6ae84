import { DEFAULT_OPTIMIZER } from '../../shared/optimizer';
import { APP_TRAINING_CHOICES } from '../../shared/paper-training';
import { totalStepsOf, type TrainPlan } from '../../shared/train-plan';
import type { ModelShape } from '../../shared/train-memory';
import type { TrainConfig } from './trainer';

/**
 * A plan (src/shared/train-plan.ts) as the trainer runs it (its memory: memory.ts planMemory).
 */

/** The model a plan is checked against and sized for. */
export interface TrainingModelInfo {
  id: string;
  name: string;
  weightMode: 'int8' | 'f16';
  shape: ModelShape;
  maxPositions: number;
  residDropout: number;
}

/** The trainer's configuration of a plan over `examples` examples. */
export function trainConfigOf(plan: TrainPlan, examples: number, residDropout: number): TrainConfig {
  const totalSteps = totalStepsOf(plan, examples);
  return {
    lora: plan.lora,
    schedule: { kind: plan.schedule.kind, lr: plan.schedule.lr, warmupSteps: Math.min(plan.schedule.warmupSteps, totalSteps), totalSteps },
    batchSize: plan.batchSize,
    gradAccumulation: plan.gradAccumulation,
    maxLength: plan.maxLength,
    weightDecay: plan.weightDecay,
    maxGradNorm: plan.maxGradNorm,
    residDropout,
    seed: plan.seed,
    checkpointEvery: plan.checkpointEvery,
    maxNonFiniteSteps: APP_TRAINING_CHOICES.maxNonFiniteSteps,
    optimizer: plan.optimizer ?? DEFAULT_OPTIMIZER,
    compute: plan.compute ?? 'f32',
    padding: 'buckets',
  };
}
