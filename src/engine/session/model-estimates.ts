import { LORA_TARGETS, PAPER_LORA } from '../../shared/lora';
import { inferenceMemory, trainingMemory, weightBytes, type MemoryEstimate } from '../../shared/train-memory';
import { QUANT_SCHEMES, phiParamSpecs, storedBytes, storedDType, type PhiConfig, type QuantScheme } from '../weights';
import { modelDims } from '../weights/config';

/**
 * What a model takes before it is fetched: bytes to download, bytes in IndexedDB in each weight mode
 * and GPU memory for inference and LoRA training with the paper's settings, from its config.json alone
 * (the Model page shows these beside each preset and Hub repository).
 */

export interface ModelEstimate {
  scheme: QuantScheme;
  /** Bytes of the checkpoint's safetensors, in the dtype config.json names (torch_dtype), and that dtype. */
  downloadBytes: number;
  sourceDtype: string;
  /** IndexedDB bytes once stored. */
  storedBytes: number;
  /** GPU memory: the weights alone, generation, and LoRA training (paper settings), item by item. */
  gpuWeights: MemoryEstimate;
  inference: MemoryEstimate & { tokens: number };
  training: MemoryEstimate & { tokens: number; loraRank: number };
}

/** Tokens of one generation (prompt + answer) and of one training sequence used in the GPU estimates. */
export const INFERENCE_ESTIMATE_TOKENS = 1024;
export const TRAINING_ESTIMATE_TOKENS = 512;

export function total(items: Array<{ bytes: number }>): number {
  return items.reduce((a, i) => a + i.bytes, 0);
}

/** Bytes per value of a checkpoint saved in `torchDtype` (F16 when config.json does not say). */
function sourceDtypeOf(torchDtype: string | null): { label: string; bytes: number } {
  if (torchDtype === 'float32') return { label: 'F32', bytes: 4 };
  if (torchDtype === 'bfloat16') return { label: 'BF16', bytes: 2 };
  return { label: 'F16', bytes: 2 };
}

/** Stored bytes (the importer's own layout), download size and GPU memory of a config in one weight mode. */
export function estimateFor(config: PhiConfig, scheme: QuantScheme): ModelEstimate {
  const shape = modelDims(config);
  const specs = phiParamSpecs(config);
  const stored = specs.reduce((a, spec) => a + storedBytes(spec, storedDType(spec, scheme)), 0);
  const source = sourceDtypeOf(config.torchDtype);
  const downloadBytes = specs.reduce((a, spec) => a + spec.shape.reduce((x, y) => x * y, 1) * source.bytes, 0);
  const weights = weightBytes(shape, scheme);
  const inferenceTokens = Math.min(INFERENCE_ESTIMATE_TOKENS, config.maxPositions);
  const trainingTokens = Math.min(TRAINING_ESTIMATE_TOKENS, config.maxPositions);
  return {
    scheme,
    downloadBytes,
    sourceDtype: source.label,
    storedBytes: stored,
    gpuWeights: { items: weights, total: total(weights) },
    inference: { ...inferenceMemory(shape, { batch: 1, maxTokens: inferenceTokens, weights: scheme }), tokens: inferenceTokens },
    training: {
      ...trainingMemory(shape, {
        batch: 1,
        seq: trainingTokens,
        lora: { ...PAPER_LORA, targets: [...LORA_TARGETS] },
        weights: scheme,
        keepActivations: false,
      }),
      tokens: trainingTokens,
      loraRank: PAPER_LORA.r,
    },
  };
}

export function estimatesFor(config: PhiConfig): Record<QuantScheme, ModelEstimate> {
  return Object.fromEntries(QUANT_SCHEMES.map((s) => [s, estimateFor(config, s)])) as Record<QuantScheme, ModelEstimate>;
}
