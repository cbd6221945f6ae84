import type { Engine } from '../engine/engine';
import { InferenceSettings, type InferenceOutcome, type InferenceState } from '../engine/session/inference';
import type { Session } from '../engine/session/session';
import type { InferenceOptions } from '../shared/compute';

export type { InferenceOutcome, InferenceState } from '../engine/session/inference';

/**
 * The inference settings' side of the worker (int8 compute, int8 lm_head): comlink's face of the
 * engine's InferenceSettings (engine/session/inference.ts). They apply to every generation of the
 * loaded model: the Demo, Evaluate and Adapters pages.
 */
export interface InferenceApi {
  /** What was asked for, what the loaded model runs with, and why a setting cannot run here. */
  inferenceSettings(): Promise<InferenceState>;
  /** Asks for settings (also before a model is loaded: the next load uses them); refused while the model is busy. */
  setInferenceSettings(options: InferenceOptions): Promise<InferenceOutcome>;
}

export function inferenceApi(engine: Pick<Engine, 'runtime'>, session: Session): InferenceApi {
  const settings = new InferenceSettings(engine, session);
  return {
    inferenceSettings: () => settings.state(),
    setInferenceSettings: (options) => settings.set(options),
  };
}
