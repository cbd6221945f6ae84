import { strToU8, zipSync } from 'fflate';
import { parseSafetensors } from '../weights/safetensors';
import { serializeSafetensors } from '../weights/safetensors-write';
import { loraModules, loraParameterCount, type LinearShapes, type LoraSettings } from '../../shared/lora';
import { AdapterError, exportAdapterConfig, planAdapterTensors, readAdapterConfig, resolveAdapterConfig, type PeftLoraConfig } from './peft';
import { readAdapterConfigJson } from './config-json';

/**
 * A PEFT adapter as files: adapter_config.json + adapter_model.safetensors, alone or in one .zip.
 * Export writes what PeftModel.from_pretrained reads; import checks the adapter against the model
 * before anything reaches the GPU.
 */

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

export interface AdapterFiles {
  [ADAPTER_CONFIG]: Uint8Array;
  [ADAPTER_WEIGHTS]: Uint8Array;
}

export interface AdapterTensors {
  settings: LoraSettings;
  baseModel: string | null;
  /** PEFT-named tensors, f32. */
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

export function encodeAdapter(
  settings: LoraSettings,
  baseModel: string | null,
  tensors: ReadonlyMap<string, { shape: number[]; data: Float32Array }>,
): AdapterFiles {
  const config = exportAdapterConfig(settings, baseModel);
  const weights = serializeSafetensors(
    [...tensors].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: t.data })),
    { format: 'pt' },
  );
  return { [ADAPTER_CONFIG]: strToU8(JSON.stringify(config, null, 2)), [ADAPTER_WEIGHTS]: weights };
}

export function zipAdapter(files: AdapterFiles): Uint8Array {
  return zipSync({ [ADAPTER_CONFIG]: files[ADAPTER_CONFIG], [ADAPTER_WEIGHTS]: [files[ADAPTER_WEIGHTS], { level: 0 }] });
}

/**
 * The largest adapter_model.safetensors an adapter with these settings can be on a model of these
 * shapes: every LoRA parameter in F32, plus a generous JSON header (512 bytes a tensor, 64 KiB of
 * metadata). Downloads and archives are cut off past it.
 */
export function adapterWeightsLimit(settings: LoraSettings, shapes: LinearShapes): number {
  const tensors = 2 * loraModules(settings, shapes).length;
  return loraParameterCount(settings, shapes) * 4 + tensors * 512 + 64 * 1024;
}

/** Reads adapter_config.json (bounded: see readAdapterConfigJson) and checks its values. */
export function readAdapterConfigBytes(bytes: Uint8Array): PeftLoraConfig {
  return readAdapterConfig(readAdapterConfigJson(bytes, ADAPTER_CONFIG), ADAPTER_CONFIG);
}

/**
 * Reads and checks an adapter against the model's linear shapes: its settings resolved on the model's
 * own module names, every expected tensor present with its shape, and every value finite.
 */
export function decodeAdapter(files: AdapterFiles, model: LinearShapes): AdapterTensors {
  const config = readAdapterConfigBytes(files[ADAPTER_CONFIG]);
  const settings = resolveAdapterConfig(config, model, ADAPTER_CONFIG);
  const file = parseSafetensors(files[ADAPTER_WEIGHTS], ADAPTER_WEIGHTS);
  const infos = new Map(file.header.tensors.map((t) => [t.name, { shape: t.shape, dtype: t.dtype }]));
  const plan = planAdapterTensors(settings, model, infos);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const p of plan) {
    for (const name of [p.a, p.b]) {
      const data = file.float32(name);
      const bad = data.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) {
        throw new AdapterError(
          `${ADAPTER_WEIGHTS}: ${name} holds ${describeNonFinite(data[bad])} at element ${bad.toLocaleString('en-US')}; a usable adapter has finite weights only. ` +
            'The training that produced it diverged, or the file is damaged.',
        );
      }
      const canonical = name.replace('.default.weight', '.weight');
      tensors.set(canonical, { shape: [...infos.get(name)!.shape], data });
    }
  }
  return { settings, baseModel: config.baseModel, tensors };
}

function describeNonFinite(x: number): string {
  return Number.isNaN(x) ? 'NaN' : x > 0 ? 'infinity' : '-infinity';
}
