import type { ModelSource } from '../store/schema';
import { HUB_MODEL_ID, PHI_PRESETS } from '../../shared/presets';

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
