import { describe, expect, it } from 'vitest';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, decodeAdapter, type AdapterFiles } from '../../../../src/engine/adapters/files';
import { parseAdapterConfig } from '../../../../src/engine/adapters/peft';
import { AdapterStore } from '../../../../src/engine/adapters/store';
import { parseSafetensors } from '../../../../src/engine/weights/safetensors';
import { serializeSafetensors } from '../../../../src/engine/weights/safetensors-write';
import { freshStore, makeAdapter, SETTINGS, SHAPES } from '../../../support/adapters';
import { adapterRefusal as refusal } from '../../../support/refusal';

const TINY = { hidden: 64, intermediate: 256, layers: 2 };

const config = (extra: Record<string, unknown>) => ({ r: 4, lora_alpha: 8, target_modules: ['q_proj'], ...extra });

/** The adapter with one config key changed. */
function withConfig(files: AdapterFiles, change: Record<string, unknown>): AdapterFiles {
  const json = { ...JSON.parse(new TextDecoder().decode(files[ADAPTER_CONFIG])), ...change };
  return { ...files, [ADAPTER_CONFIG]: new TextEncoder().encode(JSON.stringify(json)) };
}

/** The adapter with one value of one tensor replaced. */
function withValue(files: AdapterFiles, tensor: string, index: number, value: number): AdapterFiles {
  const file = parseSafetensors(files[ADAPTER_WEIGHTS]);
  const tensors = file.header.tensors.map((t) => {
    const data = file.float32(t.name);
    if (t.name === tensor) data[index] = value;
    return { name: t.name, dtype: 'F32' as const, shape: t.shape, data };
  });
  return { ...files, [ADAPTER_WEIGHTS]: serializeSafetensors(tensors, { format: 'pt' }) };
}

describe('adapter values', () => {
  it('reads a missing lora_alpha as PEFT does (8), not as r', () => {
    expect(parseAdapterConfig({ r: 16, target_modules: ['q_proj'] }).alpha).toBe(8);
    expect(parseAdapterConfig({ r: 16, lora_alpha: null, target_modules: ['q_proj'] }).alpha).toBe(8);
  });

  it('refuses a non-positive, absurd or non-numeric lora_alpha, naming the field', () => {
    for (const alpha of [0, -4, 1e9, '8', true]) {
      expect(refusal(() => parseAdapterConfig(config({ lora_alpha: alpha })))).toMatch(/lora_alpha must be a positive number of at most 65536/);
    }
  });

  it('refuses r of 0, fractions, huge r and r larger than the layer, naming the field', () => {
    for (const r of [0, 2.5, -1, 5000, '4']) expect(refusal(() => parseAdapterConfig(config({ r })))).toMatch(/: r must be a positive integer of at most 1024/);
    // q_proj of a 64-wide model is 64 -> 64: rank 65 cannot be.
    expect(refusal(() => parseAdapterConfig(config({ r: 65 }), ADAPTER_CONFIG, TINY))).toMatch(/r is 65, larger than model\.layers\.0\.self_attn\.q_proj allows \(64 -> 64, so at most 64\)/);
    expect(parseAdapterConfig(config({ r: 64 }), ADAPTER_CONFIG, TINY).r).toBe(64);
  });

  it('refuses dropout outside [0, 1), naming the field', () => {
    for (const d of [1, -0.1, 7, 'x']) expect(refusal(() => parseAdapterConfig(config({ lora_dropout: d })))).toMatch(/lora_dropout must be a probability at least 0 and below 1/);
    expect(parseAdapterConfig(config({ lora_dropout: 0.999 })).dropout).toBe(0.999);
  });

  it('refuses layers_to_transform naming layers the model does not have, or no layers at all', () => {
    expect(refusal(() => parseAdapterConfig(config({ layers_to_transform: [1, 5, 40] }), ADAPTER_CONFIG, TINY))).toMatch(
      /layers_to_transform names layers 5, 40, but the model has 2 layers \(0 to 1\)/,
    );
    for (const bad of [[-1], [0.5], 'all', [[0]]]) expect(refusal(() => parseAdapterConfig(config({ layers_to_transform: bad })))).toMatch(/layers_to_transform must be a layer number/);
  });

  it('refuses NaN and infinite weights, naming the tensor and the element', () => {
    const files = makeAdapter(1);
    const name = 'base_model.model.model.layers.1.mlp.fc1.lora_B.weight';
    expect(decodeAdapter(files, SHAPES).tensors.size).toBe(12);
    expect(refusal(() => decodeAdapter(withValue(files, name, 5, Number.NaN), SHAPES))).toMatch(new RegExp(`${name.replaceAll('.', '\\.')} holds NaN at element 5`));
    expect(refusal(() => decodeAdapter(withValue(files, name, 0, -Infinity), SHAPES))).toMatch(/holds -infinity at element 0/);
  });

  it('checks an adapter stored while no model was loaded against the model it is used with', async () => {
    // Stored without a model to compare with: its layers_to_transform is only a list of numbers then.
    const db = await freshStore();
    const store = new AdapterStore(db.db as never);
    const files = withConfig(makeAdapter(2, { ...SETTINGS, layers: [1] }), { layers_to_transform: [1, 9] });
    const info = await store.put(files, { name: 'later', origin: { kind: 'upload', files: [] } });
    expect(info.settings.layers).toEqual([1, 9]);
    expect(refusal(() => decodeAdapter(files, SHAPES))).toMatch(/layers_to_transform names layer 9, but the model has 2 layers/);
  });
});
