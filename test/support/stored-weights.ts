/**
 * What a stored (or uploaded) parameter must hold, computed from the checkpoint's bytes with the
 * float64 references, and byte-exact comparisons that stay fast on megabytes.
 */
import { expect } from 'vitest';
import type { TensorEntry } from '../../src/engine/store/schema';
import type { WeightStore } from '../../src/engine/store/store';
import { parseSafetensors, type SafetensorsFile } from '../../src/engine/weights/safetensors';
import { halfToNumberRef, numberToHalfRef, quantizeRowsRef } from '../reference/quantize';

export interface ExpectedTensor {
  /** The stored layout's bytes: packed int8 / F16 words, or f32 values. */
  data: Uint8Array;
  /** int8 only: f32 scales. */
  scales: Uint8Array | null;
}

/** The expected stored bytes of a parameter from its F16 source, by the references. */
export function expectedStored(file: SafetensorsFile, hfName: string, dtype: TensorEntry['dtype'], rows: number, cols: number): ExpectedTensor {
  const source = file.header.tensors.find((t) => t.name === hfName)!.dtype;
  const raw = file.bytes(hfName).slice();
  if (dtype === 'f16' && source === 'F16') return { data: raw, scales: null };
  // every value of an F16, BF16 or F32 source is exact in float32
  const values = source === 'F16' ? Array.from(new Uint16Array(raw.buffer), halfToNumberRef) : Array.from(file.float32(hfName));
  if (dtype === 'f16') return { data: new Uint8Array(Uint16Array.from(values, numberToHalfRef).buffer), scales: null };
  if (dtype === 'f32') return { data: new Uint8Array(Float32Array.from(values).buffer), scales: null };
  const ref = quantizeRowsRef(values, rows, cols);
  // int8 in row-major order is byte j of word w = element 4w + j on a little-endian host
  return { data: new Uint8Array(ref.q.buffer), scales: new Uint8Array(Float32Array.from(ref.scales, Math.fround).buffer) };
}

export function expectSameBytes(ours: Uint8Array, ref: Uint8Array, what: string): void {
  const a = Buffer.from(ours.buffer, ours.byteOffset, ours.byteLength);
  const b = Buffer.from(ref.buffer, ref.byteOffset, ref.byteLength);
  if (a.equals(b)) return;
  let i = 0;
  while (i < Math.min(a.length, b.length) && a[i] === b[i]) i++;
  expect.fail(`${what}: ${a.length} vs ${b.length} bytes, first difference at byte ${i} (${a[i]} vs ${b[i]})`);
}

/** Reads every stored record of a model back and compares each parameter with the reference. */
export async function expectStoredModelMatches(store: WeightStore, modelId: string, shards: Map<string, Uint8Array>): Promise<number> {
  const files = new Map([...shards].map(([name, bytes]) => [name, parseSafetensors(bytes, name)]));
  const entries = await store.getTensors(modelId);
  expect(entries.length).toBeGreaterThan(0);
  let checked = 0;
  for (const e of entries) {
    expect(e.complete, `${e.key} complete`).toBe(true);
    const data = new Uint8Array(e.dtype === 'i8' ? e.rows * e.cols : e.rows * e.cols * (e.dtype === 'f16' ? 2 : 4));
    const scales = e.dtype === 'i8' ? new Uint8Array(e.rows * 4) : null;
    const rowBytes = data.length / e.rows;
    for await (const r of store.readRecords(e)) {
      data.set(new Uint8Array(r.data), r.rowStart * rowBytes);
      if (scales) scales.set(new Uint8Array(r.scales!), r.rowStart * 4);
    }
    const want = expectedStored(files.get(e.file)!, e.hfName, e.dtype, e.rows, e.cols);
    expectSameBytes(data, want.data, `${e.key} data`);
    if (scales) expectSameBytes(scales, want.scales!, `${e.key} scales`);
    checked++;
  }
  return checked;
}
