/**
 * Phi-2 at full size (32 layers, hidden 2560, intermediate 10240, vocab 51200: 5.56 GB of F16 in two
 * shards) streamed through the real import pipeline (reader, header checks, int8 quantiser, records
 * with checksums) into a store that checks and discards. The data is generated on the fly and never
 * held whole; the test asserts the peak JS memory stays under 1 GB and spot-checks records against
 * the float64 reference, regenerating the source rows from their offsets.
 */
import { describe, expect, it } from 'vitest';
import type { TensorEntry, TensorRecord } from '../../../../src/engine/store/schema';
import { PHI2_CONFIG_JSON } from '../../../../src/shared/presets';
import { importModel } from '../../../../src/engine/weights/import';
import { ChecksumSink, syntheticPhi } from '../../../support/safetensors-fixtures';
import { halfToNumberRef, quantizeRowsRef, unpackHalfWords, unpackInt8Words } from '../../../reference/quantize';

const GB = 1e9;

/** Compares every row of a record with the reference computed from the regenerated source rows. */
function checkRecord(checkpoint: ReturnType<typeof syntheticPhi>['checkpoint'], file: string, entry: TensorEntry, record: TensorRecord, rows: number[]) {
  for (const r of rows) {
    const row = record.rowStart + r;
    const src = checkpoint.rowsOf(file, entry.hfName, entry.cols, row, 1);
    if (entry.dtype === 'i8') {
      const ref = quantizeRowsRef(Array.from(src, halfToNumberRef), 1, entry.cols);
      const words = new Uint32Array(record.data, r * entry.cols, entry.cols / 4);
      expect(Array.from(unpackInt8Words(words)), `${entry.key} row ${row}`).toEqual(Array.from(ref.q));
      expect(new Float32Array(record.scales!)[r]).toBe(Math.fround(ref.scales[0]));
    } else if (entry.dtype === 'f16') {
      const words = new Uint32Array(record.data, r * entry.cols * 2, entry.cols / 2);
      expect(Array.from(unpackHalfWords(words)), `${entry.key} row ${row}`).toEqual(Array.from(src));
    } else {
      expect(Array.from(new Float32Array(record.data)), entry.key).toEqual(Array.from(src, halfToNumberRef));
    }
  }
}

describe('streaming import of synthetic checkpoints', () => {
  it('stores every row of a small many-shard checkpoint exactly as the reference', async () => {
    const config = { ...PHI2_CONFIG_JSON, vocab_size: 1000, hidden_size: 96, intermediate_size: 388, num_hidden_layers: 3, num_attention_heads: 3, num_key_value_heads: 3 };
    // shards of about 200 kB: tensors of one layer spread over several files; records of 8 kB
    const { checkpoint, source } = syntheticPhi(config, { shardBytes: 200_000, chunkBytes: 3001 });
    expect(checkpoint.files.length).toBeGreaterThan(3);
    const fileOf = new Map<string, string>();
    for (const f of checkpoint.files) for (const name of f.offsets.keys()) fileOf.set(name, f.name);
    let rows = 0;
    const sink = new ChecksumSink((entry, record) => {
      checkRecord(checkpoint, fileOf.get(entry.hfName)!, entry, record, Array.from({ length: record.rows }, (_, i) => i));
      rows += record.rows;
    });
    const manifest = await importModel({ source, store: sink, recordBytes: 8192 });
    expect(manifest.complete).toBe(true);
    expect(manifest.files.length).toBe(checkpoint.files.length);
    const entries = [...sink.entries.values()];
    expect(entries.length).toBe(3 * 14 + 5);
    expect(rows).toBe(entries.reduce((a, e) => a + e.rows, 0));
    expect(entries.find((e) => e.key === 'layers.2.fc2.weight')).toMatchObject({ shape: [96, 388], dtype: 'i8', rowsPerRecord: 21, recordCount: 5 });
  });


  it('quantises a Phi-2-sized 5.6 GB of F16 under 1 GB of JS memory, spot-checked against the reference', { timeout: 300_000 }, async () => {
    // two shards, the first ending near 5 GB, as on the Hub
    const { checkpoint, source } = syntheticPhi(PHI2_CONFIG_JSON);
    expect(checkpoint.files.map((f) => f.name)).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    const totalBytes = checkpoint.files.reduce((a, f) => a + f.size, 0);
    expect(totalBytes).toBeGreaterThan(5.5 * GB);
    const fileOf = new Map<string, string>();
    for (const f of checkpoint.files) for (const name of f.offsets.keys()) fileOf.set(name, f.name);

    let peak = 0;
    const sample = () => {
      const m = process.memoryUsage();
      peak = Math.max(peak, m.heapUsed + m.arrayBuffers);
    };
    const timer = setInterval(sample, 25);
    let checked = 0;
    // Spot checks: rows at the start and end of the first and last record of the tensors of
    // layers 0, 17 and 31 and of the embedding and head, against rows regenerated from the source.
    const spot = (entry: TensorEntry, record: TensorRecord) => {
      sample();
      const layer = /^layers\.(\d+)\./.exec(entry.key)?.[1];
      if (layer !== undefined && !['0', '17', '31'].includes(layer)) return;
      if (record.index !== 0 && record.index !== entry.recordCount - 1) return;
      checkRecord(checkpoint, fileOf.get(entry.hfName)!, entry, record, [0, record.rows - 1]);
      checked += 2;
    };
    const sink = new ChecksumSink(spot);
    const start = performance.now();
    try {
      const manifest = await importModel({ source, store: sink, now: () => performance.now() });
      expect(manifest.complete).toBe(true);
    } finally {
      clearInterval(timer);
    }
    const seconds = (performance.now() - start) / 1000;
    sample();
    const entries = [...sink.entries.values()];
    expect(entries.length).toBe(32 * 14 + 5);
    expect(entries.every((e) => e.complete)).toBe(true);
    expect(sink.records).toBe(entries.reduce((a, e) => a + e.recordCount, 0));
    expect(sink.bytes).toBe(entries.reduce((a, e) => a + e.bytes, 0));
    expect(sink.bytes / GB).toBeCloseTo(3.05, 1);
    expect(checked).toBeGreaterThan(100);
    console.log(
      `Phi-2-sized import: ${(totalBytes / GB).toFixed(2)} GB of F16 in ${seconds.toFixed(1)} s = ${(totalBytes / 1e6 / seconds).toFixed(0)} MB/s; ` +
        `${sink.records} records, ${(sink.bytes / GB).toFixed(2)} GB stored, digest ${sink.digest.toString(16)}; ` +
        `peak heapUsed+arrayBuffers ${(peak / 2 ** 20).toFixed(0)} MiB`,
    );
    expect(peak).toBeLessThan(2 ** 30);
  });
});
