import { openAsBlob, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAdapterConfig } from '../../src/engine/adapters/peft';
import { parseSafetensors, type SafetensorsFile } from '../../src/engine/weights/safetensors';
import { FilesSource, type FileLike } from '../../src/engine/weights/files';

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

/** A directory's files as Blob-backed FileLikes (streamed from disk, never read whole). */
export async function directoryFiles(dir: string): Promise<FileLike[]> {
  const names = readdirSync(dir).filter((n) => statSync(join(dir, n)).isFile());
  return Promise.all(
    names.map(async (name) => {
      const blob = await openAsBlob(join(dir, name));
      return {
        name,
        size: blob.size,
        stream: () => blob.stream() as ReadableStream<Uint8Array>,
        slice: (start?: number, end?: number) => blob.slice(start, end) as unknown as { stream(): ReadableStream<Uint8Array> },
        text: () => blob.text(),
      };
    }),
  );
}

export async function directorySource(dir: string): Promise<FilesSource> {
  return new FilesSource(await directoryFiles(dir), dir);
}
