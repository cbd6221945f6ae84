import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, type AdapterFiles } from '../engine/adapters/files';
import { encodeGgufAdapter, type GgufAdapterType } from '../engine/adapters/gguf';
import { CliUsageError, parseFlags, required } from './args';

/** The adapter commands of the CLI: they read a PEFT adapter folder and need no GPU. */

/** adapter_config.json + adapter_model.safetensors from a folder, with a clear error for what is missing. */
export function readAdapterFolder(dir: string): AdapterFiles {
  const read = (name: string) => {
    try {
      return new Uint8Array(readFileSync(join(dir, name)));
    } catch (err) {
      throw new Error(`cannot read ${join(dir, name)}: ${(err as Error).message}. --adapter must be a PEFT adapter folder (${ADAPTER_CONFIG} + ${ADAPTER_WEIGHTS}).`);
    }
  };
  return { [ADAPTER_CONFIG]: read(ADAPTER_CONFIG), [ADAPTER_WEIGHTS]: read(ADAPTER_WEIGHTS) };
}

export const EXPORT_GGUF_USAGE = 'usage: export-gguf --adapter ADAPTER_DIR --out FILE.gguf [--type f32|f16] [--name NAME (default: the folder name)]   (a LoRA adapter for llama.cpp and Ollama)';

export async function exportGgufCommand(args: string[]): Promise<number> {
  const f = parseFlags(args, ['adapter', 'out', 'type', 'name'], EXPORT_GGUF_USAGE);
  const type = (f.get('type') ?? 'f32') as GgufAdapterType;
  if (type !== 'f32' && type !== 'f16') throw new CliUsageError(`--type must be f32 or f16, got "${f.get('type')}"\n${EXPORT_GGUF_USAGE}`);
  const out = required(f, 'out', EXPORT_GGUF_USAGE);
  const dir = required(f, 'adapter', EXPORT_GGUF_USAGE);
  const { bytes, summary } = encodeGgufAdapter(readAdapterFolder(dir), { type, name: f.get('name') ?? basename(resolve(dir)) });
  writeFileSync(out, bytes);
  const s = summary.settings;
  console.error(
    `wrote ${out}: ${summary.tensors.length} ${type.toUpperCase()} tensors (r ${s.r}, ${s.targets.join(', ')}), ` +
      `adapter.lora.alpha ${summary.alpha}${s.useRslora ? ` (rsLoRA: alpha ${s.alpha} x sqrt(r), so llama.cpp's alpha / r is alpha / sqrt(r))` : ''}, ${bytes.length} bytes`,
  );
  return 0;
}
