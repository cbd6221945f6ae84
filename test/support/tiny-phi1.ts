/**
 * A tiny checkpoint with the per-head geometry of microsoft/phi-1_5 and phi-1 (heads of 64, 32 rotary
 * dims: partial_rotary_factor 0.5; no residual dropout; no bos/eos ids in config.json), made by the
 * tests: the real 51,200-row vocabulary so that the real tokenizer drives it, 2 layers of width 128.
 * Random weights (seeded), written as F16 (Phi-1.5's dtype) or F32 (Phi-1's), with the tokenizer files
 * of the tiny-phi fixture (Phi-2's, which Phi-1 and Phi-1.5 share).
 *
 * Beside it, a float64 forward of the checkpoint composed from the kernels' own references
 * (test/reference), optionally with int8 linear weights and a LoRA adapter: what the engine must match.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loraScaling, type LoraSettings, type LoraTarget } from '../../src/shared/lora';
import { parsePhiConfig, type PhiConfig } from '../../src/engine/weights/config';
import { PHI1_5_CONFIG_JSON } from '../../src/shared/presets';
import { LINEAR_NAMES, phiParamSpecs, type LinearName } from '../../src/engine/weights/layout';
import { serializeSafetensors } from '../../src/engine/weights/safetensors-write';
import { attentionForwardRef } from '../reference/attention';
import { geluForwardRef } from '../reference/gelu';
import { layernormForwardRef } from '../reference/layernorm';
import { matmulForwardRef } from '../reference/matmul';
import { rotaryRef } from '../reference/rotary';
import { halfToNumberRef, numberToHalfRef, quantizeRowsRef } from '../reference/quantize';
import { MODELS } from './fixtures';
import { rng } from './compare';

export const TINY_PHI1_CONFIG = {
  ...PHI1_5_CONFIG_JSON,
  _name_or_path: 'tiny-random-phi-1_5',
  hidden_size: 128,
  intermediate_size: 512,
  num_attention_heads: 2,
  num_hidden_layers: 2,
} as const;

export type TinyDtype = 'F16' | 'F32';

/** Every parameter by its Hugging Face name, as float64 values exactly as written (F16-rounded for F16). */
export type TinyWeights = Map<string, { shape: number[]; data: Float64Array }>;

/** Seeded weights of the tiny checkpoint; scales chosen so the logits spread (greedy picks are clear). */
export function tinyPhi1Weights(seed: number, dtype: TinyDtype, config: Record<string, unknown> = TINY_PHI1_CONFIG): TinyWeights {
  const random = rng(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(random() || 1e-12)) * Math.cos(2 * Math.PI * random());
  const round = (v: number) => (dtype === 'F16' ? halfToNumberRef(numberToHalfRef(v)) : Math.fround(v));
  const out: TinyWeights = new Map();
  for (const spec of phiParamSpecs(parsePhiConfig(config))) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const isNormWeight = (spec.module === 'ln' || spec.module === 'final_ln') && spec.part === 'weight';
    const scale = spec.module === 'embed' ? 1 : spec.module === 'lm_head' ? 0.1 : spec.part === 'bias' ? 0.02 : 0.08;
    const data = new Float64Array(n);
    for (let i = 0; i < n; i++) data[i] = round(isNormWeight ? 1 + 0.1 * gauss() : scale * gauss());
    out.set(spec.hfName, { shape: [...spec.shape], data });
  }
  return out;
}

/** Writes config.json, model.safetensors and the tokenizer files into `dir`; returns the weights written. */
export function writeTinyPhi1(dir: string, options: { seed?: number; dtype?: TinyDtype; config?: Record<string, unknown> } = {}): TinyWeights {
  const dtype = options.dtype ?? 'F16';
  const config = { ...(options.config ?? TINY_PHI1_CONFIG), torch_dtype: dtype === 'F16' ? 'float16' : 'float32' };
  const weights = tinyPhi1Weights(options.seed ?? 1, dtype, config);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const tensors = [...weights].map(([name, t]) => ({
    name,
    dtype,
    shape: t.shape,
    data: dtype === 'F16' ? Uint16Array.from(t.data, (v) => numberToHalfRef(v)) : Float32Array.from(t.data),
  }));
  writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors(tensors, { format: 'pt' }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(MODELS.tiny, f), join(dir, f));
  return weights;
}

const HF_LINEAR: Record<LinearName, string> = { q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj', dense: 'self_attn.dense', fc1: 'mlp.fc1', fc2: 'mlp.fc2' };
const TARGET_OF: Record<LinearName, LoraTarget> = { q: 'q_proj', k: 'k_proj', v: 'v_proj', dense: 'dense', fc1: 'fc1', fc2: 'fc2' };

export interface ReferenceLora {
  settings: LoraSettings;
  /** PEFT-named tensors (…lora_A.weight [r, in], …lora_B.weight [out, r]). */
  tensors: Map<string, Float64Array>;
}

/**
 * The float64 forward of the checkpoint over `ids` [batch, seq] (no padding): logits [batch*seq, vocab].
 * With `int8`, every q/k/v/dense/fc1/fc2 weight is quantised per output row and dequantised first, as
 * the engine's int8 mode stores it; with `lora`, scaling·B·A·x is added to each adapted linear.
 */
export function referenceLogits(weights: TinyWeights, config: Record<string, unknown>, ids: number[][], options: { int8?: boolean; lora?: ReferenceLora | null } = {}): Float64Array {
  const c: PhiConfig = parsePhiConfig(config);
  const batch = ids.length;
  const seq = ids[0].length;
  const M = batch * seq;
  const C = c.hiddenSize;
  const get = (name: string) => weights.get(name)!.data;
  const quantised = new Map<string, Float64Array>();
  const linearWeight = (name: string, rows: number, cols: number): Float64Array => {
    if (!options.int8) return get(name);
    if (!quantised.has(name)) {
      const { q, scales } = quantizeRowsRef(get(name), rows, cols);
      quantised.set(name, Float64Array.from(q, (v, i) => v * scales[Math.floor(i / cols)]));
    }
    return quantised.get(name)!;
  };
  const scaling = options.lora ? loraScaling(options.lora.settings) : 0;
  const linear = (layer: number, which: LinearName, x: Float64Array, N: number, K: number): Float64Array => {
    const base = `model.layers.${layer}.${HF_LINEAR[which]}`;
    const y = matmulForwardRef(x, linearWeight(`${base}.weight`, N, K), get(`${base}.bias`), M, N, K);
    const lora = options.lora;
    const adapted = lora && lora.settings.targets.includes(TARGET_OF[which]) && (lora.settings.layers === 'all' || lora.settings.layers.includes(layer));
    if (adapted) {
      const r = lora.settings.r;
      const A = lora.tensors.get(`base_model.model.${base}.lora_A.weight`)!;
      const B = lora.tensors.get(`base_model.model.${base}.lora_B.weight`)!;
      const xa = matmulForwardRef(x, A, null, M, r, K);
      const ba = matmulForwardRef(xa, B, null, M, N, r);
      for (let i = 0; i < y.length; i++) y[i] += scaling * ba[i];
    }
    return y;
  };

  let x = new Float64Array(M * C);
  const embed = get('model.embed_tokens.weight');
  ids.flat().forEach((id, m) => x.set(embed.subarray(id * C, (id + 1) * C), m * C));
  const shape = { batch, seq, heads: c.numHeads, headDim: c.headDim };
  const rot = { ...shape, rotaryDim: c.rotaryDim, theta: c.ropeTheta };
  for (let l = 0; l < c.numLayers; l++) {
    const h = Float64Array.from(layernormForwardRef(x, get(`model.layers.${l}.input_layernorm.weight`), get(`model.layers.${l}.input_layernorm.bias`), M, C, c.layerNormEps).out);
    const q = rotaryRef(linear(l, 'q', h, C, C), rot);
    const k = rotaryRef(linear(l, 'k', h, C, C), rot);
    const v = linear(l, 'v', h, C, C);
    const attn = Float64Array.from(attentionForwardRef(q, k, v, shape).out);
    const a = linear(l, 'dense', attn, C, C);
    const g = geluForwardRef(linear(l, 'fc1', h, c.intermediateSize, C));
    const f = linear(l, 'fc2', g, C, c.intermediateSize);
    const next = new Float64Array(M * C);
    for (let i = 0; i < next.length; i++) next[i] = x[i] + a[i] + f[i];
    x = next;
  }
  const final = Float64Array.from(layernormForwardRef(x, get('model.final_layernorm.weight'), get('model.final_layernorm.bias'), M, C, c.layerNormEps).out);
  return matmulForwardRef(final, get('lm_head.weight'), get('lm_head.bias'), M, c.vocabSize, C);
}

/** The mean causal-LM loss of logits [seq, vocab] for one sequence, labels shifted inside (as transformers). */
export function referenceLoss(logits: Float64Array, vocab: number, labels: number[]): number {
  let sum = 0;
  let count = 0;
  for (let t = 0; t + 1 < labels.length; t++) {
    const target = labels[t + 1];
    if (target === -100) continue;
    const row = logits.subarray(t * vocab, (t + 1) * vocab);
    let max = -Infinity;
    for (const z of row) max = Math.max(max, z);
    let s = 0;
    for (const z of row) s += Math.exp(z - max);
    sum += max + Math.log(s) - row[target];
    count++;
  }
  return sum / count;
}

export { LINEAR_NAMES };
