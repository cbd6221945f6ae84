import { PHI2_REPO, PHI2_REVISION } from './hub';

/** microsoft/phi-2's config.json at the pinned revision, for sizes before anything is downloaded and for tests. */
export const PHI2_CONFIG_JSON = {
  _name_or_path: 'microsoft/phi-2',
  architectures: ['PhiForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 50256,
  embd_pdrop: 0.0,
  eos_token_id: 50256,
  hidden_act: 'gelu_new',
  hidden_size: 2560,
  initializer_range: 0.02,
  intermediate_size: 10240,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 2048,
  model_type: 'phi',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 32,
  partial_rotary_factor: 0.4,
  qk_layernorm: false,
  resid_pdrop: 0.1,
  rope_scaling: null,
  rope_theta: 10000.0,
  tie_word_embeddings: false,
  torch_dtype: 'float16',
  transformers_version: '4.37.0',
  use_cache: true,
  vocab_size: 51200,
} as const;

/**
 * microsoft/phi-1_5's config.json on the Hub (transformers layout, as published with transformers
 * 4.37), written as where it differs from Phi-2's (same keys, same order): Phi-2's architecture at
 * 1.3B, 24 layers of width 2048, 32 heads of 64 with 32 rotary dims (partial_rotary_factor 0.5), no
 * residual dropout, and no bos/eos ids (the tokenizer's <|endoftext|> ends text).
 */
export const PHI1_5_CONFIG_JSON = {
  ...PHI2_CONFIG_JSON,
  _name_or_path: 'microsoft/phi-1_5',
  bos_token_id: null,
  eos_token_id: null,
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 24,
  num_key_value_heads: null,
  partial_rotary_factor: 0.5,
  resid_pdrop: 0.0,
} as const;

/** microsoft/phi-1's config.json: Phi-1.5's shape, its weights published in float32. */
export const PHI1_CONFIG_JSON = { ...PHI1_5_CONFIG_JSON, _name_or_path: 'microsoft/phi-1', torch_dtype: 'float32' } as const;

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
