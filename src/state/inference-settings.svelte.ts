import { DEFAULT_INFERENCE, INFERENCE_SWITCHES, parseInference, type InferenceOptions, type InferenceSwitch } from '../shared/compute';
import { engine } from '../worker/client';
import type { InferenceState } from '../worker/inference-api';
import { messageOf } from './errors';

/**
 * The loaded model's inference settings (int8 compute, int8 lm_head; shared/compute.ts lists them), as
 * the Model page shows them: what the user chose (kept in this browser), what the model on the GPU runs
 * with, and why a setting cannot run here. A change goes to the worker, which applies it to the loaded
 * model, or to the next one loaded; every generation (Demo, Evaluate, Adapters) then uses it.
 */

const STORAGE_KEY = 'phi2.inference';

function storedChoice(): InferenceOptions {
  try {
    const raw = globalThis.localStorage?.getItem(STORAGE_KEY);
    return raw ? parseInference(JSON.parse(raw)) : { ...DEFAULT_INFERENCE };
  } catch {
    return { ...DEFAULT_INFERENCE };
  }
}

function remember(o: InferenceOptions): void {
  try {
    globalThis.localStorage?.setItem(STORAGE_KEY, JSON.stringify(o));
  } catch {
    // Storage refused (private mode, quota): the choice holds for this visit.
  }
}

export interface InferenceSwitchView {
  setting: InferenceSwitch;
  /** The user's choice. */
  on: boolean;
  /** Whether the model on the GPU runs with it (null: no model loaded). */
  active: boolean | null;
  /** Why it cannot run here, or null. */
  unavailable: string | null;
}

export class InferenceSettingsState {
  chosen = $state<InferenceOptions>(storedChoice());
  /** The worker's side: what the loaded model runs with, and what cannot run. */
  worker = $state.raw<InferenceState | null>(null);
  applying = $state(false);
  error = $state<string | null>(null);

  readonly switches = $derived(
    INFERENCE_SWITCHES.map((setting): InferenceSwitchView => {
      const applied = this.worker?.applied;
      return {
        setting,
        on: this.chosen[setting.key] === setting.on,
        active: applied ? applied[setting.key] === setting.on : null,
        unavailable: this.worker?.unavailable[setting.key] ?? null,
      };
    }),
  );

  /** Sends the stored choice to the worker (at start: a model loaded from any page is made with it). */
  async restore(): Promise<void> {
    await this.apply(this.chosen);
  }

  /** Reads the worker's side again (a model was loaded or unloaded). */
  async refresh(): Promise<void> {
    try {
      this.worker = await engine().inferenceSettings();
    } catch (err) {
      this.error = messageOf(err);
    }
  }

  async toggle(setting: InferenceSwitch, on: boolean): Promise<void> {
    const off = DEFAULT_INFERENCE[setting.key];
    await this.apply({ ...this.chosen, [setting.key]: on ? setting.on : off });
  }

  private async apply(options: InferenceOptions): Promise<void> {
    this.applying = true;
    this.error = null;
    try {
      const outcome = await engine().setInferenceSettings({ ...options });
      this.worker = outcome.state;
      this.chosen = { ...outcome.state.chosen };
      if (outcome.status === 'refused') this.error = outcome.message;
      else remember(this.chosen);
    } catch (err) {
      this.error = messageOf(err);
    } finally {
      this.applying = false;
    }
  }
}

export const inferenceSettings = new InferenceSettingsState();
