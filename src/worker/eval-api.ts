import type { Engine } from '../engine/engine';
import { Evaluations } from '../engine/session/evaluations';
import type {
  EvaluationOutcome,
  EvaluationPlan,
  EvaluationProgress,
  EvaluationRequest,
  EvaluationSetup,
  EvaluationTargets,
  ResumableEvaluation,
} from '../engine/eval/requests';
import type { HandScore } from '../engine/eval/results';
import type { StoredRun, StoredRunSummary } from '../engine/eval/results-store';
import type { Session } from '../engine/session/session';
import { SavedDatasets } from '../engine/data/saved';

/**
 * The Evaluate page's side of the engine worker: comlink's face of the engine's Evaluations
 * (src/engine/session/evaluations.ts), which plans, runs, resumes and keeps evaluations.
 */
export interface EvalApi {
  /** What can be evaluated: bundled tasks, formats, BIG-bench categories, saved datasets, the paper's numbers. */
  evaluationSetup(dataUrl: string): Promise<EvaluationSetup>;
  /** The model on the GPU and the adapters loaded beside it; also what holds the model now, if anything. */
  evaluationTargets(): Promise<EvaluationTargets>;
  /** The items and work of a request, with time estimates, without running anything. */
  planEvaluation(request: EvaluationRequest): Promise<EvaluationPlan>;
  /**
   * Runs a request: every chosen model (base and/or adapters) on the same items, one after another,
   * each run's items saved a batch at a time as they finish.
   */
  runEvaluation(request: EvaluationRequest, onProgress?: (progress: EvaluationProgress) => void): Promise<EvaluationOutcome>;
  /** Goes on with a request cut short by a reload, a closed tab or a failure, under a new job id. */
  resumeEvaluation(jobId: string, groupId: string, onProgress?: (progress: EvaluationProgress) => void): Promise<EvaluationOutcome>;
  /** Requests that stopped part way and can be resumed. */
  resumableEvaluations(): Promise<ResumableEvaluation[]>;
  /** Gives up a resumable request (its finished items stay saved). */
  discardEvaluation(groupId: string): Promise<void>;
  /** Stops a running request at the next token; runEvaluation then resolves with status 'cancelled'. */
  cancelEvaluation(jobId: string): Promise<void>;
  listEvaluations(): Promise<Array<StoredRunSummary & { interrupted: boolean }>>;
  getEvaluation(id: string): Promise<StoredRun>;
  deleteEvaluation(id: string): Promise<void>;
  /** Sets (or clears, with null) the hand review of one item: 1 right, 0.5 half, 0 wrong. */
  reviewEvaluationItem(id: string, itemId: string, score: HandScore | null): Promise<StoredRunSummary>;
  exportEvaluations(ids: string[], kind: 'csv' | 'json'): Promise<{ fileName: string; blob: Blob }>;
  /** Reads a results JSON file (as exported here) and saves its runs. */
  importEvaluations(file: File): Promise<StoredRunSummary[]>;
}

export type { RunStatus, StoredRun, StoredRunSummary } from '../engine/eval/results-store';
export type { RunItemResult, RunnerSettings, ThroughputRates } from '../engine/eval/runner';
export type { AccuracyRow, EvalItemResult, HandScore } from '../engine/eval/results';
export type * from '../engine/eval/requests';

/** A results file larger than this is refused before it is read (the paper's 730 items x 5 models are ~15 MB). */
export const MAX_RESULTS_FILE_BYTES = 200 * 2 ** 20;

export function evalApi(engine: Pick<Engine, 'platform'>, session: Session): EvalApi {
  const saved = new SavedDatasets(engine.platform);
  const w = new Evaluations(engine, session, () => saved.store());
  return {
    evaluationSetup: (dataUrl) => w.setup(dataUrl),
    evaluationTargets: () => w.targets(),
    planEvaluation: (request) => w.plan(request),
    runEvaluation: (request, onProgress) => w.run(request, onProgress),
    resumeEvaluation: (jobId, groupId, onProgress) => w.resume(jobId, groupId, onProgress),
    resumableEvaluations: () => w.resumable(),
    discardEvaluation: (groupId) => w.discard(groupId),
    cancelEvaluation: async (jobId) => w.cancel(jobId),
    listEvaluations: () => w.list(),
    getEvaluation: (id) => w.get(id),
    deleteEvaluation: (id) => w.delete(id),
    reviewEvaluationItem: (id, itemId, score) => w.review(id, itemId, score),
    exportEvaluations: async (ids, kind) => {
      const { fileName, text, type } = await w.export(ids, kind);
      return { fileName, blob: new Blob([text], { type }) };
    },
    importEvaluations: async (file) => {
      if (file.size > MAX_RESULTS_FILE_BYTES) {
        throw new Error(`${file.name} is ${(file.size / 2 ** 20).toFixed(0)} MB; a results file may be at most ${MAX_RESULTS_FILE_BYTES / 2 ** 20} MB.`);
      }
      return w.import(await file.text());
    },
  };
}
