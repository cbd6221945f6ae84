import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAdapterConfig } from '../../src/engine/adapters/peft';
import { parseSafetensors, type SafetensorsFile } from '../../src/engine/weights/safetensors';

/** The golden fixtures from Hugging Face transformers + PEFT, beside the project. */
export const FIXTURES = join(import.meta.dirname, '../../../shared/fixtures');
export const MODELS = { golden: join(FIXTURES, 'golden'), tiny: join(FIXTURES, 'tiny-phi') } as const;

export interface GoldenJson {
  spec: Record<string, unknown>;
  input_ids: number[][];
  single_ids: number[][];
  greedy: { prompt: number[]; generated: number[] };
  text_greedy?: { prompt: string; prompt_ids: number[]; generated: number[]; generated_text: string };
  lora: { labels: number[][]; loss: number; loss_int8: number; scaling: number };
  adamw: { lr: number; betas: [number, number]; eps: number; weight_decay: number; max_grad_norm: number; steps: Array<{ loss: number; grad_norm_before_clip: number }> };
}

export function goldenJson(model: string): GoldenJson {
  return JSON.parse(readFileSync(join(model, 'golden/golden.json'), 'utf8'));
}

export function goldenTensors(model: string, file: string): SafetensorsFile {
  return parseSafetensors(new Uint8Array(readFileSync(join(model, 'golden', file))), file);
}

/** The fixture's golden PEFT adapter (trained: B is not zero, so no gradient is): its settings and its tensors by name. */
export function goldenAdapter(model: string): { settings: ReturnType<typeof parseAdapterConfig>; tensor: (name: string) => Float32Array } {
  const dir = join(model, 'golden/adapter');
  const settings = parseAdapterConfig(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')));
  const file = parseSafetensors(new Uint8Array(readFileSync(join(dir, 'adapter_model.safetensors'))), 'adapter_model.safetensors');
  return { settings, tensor: (name) => file.float32(name) };
}

// The CLI's reading of a checkpoint directory, which the tests use the same way.
export { directoryFiles, directorySource } from '../../src/cli/node-files';
