import type { Engine } from '../engine/engine';
import type { Session } from '../engine/session/session';
import { TrainingRuns, type TrainingSetup } from '../engine/session/training';
import type { TrainEvent, TrainOutcome } from '../engine/session/training-events';
import type { TrainPlan } from '../shared/train-plan';

export type { StepRecord, TrainProgress } from '../engine/train/trainer';
export type { MemoryEstimate } from '../shared/train-memory';
export type { TrainingModelInfo } from '../engine/train/plan';
export type { TrainDataSource, TrainPlan } from '../shared/train-plan';
export type { ResumableRun, TrainingSetup } from '../engine/session/training';
export type { TrainEvent, TrainOutcome, TrainPhase, TrainProblem } from '../engine/session/training-events';

/**
 * The Train page's side of the engine worker: comlink's face of the engine's TrainingRuns
 * (src/engine/session/training.ts). startTraining/resumeTraining resolve when the run stops, with an outcome;
 * what happens meanwhile arrives through `onEvent` (wrap it with Comlink.proxy). Failures travel as data,
 * because comlink rebuilds thrown errors with their message only.
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

export function trainApi(engine: Pick<Engine, 'platform'>, session: Session): TrainApi {
  const runs = new TrainingRuns(engine, session);
  return {
    trainingSetup: () => runs.setup(),
    startTraining: (plan, onEvent) => runs.start(plan, onEvent),
    resumeTraining: (runId, onEvent) => runs.resume(runId, onEvent),
    pauseTraining: async () => runs.pause(),
    cancelTraining: async () => runs.cancel(),
    discardCheckpoint: (runId) => runs.discard(runId),
  };
}
