import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf, GGMLQuantizationType, GGUFValueType } from '@huggingface/gguf';
import { afterAll, describe, expect, it } from 'vitest';
import { exportGgufCommand } from '../../../../src/cli/adapter-commands';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, type AdapterFiles } from '../../../../src/engine/adapters/files';
import { encodeGgufAdapter, type GgufAdapterType } from '../../../../src/engine/adapters/gguf';
import { LORA_TARGETS, type LinearShapes, type LoraSettings, type LoraTarget } from '../../../../src/shared/lora';
import { parseSafetensors } from '../../../../src/engine/weights/safetensors';
import { serializeSafetensors } from '../../../../src/engine/weights/safetensors-write';
import { FIXTURES } from '../../../support/fixtures';
import { makeAdapter } from '../../../support/adapters';

/**
 * The GGUF export read back with an independent reader (@huggingface/gguf): the metadata llama.cpp's
 * loader reads, every tensor's name, ggml shape, type and offset, and its values against the PEFT file.
 * The shape checks are the ones src/llama-adapter.cpp makes before it accepts an adapter.
 */

const dir = mkdtempSync(join(tmpdir(), 'gguf-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** GGUF names by Phi target, written out here rather than imported, so a wrong mapping fails. */
const EXPECTED_NAME: Record<LoraTarget, string> = { q_proj: 'attn_q', k_proj: 'attn_k', v_proj: 'attn_v', dense: 'attn_output', fc1: 'ffn_up', fc2: 'ffn_down' };

let files = 0;
async function readBack(bytes: Uint8Array) {
  const path = join(dir, `adapter-${++files}.gguf`);
  writeFileSync(path, bytes);
  const parsed = await gguf(path, { allowLocalFile: true, typedMetadata: true });
  /** Values of a tensor as the file holds them, widened to f32. */
  const values = (name: string): Float32Array => {
    const info = parsed.tensorInfos.find((t) => t.name === name)!;
    const count = info.shape.reduce((a, b) => a * Number(b), 1);
    const start = Number(parsed.tensorDataOffset + info.offset);
    const copy = bytes.slice(start, start + count * (info.dtype === GGMLQuantizationType.F32 ? 4 : 2));
    if (info.dtype === GGMLQuantizationType.F32) return new Float32Array(copy.buffer);
    return Float32Array.from(new Uint16Array(copy.buffer), halfToNumber);
  };
  // The reader types metadata per known architecture; an adapter's keys are read as plain records.
  const metadata = parsed.metadata as unknown as Record<string, unknown>;
  const typedMetadata = parsed.typedMetadata as unknown as Record<string, { type: GGUFValueType; value: unknown }>;
  return { ...parsed, metadata, typedMetadata, values };
}

/** IEEE half to number, written independently of the engine's table. */
function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

function peftFiles(path: string): AdapterFiles {
  return { [ADAPTER_CONFIG]: new Uint8Array(readFileSync(join(path, ADAPTER_CONFIG))), [ADAPTER_WEIGHTS]: new Uint8Array(readFileSync(join(path, ADAPTER_WEIGHTS))) };
}

/** What the file must hold for an adapter: every (layer, target) pair, from the PEFT file itself. */
function expectMatchesPeft(read: Awaited<ReturnType<typeof readBack>>, files: AdapterFiles, layers: number[], targets: readonly LoraTarget[], type: GgufAdapterType): void {
  const peft = parseSafetensors(files[ADAPTER_WEIGHTS]);
  const byName = new Map(read.tensorInfos.map((t) => [t.name, t]));
  expect(read.tensorInfos.length).toBe(2 * layers.length * targets.length);
  let worst = 0;
  for (const layer of layers) {
    for (const target of targets) {
      const block = target === 'fc1' || target === 'fc2' ? 'mlp' : 'self_attn';
      const peftName = (ab: 'A' | 'B') => `base_model.model.model.layers.${layer}.${block}.${target}.lora_${ab}.weight`;
      const [r, inFeatures] = peft.header.tensors.find((t) => t.name === peftName('A'))!.shape;
      const [outFeatures] = peft.header.tensors.find((t) => t.name === peftName('B'))!.shape;
      const a = byName.get(`blk.${layer}.${EXPECTED_NAME[target]}.weight.lora_a`);
      const b = byName.get(`blk.${layer}.${EXPECTED_NAME[target]}.weight.lora_b`);
      expect(a, `lora_a of layer ${layer} ${target}`).toBeDefined();
      expect(b, `lora_b of layer ${layer} ${target}`).toBeDefined();
      // ggml order: lora_a [in, r], lora_b [r, out]. llama-adapter.cpp: model.ne[0] == a.ne[0],
      // model.ne[1] == b.ne[1] (the model's weight is ne [in, out]), a.ne[1] == b.ne[0] == rank.
      expect(a!.shape.map(Number)).toEqual([inFeatures, r]);
      expect(b!.shape.map(Number)).toEqual([r, outFeatures]);
      expect(a!.n_dims).toBe(2);
      const dtype = type === 'f32' ? GGMLQuantizationType.F32 : GGMLQuantizationType.F16;
      expect(a!.dtype).toBe(dtype);
      expect(b!.dtype).toBe(dtype);
      for (const [info, ab] of [[a!, 'A'], [b!, 'B']] as const) {
        expect(Number(info.offset) % 32).toBe(0);
        const want = peft.float32(peftName(ab));
        const got = read.values(info.name);
        expect(got.length).toBe(want.length);
        for (let i = 0; i < want.length; i++) {
          const err = Math.abs(got[i] - want[i]);
          // F16: the nearest half, so within half an ulp (2^-11 relative; 2^-25 absolute for subnormals).
          const allowed = type === 'f32' ? 0 : Math.max(Math.abs(want[i]) * 2 ** -11, 2 ** -25);
          if (err > allowed) throw new Error(`${info.name}[${i}]: ${got[i]} against ${want[i]} (allowed ${allowed})`);
          worst = Math.max(worst, err);
        }
      }
    }
  }
  console.log(`GGUF ${type}: ${read.tensorInfos.length} tensors, largest difference from the PEFT values ${worst.toExponential(2)}`);
}

describe('GGUF LoRA export (llama.cpp convert_lora_to_gguf.py layout)', () => {
  const realPeft = join(FIXTURES, 'tiny-phi/golden/adapter');

  it.each(['f32', 'f16'] as const)('writes the PEFT adapter written by Python as a %s llama.cpp adapter', async (type) => {
    const files = peftFiles(realPeft);
    const { bytes } = encodeGgufAdapter(files, { type, name: 'tiny-lora' });
    const read = await readBack(bytes);
    expect(read.metadata.version).toBe(3);
    expect(read.metadata['general.architecture']).toBe('phi2');
    expect(read.metadata['general.type']).toBe('adapter');
    expect(read.metadata['adapter.type']).toBe('lora');
    expect(read.metadata['general.name']).toBe('tiny-lora');
    expect(read.metadata['adapter.lora.alpha']).toBe(8);
    expect(read.typedMetadata['adapter.lora.alpha'].type).toBe(GGUFValueType.FLOAT32);
    expect(read.typedMetadata['general.quantization_version']).toEqual({ type: GGUFValueType.UINT32, value: 2 });
    // The converter's key order: architecture (GGUFWriter), type and adapter.type (set_type), name, alpha, quantization version.
    expect(Object.keys(read.metadata).filter((k) => k !== 'version' && k !== 'tensor_count' && k !== 'kv_count')).toEqual([
      'general.architecture',
      'general.type',
      'adapter.type',
      'general.name',
      'adapter.lora.alpha',
      'general.quantization_version',
    ]);
    expectMatchesPeft(read, files, [0, 1], LORA_TARGETS, type);
    // The converter's tensor order: the PEFT names sorted bytewise, lora_a before lora_b.
    expect(read.tensorInfos.slice(0, 4).map((t) => t.name)).toEqual([
      'blk.0.ffn_up.weight.lora_a',
      'blk.0.ffn_up.weight.lora_b',
      'blk.0.ffn_down.weight.lora_a',
      'blk.0.ffn_down.weight.lora_b',
    ]);
    expect(read.tensorInfos.slice(4, 12).map((t) => t.name.split('.')[2])).toEqual(['attn_output', 'attn_output', 'attn_k', 'attn_k', 'attn_q', 'attn_q', 'attn_v', 'attn_v']);
    // The data section starts on the 32-byte alignment and the last tensor ends the file, padded.
    expect(Number(read.tensorDataOffset) % 32).toBe(0);
    expect(bytes.length % 32).toBe(0);
  });

  it('orders layers as the converter does (by name: 0, 1, 10, 11, ..., 2)', async () => {
    const settings: LoraSettings = { r: 2, alpha: 2, dropout: 0, useRslora: false, targets: ['q_proj'], layers: 'all' };
    const shapes: LinearShapes = { hidden: 8, intermediate: 16, layers: 12 };
    const read = await readBack(encodeGgufAdapter(makeAdapter(3, settings, shapes)).bytes);
    expect(read.tensorInfos.filter((t) => t.name.endsWith('lora_a')).map((t) => Number(t.name.split('.')[1]))).toEqual([0, 1, 10, 11, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('makes llama.cpp scale an rsLoRA adapter by alpha / sqrt(r), and writes only the adapted layers and targets', async () => {
    const settings: LoraSettings = { r: 3, alpha: 8, dropout: 0, useRslora: true, targets: ['v_proj', 'fc2'], layers: [1, 3] };
    const shapes: LinearShapes = { hidden: 8, intermediate: 16, layers: 4 };
    const files = makeAdapter(5, settings, shapes, 'microsoft/phi-2');
    const read = await readBack(encodeGgufAdapter(files, { type: 'f32' }).bytes);
    const alpha = read.metadata['adapter.lora.alpha'] as number;
    // llama_adapter_lora_weight::get_scale: alpha / rank, rank = lora_b.ne[0].
    const rank = Number(read.tensorInfos.find((t) => t.name.endsWith('lora_b'))!.shape[0]);
    expect(rank).toBe(3);
    expect(alpha / rank).toBeCloseTo(8 / Math.sqrt(3), 6);
    expect(read.metadata['general.name']).toBe('phi-2-lora');
    expectMatchesPeft(read, files, [1, 3], ['v_proj', 'fc2'], 'f32');
  });

  it('keeps plain LoRA alpha as it is', async () => {
    const settings: LoraSettings = { r: 16, alpha: 32, dropout: 0.05, useRslora: false, targets: ['dense'], layers: 'all' };
    const read = await readBack(encodeGgufAdapter(makeAdapter(7, settings)).bytes);
    expect((read.metadata['adapter.lora.alpha'] as number) / 16).toBe(2);
  });

  it('refuses an adapter whose weights do not match its config, saying which tensor', () => {
    const files = makeAdapter(1);
    const peft = parseSafetensors(files[ADAPTER_WEIGHTS]);
    const keep = peft.header.tensors.filter((t) => !t.name.includes('layers.1.mlp.fc1.lora_B'));
    const without = serializeSafetensors(keep.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, data: peft.float32(t.name) })));
    expect(() => encodeGgufAdapter({ ...files, [ADAPTER_WEIGHTS]: without })).toThrow(/lacks base_model\.model\.model\.layers\.1\.mlp\.fc1\.lora_B\.weight/);
    const extra = serializeSafetensors([
      ...peft.header.tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, data: peft.float32(t.name) })),
      { name: 'base_model.model.lm_head.weight', dtype: 'F32', shape: [2, 2], data: new Float32Array(4) },
    ]);
    expect(() => encodeGgufAdapter({ ...files, [ADAPTER_WEIGHTS]: extra })).toThrow(/lm_head\.weight.*lora_a\/lora_b pairs only/);
  });

  it('refuses F16 for values a half cannot hold, pointing to F32', () => {
    const settings: LoraSettings = { r: 1, alpha: 1, dropout: 0, useRslora: false, targets: ['q_proj'], layers: [0] };
    const tensors = [
      { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', dtype: 'F32' as const, shape: [1, 4], data: new Float32Array([1, 2, 1e6, 3]) },
      { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', dtype: 'F32' as const, shape: [4, 1], data: new Float32Array(4) },
    ];
    const base = makeAdapter(1, settings, { hidden: 4, intermediate: 8, layers: 1 });
    const files = { ...base, [ADAPTER_WEIGHTS]: serializeSafetensors(tensors) };
    expect(() => encodeGgufAdapter(files, { type: 'f16' })).toThrow(/index 2 has no F16 equivalent.*as F32/);
    expect(() => encodeGgufAdapter(files, { type: 'f32' })).not.toThrow();
  });

  it('export-gguf writes the file from a PEFT folder, and refuses a bad --type', async () => {
    const out = join(dir, 'cli.gguf');
    expect(await exportGgufCommand(['--adapter', realPeft, '--out', out, '--type', 'f16'])).toBe(0);
    const bytes = new Uint8Array(readFileSync(out));
    const read = await readBack(bytes);
    expectMatchesPeft(read, peftFiles(realPeft), [0, 1], LORA_TARGETS, 'f16');
    await expect(exportGgufCommand(['--adapter', realPeft, '--out', out, '--type', 'q4'])).rejects.toThrow(/--type must be f32 or f16/);
    await expect(exportGgufCommand(['--adapter', dir, '--out', out])).rejects.toThrow(/must be a PEFT adapter folder/);
  });
});
