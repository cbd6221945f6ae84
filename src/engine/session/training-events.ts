import { formatBytes } from '../../shared/bytes';
import type { AdapterInfo } from '../adapters/store';
import type { ComputePath } from '../model/phi2/frozen-linear';
import { StoreError } from '../store/errors';
import type { TrainingExamples } from '../train/examples';
import type { MemoryEstimate } from '../../shared/train-memory';
import type { TrainAllocationError } from '../train/train-adapter';
import { TrainingError, type StepRecord, type TrainProgress } from '../train/trainer';
import { ModelBusyError, SessionError } from './session';

/**
 * What a training run tells the Train page: its events while it runs, and how it ended. Failures
 * travel as data (a title, the full message, what to do), since a worker's RPC would keep the
 * message only; TrainProblemError carries one through the run's code to its outcome.
 */

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
      skipped: TrainingExamples['skipped'];
      estimate: MemoryEstimate;
      /** The frozen layers' matmuls: 'f32' (exact) or 'int8' (SwitchBack, see model/phi2/frozen-linear.ts). */
      compute: ComputePath;
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

export class TrainProblemError extends Error {
  constructor(readonly problem: TrainProblem) {
    super(problem.message);
  }
}

/** Any failure of a run as the page shows it. */
export function trainProblemOf(err: unknown): TrainProblem {
  if (err instanceof TrainProblemError) return err.problem;
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

/** The GPU refused the run's buffers: how much it needed, what the GPU allows, and smaller settings to try. */
export function allocationProblem(err: TrainAllocationError, estimate: MemoryEstimate, tips: string[]): TrainProblem {
  if (err.kind === 'buffer-too-large') {
    return {
      code: 'out-of-memory',
      title: 'A training buffer is larger than this GPU allows',
      message: `The GPU refused a buffer (${err.gpuMessage}). Single buffers may hold at most ${formatBytes(err.maxBufferSize)} here; this run needs about ${formatBytes(estimate.total)} in all. Nothing was trained.`,
      tips,
      estimate,
    };
  }
  return {
    code: 'out-of-memory',
    title: 'The GPU ran out of memory',
    message: `Allocating the training buffers failed (${err.gpuMessage}). This run needs about ${formatBytes(estimate.total)}; nothing was trained.`,
    tips,
    estimate,
  };
}
