/**
 * PhiWeightsWriter, the one path that puts Phi's parameters on the GPU (from the store, a checkpoint or
 * random rows): rows in any order and pieces land where they belong, the embedding and lm_head split
 * into row chunks, and every misuse is refused naming the parameter.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GpuTensor } from '../../../../src/engine/gpu/tensor';
import { parsePhiConfig } from '../../../../src/engine/weights/config';
import { PhiWeightsWriter, rowChunks } from '../../../../src/engine/weights/gpu-weights';
import { testGpu } from '../../../support/gpu';
import { FIXTURES } from '../../../support/safetensors-fixtures';

// tiny-phi's shapes with a small vocabulary: hidden 64, intermediate 256, 2 layers.
const config = parsePhiConfig({ ...JSON.parse(readFileSync(join(FIXTURES, 'tiny-phi/config.json'), 'utf8')), vocab_size: 100 });

/** Bytes 0, 1, 2, ... offset by `seed`, as u32 words (what the writer takes for any dtype). */
function pattern(bytes: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: bytes }, (_, i) => (i * 7 + seed) & 0xff);
}

describe('PhiWeightsWriter', () => {
  it('takes rows in any order and in pieces, straddling row chunks, and assembles every parameter', async () => {
    const gpu = await testGpu();
    // 100 rows of 128 bytes (f16 x 64) in chunks of at most 30 rows: [0,30) [30,60) [60,90) [90,100).
    const writer = new PhiWeightsWriter(gpu, config, 'int8', { maxBindingBytes: 30 * 128, stagingChunkBytes: 1024 });
    const expected = new Map<string, { data: Uint8Array; scales: Float32Array | null }>();
    const specs = [...writer.layout.specs].reverse();
    for (const [n, spec] of specs.entries()) {
      const rows = spec.shape.length === 1 ? 1 : spec.shape[0];
      const cols = spec.shape[spec.shape.length - 1];
      const int8 = spec.part === 'weight' && spec.layer !== null && spec.module !== 'ln';
      const rowBytes = cols * (int8 ? 1 : spec.shape.length === 1 ? 4 : 2);
      const data = pattern(rows * rowBytes, n);
      const scales = int8 ? Float32Array.from({ length: rows }, (_, r) => r + n / 10) : null;
      expected.set(spec.key, { data, scales });
      // Pieces of 7 rows, the last piece first.
      const starts = Array.from({ length: Math.ceil(rows / 7) }, (_, i) => i * 7).reverse();
      for (const start of starts) {
        const end = Math.min(rows, start + 7);
        await writer.write(spec.key, start, data.subarray(start * rowBytes, end * rowBytes), scales?.subarray(start, end));
      }
    }
    const weights = await writer.finish();
    try {
      expect(weights.embedding.map((c) => c.rows)).toEqual(rowChunks(100, 128, 30 * 128));
      expect(weights.embedding.map((c) => c.rows)).toEqual([[0, 30], [30, 60], [60, 90], [90, 100]]);
      const read = async (t: GpuTensor) => new Uint8Array(await gpu.read(t));
      const joined = async (chunks: typeof weights.embedding) => {
        const parts = await Promise.all(chunks.map((c) => read(c.tensor)));
        return Uint8Array.from(parts.flatMap((p) => [...p]));
      };
      expect(await joined(weights.embedding)).toEqual(expected.get('embed.weight')!.data);
      expect(await joined(weights.lmHead.weight)).toEqual(expected.get('lm_head.weight')!.data);
      const fc2 = weights.layers[1].fc2;
      expect(await read(fc2.weight)).toEqual(expected.get('layers.1.fc2.weight')!.data);
      expect(new Float32Array((await read(fc2.scales!)).buffer)).toEqual(expected.get('layers.1.fc2.weight')!.scales);
      expect(await read(weights.layers[0].ln.bias)).toEqual(expected.get('layers.0.ln.bias')!.data);
      expect(await read(weights.finalLn.weight)).toEqual(expected.get('final_ln.weight')!.data);
      expect(weights.bytes).toBeGreaterThanOrEqual([...expected.values()].reduce((a, e) => a + e.data.byteLength + (e.scales?.byteLength ?? 0), 0));
    } finally {
      weights.destroy();
    }
  });

  it('refuses what does not belong, and names what is missing at the end', async () => {
    const gpu = await testGpu();
    const writer = new PhiWeightsWriter(gpu, config, 'int8');
    await expect(writer.write('layers.2.fc1.weight', 0, new Uint8Array(256))).rejects.toThrow(/no parameter named layers\.2\.fc1\.weight in a Phi model with 2 layers/);
    await expect(writer.write('layers.0.q.bias', 0, new Uint8Array(12))).rejects.toThrow(/layers\.0\.q\.bias: 12 bytes at row 0 do not fit \[64\] f32/);
    await expect(writer.write('layers.0.fc1.weight', 250, new Uint8Array(64 * 7), new Float32Array(7))).rejects.toThrow(/at row 250 do not fit \[256,64\] i8/);
    await expect(writer.write('layers.0.fc1.weight', 0, new Uint8Array(64 * 2))).rejects.toThrow(/2 int8 rows need 2 scales/);
    await writer.write('layers.0.ln.weight', 0, new Float32Array(64));
    await expect(writer.finish()).rejects.toThrow(/the model is incomplete: embed\.weight, layers\.0\.ln\.bias, .* and \d+ more not loaded/);
  });

  it('refuses a parameter larger than one storage binding of the device', async () => {
    const gpu = await testGpu();
    const huge = parsePhiConfig({ ...JSON.parse(readFileSync(join(FIXTURES, 'tiny-phi/config.json'), 'utf8')), vocab_size: 100, hidden_size: 8192, num_attention_heads: 64, num_key_value_heads: 64, partial_rotary_factor: 0.25, intermediate_size: 131_072 });
    // Within the config's bounds, yet fc1 alone is 2 GiB of f16: more than one binding holds here.
    expect(() => new PhiWeightsWriter(gpu, huge, 'f16')).toThrow(/layers\.0\.fc1\.weight \(\d+ bytes\) exceeds this GPU's largest storage binding/);
  });
});
