/**
 * Stored models into GPU buffers: the real fixture checkpoints imported (int8 and F16 modes), uploaded
 * record by record, read back and compared exactly with the checkpoint's values through the float64
 * references (dequantised for int8), including the row-chunked embedding and lm_head.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testPlatform } from '../../../support/idb';
import type { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import type { GpuTensor } from '../../../../src/engine/gpu/tensor';
import { StoreError } from '../../../../src/engine/store/errors';
import type { TensorEntry } from '../../../../src/engine/store/schema';
import { WeightStore } from '../../../../src/engine/store/store';
import { F16_TO_NUMBER } from '../../../../src/engine/weights/dtypes';
import { importFromFiles } from '../../../../src/engine/weights/index';
import { LINEAR_NAMES } from '../../../../src/engine/weights/layout';
import { parseSafetensors, type SafetensorsFile } from '../../../../src/engine/weights/safetensors';
import { rowChunks, type PhiWeights, type RowChunk } from '../../../../src/engine/weights/gpu-weights';
import { loadModelToGpu, type LoadProgress } from '../../../../src/engine/weights/upload';
import { compareTensors } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';
import { FIXTURES, fileLike, fixtureBytes } from '../../../support/safetensors-fixtures';
import { expectedStored } from '../../../support/stored-weights';

const platform = { now: () => performance.now() };

async function importFixture(model: string, scheme: 'int8' | 'f16', store: WeightStore) {
  const files = readdirSync(join(FIXTURES, model))
    .filter((n) => n.includes('.'))
    .map((n) => fileLike(n, fixtureBytes(model, n)));
  // small records, so that records straddle the embedding's row chunks
  return importFromFiles(platform, store, files, { scheme, recordBytes: 100_000 });
}

function shardsOf(model: string): Map<string, SafetensorsFile> {
  const index = JSON.parse(new TextDecoder().decode(fixtureBytes(model, 'model.safetensors.index.json'))).weight_map as Record<string, string>;
  return new Map([...new Set(Object.values(index))].map((f) => [f, parseSafetensors(fixtureBytes(model, f), f)]));
}

/** Numbers of a stored layout: int8 values, half values, or f32 values. */
function values(bytes: Uint8Array, dtype: TensorEntry['dtype']): Float64Array {
  const copy = bytes.slice();
  if (dtype === 'i8') return Float64Array.from(new Int8Array(copy.buffer));
  if (dtype === 'f16') return Float64Array.from(new Uint16Array(copy.buffer), (h) => F16_TO_NUMBER[h]);
  return Float64Array.from(new Float32Array(copy.buffer));
}

async function readBytes(gpu: GpuRuntime, t: GpuTensor): Promise<Uint8Array> {
  return new Uint8Array(await gpu.read(t));
}

async function readChunks(gpu: GpuRuntime, chunks: RowChunk[]): Promise<Uint8Array> {
  const parts = await Promise.all(chunks.map((c) => readBytes(gpu, c.tensor)));
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Every GPU tensor of the model against the checkpoint, exactly; dequantised int8 weights too. */
async function expectGpuMatches(gpu: GpuRuntime, w: PhiWeights, store: WeightStore, modelId: string, model: string): Promise<number> {
  const shards = shardsOf(model);
  const entries = new Map((await store.getTensors(modelId)).map((e) => [e.key, e]));
  let compared = 0;
  const check = async (key: string, gpuBytes: Uint8Array, scales?: GpuTensor) => {
    const e = entries.get(key)!;
    const want = expectedStored(shards.get(e.file)!, e.hfName, e.dtype, e.rows, e.cols);
    const c = compareTensors(`${model} ${key} (${e.dtype})`, values(gpuBytes, e.dtype), values(want.data, e.dtype), true);
    expect(c.maxAbsDiff, `${key} differs at ${c.maxAt}`).toBe(0);
    if (scales) {
      const s = new Float32Array(await gpu.read(scales));
      const refScales = new Float32Array(want.scales!.slice().buffer);
      expect(compareTensors(`${model} ${key} scales`, s, refScales, true).maxAbsDiff).toBe(0);
      // dequantised: W[n, k] = q[n, k] * scale[n], against the checkpoint's own values
      const q = new Int8Array(gpuBytes.slice().buffer);
      const deq = Float64Array.from(q, (v, i) => v * s[Math.floor(i / e.cols)]);
      const refDeq = Float64Array.from(new Int8Array(want.data.slice().buffer), (v, i) => v * refScales[Math.floor(i / e.cols)]);
      const original = shards.get(e.file)!.float32(e.hfName);
      const d = compareTensors(`${model} ${key} dequantised`, deq, refDeq);
      expect(d.maxAbsDiff).toBe(0);
      // and within half a quantisation step of the F16 weights it came from (plus the f32 rounding of
      // the scale, at most 127 * 2^-24 of it)
      let worst = 0;
      for (let i = 0; i < deq.length; i++) {
        const step = s[Math.floor(i / e.cols)];
        if (step > 0) worst = Math.max(worst, Math.abs(deq[i] - original[i]) / step);
      }
      expect(worst).toBeLessThanOrEqual(0.5 + 127 * 2 ** -24);
    }
    compared++;
  };
  await check('embed.weight', await readChunks(gpu, w.embedding));
  await check('lm_head.weight', await readChunks(gpu, w.lmHead.weight));
  await check('lm_head.bias', await readBytes(gpu, w.lmHead.bias));
  await check('final_ln.weight', await readBytes(gpu, w.finalLn.weight));
  await check('final_ln.bias', await readBytes(gpu, w.finalLn.bias));
  for (let i = 0; i < w.layers.length; i++) {
    const layer = w.layers[i];
    await check(`layers.${i}.ln.weight`, await readBytes(gpu, layer.ln.weight));
    await check(`layers.${i}.ln.bias`, await readBytes(gpu, layer.ln.bias));
    for (const name of LINEAR_NAMES) {
      const lin = layer[name];
      await check(`layers.${i}.${name}.weight`, await readBytes(gpu, lin.weight), lin.scales);
      await check(`layers.${i}.${name}.bias`, await readBytes(gpu, lin.bias));
    }
  }
  expect(compared).toBe(entries.size);
  return compared;
}

describe('loading stored weights to the GPU', () => {
  for (const [model, scheme] of [
    ['golden', 'int8'],
    ['golden', 'f16'],
    ['tiny-phi', 'int8'],
  ] as const) {
    it(`uploads ${model} (${scheme}) exactly, with typed parameters per layer`, async () => {
      const gpu = await testGpu();
      const store = await WeightStore.open(testPlatform());
      const manifest = await importFixture(model, scheme, store);
      const progress: LoadProgress[] = [];
      // tiny-phi: a binding limit of 1 MB splits its 6.5 MB embedding and head into row chunks
      const maxBindingBytes = model === 'tiny-phi' ? 1_000_000 : undefined;
      const w = await loadModelToGpu(gpu, store, manifest.id, (p) => progress.push(p), { maxBindingBytes, stagingChunkBytes: 1_000_000 });
      try {
        const { hiddenSize: C, intermediateSize: I, vocabSize: V, numLayers } = w.config;
        expect(w.scheme).toBe(scheme);
        expect(w.layers.length).toBe(numLayers);
        const fc2 = w.layers[1].fc2;
        expect(fc2.weight.shape).toEqual([C, I]);
        expect(fc2.weight.dtype).toBe(scheme === 'int8' ? 'i8' : 'f16');
        expect(fc2.bias.shape).toEqual([C]);
        if (scheme === 'int8') expect(fc2.scales!.shape).toEqual([C]);
        else expect(fc2.scales).toBeUndefined();
        expect(w.layers[0].q.weight.shape).toEqual([C, C]);
        expect(w.layers[0].ln.weight.dtype).toBe('f32');
        expect(w.lmHead.bias.shape).toEqual([V]);
        const expectedChunks = maxBindingBytes ? rowChunks(V, C * 2, maxBindingBytes) : [[0, V]];
        expect(w.embedding.map((c) => c.rows)).toEqual(expectedChunks);
        expect(w.lmHead.weight.map((c) => c.rows)).toEqual(expectedChunks);
        for (const c of w.embedding) expect(c.tensor.shape).toEqual([c.rows[1] - c.rows[0], C]);
        if (maxBindingBytes) expect(w.embedding.length).toBe(7);
        const last = progress[progress.length - 1];
        expect(last.bytesDone).toBe(last.bytesTotal);
        expect(last.tensorsDone).toBe(last.tensorsTotal);
        expect(last.bytesTotal).toBe(manifest.storedBytes);
        await expectGpuMatches(gpu, w, store, manifest.id, model);
      } finally {
        w.destroy();
      }
    });
  }

  it('refuses models that are missing, incomplete or damaged', async () => {
    const gpu = await testGpu();
    const store = await WeightStore.open(testPlatform());
    await expect(loadModelToGpu(gpu, store, 'nothing')).rejects.toThrow(/No model nothing is stored/);
    const manifest = await importFixture('golden', 'int8', store);
    await store.putModel({ ...manifest, complete: false });
    await expect(loadModelToGpu(gpu, store, manifest.id)).rejects.toThrow(/only partly stored/);
    await store.putModel(manifest);
    const fc1 = (await store.getTensor(manifest.id, 'layers.1.fc1.weight'))!;
    const rec = await store.readRecord(fc1, 0);
    new Uint8Array(rec.data)[3] ^= 1;
    await store.db.put('records', rec);
    const err = await loadModelToGpu(gpu, store, manifest.id).catch((e) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe('corrupt');
    expect(err.message).toMatch(/Record 0 of layers\.1\.fc1\.weight/);
  });

  it('splits rows into binding-sized chunks', () => {
    expect(rowChunks(10, 4, 12)).toEqual([
      [0, 3],
      [3, 6],
      [6, 9],
      [9, 10],
    ]);
    expect(rowChunks(51200, 5120, 128 * 2 ** 20)).toEqual([[0, 26214], [26214, 51200]]);
    expect(() => rowChunks(2, 100, 50)).toThrow(/exceeds the 50-byte binding limit/);
  });
});
