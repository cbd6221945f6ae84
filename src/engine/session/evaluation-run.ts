import type { LoraState } from '../model/phi2/lora-state';
import type { EvaluationProgress, EvaluationRequest } from '../eval/requests';
import type { EvalModel, PreparedItem } from '../eval/prepare';
import type { EvalItemResult } from '../eval/results';
import type { ResultsStore, StoredRun, StoredRunSummary } from '../eval/results-store';
import { describeFailure, runPrepared, type RunItemResult } from '../eval/run';
import type { ThroughputMeter, Workload } from '../eval/throughput';
import { DEFAULT_INFERENCE, describeInference, sameInference, type InferenceOptions } from '../../shared/compute';

/** How often a running run says it is alive (evaluations.ts counts a run quiet for STALE_MS as interrupted). */
export const HEARTBEAT_MS = 4_000;

/** What a request needs to be resumed, kept under its group id. */
export interface EvalJob {
  version: 1;
  request: Omit<EvaluationRequest, 'jobId'>;
  modelId: string;
  modelLabel: string;
  /** The inference settings the model ran with (absent in jobs saved before they existed: the exact ones). */
  inference?: InferenceOptions;
  /** itemsFingerprint of the request's items when it started, and what they are ("paper", "in_context"...). */
  fingerprint: string;
  suite: string;
  itemCount: number;
  /** The run of each model of request.adapters, once started. */
  runIds: Array<string | null>;
}

/** How runs name their model: "microsoft/phi-2 (int8)", and the settings that leave the exact model after it. */
export function runModelLabel(name: string, weightMode: string, inference: InferenceOptions): string {
  const inexact = describeInference(inference);
  return inexact ? `${name} (${weightMode}, ${inexact})` : `${name} (${weightMode})`;
}

/**
 * Why a job cannot go on with the model as it is now set (null when it can): the items of one run must
 * all come from the same settings, or its accuracy mixes two models.
 */
export function inferenceMismatch(job: Pick<EvalJob, 'inference'>, now: InferenceOptions): string | null {
  const then = job.inference ?? DEFAULT_INFERENCE;
  if (sameInference(then, now)) return null;
  const words = (o: InferenceOptions) => describeInference(o) ?? 'the exact settings';
  return `This evaluation ran with ${words(then)}; the model now runs with ${words(now)}. Set the same inference settings on the Model page, then resume.`;
}

/** Progress of one model's run, before the request adds which model it is and the overall counts. */
export type ModelRunProgress = Omit<EvaluationProgress, 'jobId' | 'model' | 'models' | 'label' | 'overallDone' | 'overallTotal' | 'elapsedMs' | 'phase'> & {
  phase?: EvaluationProgress['phase'];
};

export interface ModelRunContext {
  model: EvalModel;
  /** An adapter's weights on the GPU (null for the base model); throws when it is not loaded. */
  loraOf: (adapter: string | null) => LoraState | null;
  /** The paper's model an adapter stands for, recorded with a new run. */
  paperModelOf: (adapter: string | null) => Promise<string | null>;
  meter: ThroughputMeter;
  /** The work of the models after this one, for the estimate of what is left. */
  later: Workload;
  signal: AbortSignal;
  now: () => number;
  report: (p: ModelRunProgress) => void;
}

/**
 * One model's run of a request (model m of job.request.adapters): begun, or continued from its saved
 * items, its batches saved as they finish, then ended as complete, cancelled or failed. A run cancelled
 * before its first batch is not kept.
 */
export async function runModelOfRequest(
  store: ResultsStore,
  groupId: string,
  job: EvalJob,
  m: number,
  prepared: readonly PreparedItem[],
  suite: string,
  ctx: ModelRunContext,
): Promise<{ summary: StoredRunSummary; kept?: false }> {
  const adapter = job.request.adapters[m];
  let summary: StoredRunSummary;
  let done: EvalItemResult[] = [];
  const existing = job.runIds[m];
  if (existing) {
    const stored: StoredRun = await store.get(existing);
    if (stored.status === 'complete') return { summary: stored };
    summary = stored;
    done = stored.items;
  } else {
    summary = await store.begin(
      { model: job.modelLabel, adapter, seed: job.request.seed, settings: job.request.settings, suite, startedAt: new Date().toISOString(), durationMs: 0 },
      { groupId, modelId: job.modelId, paperModel: await ctx.paperModelOf(adapter), plannedCount: prepared.length },
    );
    job.runIds[m] = summary.id;
    await store.putJob(groupId, job);
  }
  const runId = summary.id;
  const t0 = ctx.now();
  const before = { durationMs: summary.durationMs, promptTokens: summary.promptTokens ?? 0, generatedTokens: summary.generatedTokens ?? 0 };
  let promptTokens = before.promptTokens;
  let generatedTokens = before.generatedTokens;
  const heartbeat = setInterval(() => void store.heartbeat(runId).catch(() => undefined), HEARTBEAT_MS);
  let last: RunItemResult | null = null;
  try {
    const outcome = await runPrepared(ctx.model, prepared, job.request.settings, {
      adapter: ctx.loraOf(adapter),
      signal: ctx.signal,
      now: ctx.now,
      meter: ctx.meter,
      laterWork: ctx.later,
      done,
      onItem: (r) => (last = r),
      onBatch: async (results) => {
        for (const r of results) {
          promptTokens += r.stopped !== null ? r.promptTokens : 0;
          generatedTokens += r.generatedTokens;
        }
        summary = await store.append(runId, results, { durationMs: before.durationMs + ctx.now() - t0, rates: ctx.meter.rates(), promptTokens, generatedTokens });
      },
      onProgress: (p) => {
        const l = p.itemId === null ? null : (last as RunItemResult | null);
        ctx.report({ ...p, last: l ? { id: l.id, correct: l.verdict.correct, extracted: l.verdict.extracted, target: l.target } : null });
      },
    });
    ctx.report({ phase: 'saving', done: summary.itemCount, total: prepared.length, correct: summary.correct, etaMs: null, decodeTokensPerSecond: null, prefillTokensPerSecond: null, last: null });
    if (outcome.failure) {
      const error = describeFailure(outcome.failure, prepared.length);
      return { summary: await store.finish(runId, 'failed', { error, failure: outcome.failure }) };
    }
    if (outcome.cancelled && summary.itemCount === 0) {
      // Cancelled before a batch finished: nothing to keep, and nothing to resume.
      await store.delete(runId);
      return { summary: { ...summary, status: 'cancelled' }, kept: false };
    }
    return { summary: await store.finish(runId, outcome.cancelled ? 'cancelled' : 'complete') };
  } catch (err) {
    // Preparing the run itself failed (the model or the store): the run says why, and can be resumed.
    const error = (err as Error)?.message ?? String(err);
    return { summary: await store.finish(runId, 'failed', { error }).catch(() => ({ ...summary, status: 'failed' as const, error })) };
  } finally {
    clearInterval(heartbeat);
  }
}
