import type { ModelSource } from '../store/schema';
import { PHI1_5_CONFIG_JSON, PHI1_CONFIG_JSON, PHI2_CONFIG_JSON } from './config';
import { PHI2_REPO, PHI2_REVISION } from './hub';

/**
 * The Phi models the Model page offers: the same architecture (PhiForCausalLM, transformers' "phi"
 * layout) at two sizes. Their config.json is known here, so their sizes and GPU memory are shown
 * before anything is downloaded.
 */

export type PhiPresetId = 'phi-2' | 'phi-1_5' | 'phi-1';

export interface PhiPreset {
  id: PhiPresetId;
  label: string;
  repo: string;
  /**
   * Phi-2 is pinned to the commit the engine is tested against. Phi-1.5 and Phi-1 follow main (their
   * transformers-layout files since January 2024); a file that changes under a resumed download is
   * fetched again from the start (its ETag differs).
   */
  revision: string;
  /** Parameters, as the model cards state them. */
  parameters: string;
  note: string;
  config: Record<string, unknown>;
}

export const PHI_PRESETS: readonly PhiPreset[] = [
  {
    id: 'phi-2',
    label: 'Phi-2',
    repo: PHI2_REPO,
    revision: PHI2_REVISION,
    parameters: '2.7B',
    note: "The paper's model: 32 layers of 2560, heads of 80.",
    config: PHI2_CONFIG_JSON,
  },
  {
    id: 'phi-1_5',
    label: 'Phi-1.5',
    repo: 'microsoft/phi-1_5',
    revision: 'main',
    parameters: '1.3B',
    note: 'Common-sense reasoning and text: 24 layers of 2048, heads of 64; F16 weights.',
    config: PHI1_5_CONFIG_JSON,
  },
  {
    id: 'phi-1',
    label: 'Phi-1',
    repo: 'microsoft/phi-1',
    revision: 'main',
    parameters: '1.3B',
    note: 'Python code: the shape of Phi-1.5; published in F32 (twice the download), stored here as int8 or F16.',
    config: PHI1_CONFIG_JSON,
  },
];

/** The preset a repository and revision are, or null. */
export function presetOf(repo: string, revision: string): PhiPreset | null {
  return PHI_PRESETS.find((p) => p.repo === repo.trim() && p.revision === revision.trim()) ?? null;
}

/** A Hub model id: owner/name. */
export const HUB_MODEL_ID = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/;

/** The config.json fields that fix a Phi model's shape. */
const SHAPE_FIELDS = ['hidden_size', 'num_hidden_layers', 'intermediate_size', 'num_attention_heads', 'vocab_size'] as const;

/**
 * The Hub id of a stored model's checkpoint, for what is made from it (an adapter's base_model_name_or_path,
 * a model card): the repository it was downloaded from; for files from disk, the id their config.json names
 * (as `_name_or_path`), else the preset whose repository the folder is named after, else the one preset of
 * its shape (Phi-2's is its own; Phi-1 and Phi-1.5 share one). Null when nothing says.
 */
export function hubIdOf(model: { source: ModelSource; name: string; config: Record<string, unknown> }): string | null {
  if (model.source.kind === 'hub') return model.source.repo;
  const named = typeof model.config._name_or_path === 'string' ? model.config._name_or_path.trim() : '';
  if (HUB_MODEL_ID.test(named)) return named;
  const folder = model.name.trim().toLowerCase();
  const byName = PHI_PRESETS.find((p) => p.repo.split('/')[1].toLowerCase() === folder);
  if (byName) return byName.repo;
  const sameShape = PHI_PRESETS.filter((p) => SHAPE_FIELDS.every((f) => p.config[f] === model.config[f]));
  return sameShape.length === 1 ? sameShape[0].repo : null;
}
