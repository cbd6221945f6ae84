import { briefJson, describeExcessNesting, findExcessNesting } from '../untrusted-json';
import { CheckpointError } from './errors';

/**
 * config.json of a PhiForCausalLM checkpoint (Hugging Face transformers' "phi" model type, the
 * layout microsoft/phi-2 uses since it moved into transformers). Every shape the engine uses derives
 * from this; nothing assumes Phi-2's own sizes.
 */
export interface PhiConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** hiddenSize / numHeads: 80 for Phi-2, 64 for Phi-1 and Phi-1.5. */
  readonly headDim: number;
  readonly partialRotaryFactor: number;
  /** int(headDim * partialRotaryFactor), as transformers computes it: 32 for Phi-2 (80 x 0.4) and Phi-1/1.5 (64 x 0.5). */
  readonly rotaryDim: number;
  readonly ropeTheta: number;
  readonly layerNormEps: number;
  readonly maxPositions: number;
  /** Dropout on the attention and MLP branch outputs in training (0.1 for Phi-2, 0 for Phi-1 and Phi-1.5). */
  readonly residPdrop: number;
  readonly embdPdrop: number;
  readonly attentionDropout: number;
  readonly hiddenAct: 'gelu_new';
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  /** The dtype the checkpoint was saved in, when config.json says ("float16" for Phi-2). */
  readonly torchDtype: string | null;
}

/**
 * The model's dimensions, the one shape every layer above the weights uses: the GPU model and its
 * workspaces, the memory estimates, the pages. Built from a parsed config by modelDims.
 */
export interface ModelDims {
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  headDim: number;
  /** Leading dimensions of each head that are rotated: int(headDim * partial_rotary_factor). */
  rotaryDim: number;
  ropeTheta: number;
  layerNormEps: number;
  maxPositions: number;
  residDropout: number;
  eosTokenId: number | null;
}

export function modelDims(c: PhiConfig): ModelDims {
  return {
    vocab: c.vocabSize,
    hidden: c.hiddenSize,
    intermediate: c.intermediateSize,
    layers: c.numLayers,
    heads: c.numHeads,
    headDim: c.headDim,
    rotaryDim: c.rotaryDim,
    ropeTheta: c.ropeTheta,
    layerNormEps: c.layerNormEps,
    maxPositions: c.maxPositions,
    residDropout: c.residPdrop,
    eosTokenId: c.eosTokenId,
  };
}


const SUPPORTED =
  'Supported: PhiForCausalLM checkpoints with "model_type": "phi" in config.json (microsoft/phi-2, phi-1_5 and phi-1 as they are on the Hub since transformers 4.37, or models fine-tuned from them).';

/**
 * Sizes beyond any model this engine can hold: config.json is untrusted, and every buffer, typed array
 * and record plan is sized from it, so it is refused here before anything is allocated (a vocab_size of
 * 2^40 would otherwise ask for terabytes). Phi-2 is 51,200 / 2,560 / 10,240 / 32 layers / 32 heads / 2,048.
 */
export const CONFIG_BOUNDS = {
  vocab_size: 1 << 20,
  hidden_size: 32_768,
  intermediate_size: 131_072,
  num_hidden_layers: 256,
  num_attention_heads: 256,
  max_position_embeddings: 131_072,
} as const;

/** The attention kernels' largest head (hidden_size / num_attention_heads). */
export const MAX_HEAD_DIM = 256;

/** config.json's text parsed, refused (naming the file) when it is not JSON or nests deeper than any config. */
export function readConfigJson(text: string, file = 'config.json'): unknown {
  const deep = findExcessNesting(text);
  if (deep) throw new CheckpointError('config-invalid', `${file} is JSON ${describeExcessNesting(deep)}; a model config is a flat object`, file);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CheckpointError('config-invalid', `${file} is not valid JSON: ${(err as Error).message}`, file);
  }
}

/** Keys of the old MixFormer ("phi-msft") configuration that the transformers layout does not have. */
const MIXFORMER_KEYS = ['n_embd', 'n_layer', 'n_head', 'n_positions', 'rotary_dim', 'n_inner', 'flash_attn', 'flash_rotary'];

/** Parses and validates config.json (text or parsed JSON). Anything but a supported Phi is refused with what was found. */
export function parsePhiConfig(json: unknown, file = 'config.json'): PhiConfig {
  const c: unknown = typeof json === 'string' ? readConfigJson(json, file) : json;
  if (!c || typeof c !== 'object' || Array.isArray(c)) throw new CheckpointError('config-invalid', `${file} is not a JSON object`, file);
  const cfg = c as Record<string, unknown>;
  const modelType = cfg.model_type;
  const architectures = Array.isArray(cfg.architectures) ? cfg.architectures.map(String) : [];
  const found = `found model_type ${briefJson(modelType ?? null)}${architectures.length ? `, architectures ${briefJson(architectures)}` : ''}`;
  const mixformerKeys = MIXFORMER_KEYS.filter((k) => k in cfg);
  if (modelType === 'phi-msft' || modelType === 'mixformer-sequential' || mixformerKeys.length) {
    throw new CheckpointError(
      'unsupported-model',
      `${file} describes the old MixFormer layout of Phi (${found}${mixformerKeys.length ? `, keys ${mixformerKeys.join(', ')}` : ''}; ` +
        'tensors named transformer.h.N.mixer.Wqkv). That remote-code format is not supported. ' +
        `${SUPPORTED} Use a revision of the model saved in the transformers layout.`,
      file,
    );
  }
  if (modelType !== 'phi') {
    throw new CheckpointError('unsupported-model', `${file}: ${found}. ${SUPPORTED}`, file);
  }
  if (architectures.length && !architectures.includes('PhiForCausalLM')) {
    throw new CheckpointError('unsupported-model', `${file}: ${found}; only the PhiForCausalLM head is supported. ${SUPPORTED}`, file);
  }

  const invalid = (msg: string): never => {
    throw new CheckpointError('config-invalid', `${file}: ${msg}`, file);
  };
  const int = (key: keyof typeof CONFIG_BOUNDS, fallback?: number): number => {
    const v = cfg[key] ?? fallback;
    if (v === undefined) return invalid(`"${key}" is missing`);
    if (!Number.isSafeInteger(v) || (v as number) < 1) return invalid(`"${key}" must be a positive integer, found ${briefJson(v)}`);
    const max = CONFIG_BOUNDS[key];
    if ((v as number) > max) return invalid(`"${key}" is ${(v as number).toLocaleString('en-US')}, more than this engine supports (at most ${max.toLocaleString('en-US')})`);
    return v as number;
  };
  // rope settings moved into "rope_parameters" in newer transformers; accept either place.
  const rope = cfg.rope_parameters && typeof cfg.rope_parameters === 'object' ? (cfg.rope_parameters as Record<string, unknown>) : {};
  const num = (key: string, fallback: number, ok: (v: number) => boolean, what: string): number => {
    const v = cfg[key] ?? rope[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) return invalid(`"${key}" must be ${what}, found ${briefJson(v)}`);
    return v;
  };
  const probability = (key: string): number => num(key, 0, (v) => v >= 0 && v < 1, 'a probability in [0, 1)');

  const vocabSize = int('vocab_size');
  const hiddenSize = int('hidden_size');
  const intermediateSize = int('intermediate_size');
  const numLayers = int('num_hidden_layers');
  const numHeads = int('num_attention_heads');
  const kvHeads = cfg.num_key_value_heads ?? numHeads;
  if (kvHeads !== numHeads) {
    invalid(`num_key_value_heads ${briefJson(kvHeads)} differs from num_attention_heads ${numHeads}; grouped-query attention is not supported (Phi-2 has equal counts)`);
  }
  if (hiddenSize % numHeads !== 0) invalid(`hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${numHeads}`);
  // int8 weights pack 4 values of a row (along K = hidden or intermediate) per 32-bit word.
  if (hiddenSize % 4 !== 0) invalid(`hidden_size ${hiddenSize} must be a multiple of 4 for the packed int8/F16 weight layout`);
  if (intermediateSize % 4 !== 0) invalid(`intermediate_size ${intermediateSize} must be a multiple of 4 for the packed int8/F16 weight layout`);
  const headDim = hiddenSize / numHeads;
  if (headDim > MAX_HEAD_DIM) invalid(`the head dimension hidden_size / num_attention_heads = ${headDim} is more than the attention kernels support (${MAX_HEAD_DIM})`);
  const partialRotaryFactor = num('partial_rotary_factor', 0.5, (v) => v > 0 && v <= 1, 'in (0, 1]');
  const rotaryDim = Math.floor(headDim * partialRotaryFactor);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0) {
    invalid(`the rotary dimension int(head_dim ${headDim} * partial_rotary_factor ${partialRotaryFactor}) = ${rotaryDim} must be a positive even number`);
  }
  const ropeTheta = num('rope_theta', 10000, (v) => v > 0, 'positive');
  const layerNormEps = num('layer_norm_eps', 1e-5, (v) => v > 0 && v < 1, 'in (0, 1)');
  const maxPositions = int('max_position_embeddings', 2048);
  const hiddenAct = cfg.hidden_act ?? 'gelu_new';
  if (hiddenAct !== 'gelu_new') invalid(`hidden_act ${briefJson(hiddenAct)} is not supported; Phi uses "gelu_new" (GELU, tanh approximation)`);
  if (cfg.tie_word_embeddings === true) invalid('tie_word_embeddings is true; Phi keeps a separate lm_head (with bias) and the engine expects it');
  if (cfg.qk_layernorm === true) invalid('qk_layernorm is true; LayerNorms on queries and keys are not supported (Phi-2 has none)');
  if (cfg.rope_scaling !== undefined && cfg.rope_scaling !== null) {
    invalid(`rope_scaling ${briefJson(cfg.rope_scaling)} is not supported; only plain rotary embeddings (rope_scaling null)`);
  }
  if (rope.rope_type !== undefined && rope.rope_type !== 'default') {
    invalid(`rope_parameters.rope_type ${briefJson(rope.rope_type)} is not supported; only "default"`);
  }
  const tokenId = (key: string): number | null => {
    const v = cfg[key];
    if (v === undefined || v === null) return null;
    // Not checked against vocab_size: toy checkpoints keep Phi-2's ids (50256) with a smaller vocabulary.
    if (!Number.isSafeInteger(v) || (v as number) < 0) invalid(`"${key}" ${briefJson(v)} is not a token id`);
    return v as number;
  };
  return {
    vocabSize,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    headDim,
    partialRotaryFactor,
    rotaryDim,
    ropeTheta,
    layerNormEps,
    maxPositions,
    residPdrop: probability('resid_pdrop'),
    embdPdrop: probability('embd_pdrop'),
    attentionDropout: probability('attention_dropout'),
    hiddenAct: 'gelu_new',
    bosTokenId: tokenId('bos_token_id'),
    eosTokenId: tokenId('eos_token_id'),
    torchDtype: typeof cfg.torch_dtype === 'string' ? cfg.torch_dtype : typeof cfg.dtype === 'string' ? cfg.dtype : null,
  };
}
