import { PAPER_LORA, type LoraSettings } from '../../src/shared/lora';
import { parsePhiConfig, type PhiConfig } from '../../src/engine/weights/config';
import { PHI2_CONFIG_JSON } from '../../src/shared/presets';

/**
 * What the benchmarks run on. 'full' is Phi-2 itself (hidden 2560, 32 heads of 80, intermediate 10240,
 * vocabulary 51200, 32 layers, sequences of 512): the figures that count, on a real GPU. 'quick' keeps
 * the structure (heads of 80, rotary 32, every kernel and path) at sizes SwiftShader runs in a couple of
 * minutes, to prove the harness on a machine without a GPU.
 */
export type BenchMode = 'full' | 'quick';

export interface BenchShapes {
  mode: BenchMode;
  /** The model the model and training cases build (random weights). */
  modelConfigJson: Record<string, unknown>;
  model: PhiConfig;
  /** Tokens of the prompt in prefill and of each sequence in training; rows of the kernel cases. */
  tokens: number;
  /** KV-cache positions filled before decoding. */
  decodeContext: number;
  /** Tokens generated to time decoding. */
  decodeTokens: number;
  trainBatches: number[];
  lora: LoraSettings;
  /** The synthetic checkpoint imported and loaded: Phi-2's widths with this many layers. */
  importConfigJson: Record<string, unknown>;
}

export function benchShapes(mode: BenchMode): BenchShapes {
  if (mode === 'full') {
    return {
      mode,
      modelConfigJson: PHI2_CONFIG_JSON,
      model: parsePhiConfig(PHI2_CONFIG_JSON),
      tokens: 512,
      decodeContext: 512,
      decodeTokens: 128,
      trainBatches: [1, 4],
      // The paper's adapter: r 64, alpha 64, dropout 0.05, all six linear layers of every block.
      lora: PAPER_LORA,
      importConfigJson: PHI2_CONFIG_JSON,
    };
  }
  const small = {
    ...PHI2_CONFIG_JSON,
    hidden_size: 160,
    intermediate_size: 640,
    num_attention_heads: 2,
    num_key_value_heads: 2,
    num_hidden_layers: 2,
    vocab_size: 2048,
  };
  return {
    mode,
    modelConfigJson: small,
    model: parsePhiConfig(small),
    tokens: 32,
    decodeContext: 32,
    decodeTokens: 4,
    trainBatches: [1, 2],
    lora: { ...PAPER_LORA, r: 8, alpha: 8 },
    // Phi-2's real widths (so records and rows have their real sizes), one layer instead of 32.
    importConfigJson: { ...PHI2_CONFIG_JSON, num_hidden_layers: 1 },
  };
}

/** "512x2560x2560" */
export function shapeText(...dims: number[]): string {
  return dims.join('x');
}
