import {
  INFERENCE_SWITCHES,
  parseInference,
  runnableInference,
  sameInference,
  type InferenceContext,
  type InferenceOptions,
} from '../../shared/compute';
import type { Engine } from '../engine';
import { ModelBusyError, withModel, type Session } from './session';

/**
 * The loaded model's inference settings (shared/compute.ts: int8 compute, int8 lm_head), as the Model
 * page changes them. The session keeps what was asked for and makes every model it loads with the
 * settings that model can run; a change reaches the loaded model at once (Phi2Model.configure, under
 * the model lock, so no generation is cut in half and no decode step recorded before it is replayed
 * after it), or is refused with the reason and changes nothing.
 */

export interface InferenceState {
  /** What was asked for (a model is made with those of them it can run). */
  chosen: InferenceOptions;
  /** What the loaded model runs with; null when none is loaded. */
  applied: InferenceOptions | null;
  /** Why a setting cannot run here (with the loaded model, on this browser), by its key; absent when it can. */
  unavailable: Partial<Record<keyof InferenceOptions, string>>;
}

export type InferenceOutcome = { status: 'applied'; state: InferenceState } | { status: 'refused'; message: string; state: InferenceState };

export class InferenceSettings {
  constructor(
    private readonly engine: Pick<Engine, 'runtime'>,
    private readonly session: Session,
  ) {}

  private async context(): Promise<InferenceContext> {
    const loaded = this.session.loaded;
    let hasInt8Dot = false;
    try {
      hasInt8Dot = (await this.engine.runtime()).ctx.hasInt8Dot;
    } catch {
      // No GPU: nothing runs, and the GPU panel says why.
    }
    return { weightMode: loaded?.weightMode ?? null, hidden: loaded?.dims.hidden ?? null, hasInt8Dot };
  }

  async state(): Promise<InferenceState> {
    const ctx = await this.context();
    const unavailable: InferenceState['unavailable'] = {};
    for (const s of INFERENCE_SWITCHES) {
      const problem = s.problem(ctx);
      if (problem) unavailable[s.key] = problem;
    }
    const model = this.session.loaded?.model;
    return { chosen: { ...this.session.inference }, applied: model ? { ...model.options } : null, unavailable };
  }

  /** Asks for `options` (from the page: only known values are taken) and applies them to the loaded model. */
  async set(options: unknown): Promise<InferenceOutcome> {
    const chosen = parseInference(options);
    const loaded = this.session.loaded;
    if (!loaded) {
      this.session.inference = chosen;
      return { status: 'applied', state: await this.state() };
    }
    const ctx = await this.context();
    const wanted = runnableInference(chosen, ctx);
    try {
      if (!sameInference(wanted, loaded.model.options)) {
        await withModel(loaded.generator, 'changing the inference settings', async () => {
          loaded.model.configure(wanted);
          await loaded.model.gpu.finish();
        });
      }
      this.session.inference = chosen;
      return { status: 'applied', state: await this.state() };
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      const message = err instanceof ModelBusyError ? `${reason} The settings stay as they were.` : `The inference settings could not be applied: ${reason}`;
      return { status: 'refused', message, state: await this.state() };
    }
  }
}
