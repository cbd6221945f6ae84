/**
 * Safetensors files for tests: well-formed ones built field by field (so that a test can break one
 * field at a time), chunked streams, and a synthetic Phi checkpoint of any size whose bytes are
 * generated on the fly and can be regenerated at any offset to check what came out.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelManifest, TensorEntry, TensorRecord } from '../../src/engine/store/schema';
import { RecordChecksums } from '../../src/engine/store/record-checksum';
import { crc32 } from '../../src/engine/store/crc32';
import { parsePhiConfig } from '../../src/engine/weights/config';
import { SAFETENSORS_DTYPE_BITS, type SafetensorsDType } from '../../src/engine/weights/dtypes';
import type { ImportTarget } from '../../src/engine/weights/import';
import { phiParamSpecs } from '../../src/engine/weights/layout';
import type { CheckpointSource, OpenedFile } from '../../src/engine/weights/source';

export const FIXTURES = join(import.meta.dirname, '../../../shared/fixtures');

export function fixtureBytes(...path: string[]): Uint8Array {
  return new Uint8Array(readFileSync(join(FIXTURES, ...path)));
}

export interface RawTensor {
  name: string;
  dtype: string;
  shape: unknown;
  /** Defaults to consecutive offsets in list order, sized by shape × dtype. */
  offsets?: unknown;
  /** Bytes written for this tensor (default: a recognisable pattern of the right size). */
  data?: Uint8Array;
}

export interface RawFileOptions {
  metadata?: unknown;
  /** Replaces the JSON text entirely. */
  headerText?: string;
  /** Replaces the 8-byte length (as a bigint, so values past 2^53 can be written). */
  headerLength?: bigint;
  /** Bytes appended after the data. */
  trailing?: Uint8Array;
  /** Bytes cut from the end. */
  truncate?: number;
  /** Pad the header with spaces to an 8-byte boundary (default true). */
  pad?: boolean;
}

export function byteSize(dtype: string, shape: unknown): number {
  const bits = SAFETENSORS_DTYPE_BITS[dtype as SafetensorsDType] ?? 8;
  const count = Array.isArray(shape) ? shape.reduce((a: number, b: number) => a * b, 1) : 0;
  return Math.max(0, Math.ceil((bits * count) / 8));
}

/** A safetensors file from explicit fields; anything may be malformed on purpose. */
export function rawSafetensors(tensors: RawTensor[], options: RawFileOptions = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (options.metadata !== undefined) header.__metadata__ = options.metadata;
  let offset = 0;
  const datas: Uint8Array[] = [];
  for (const t of tensors) {
    const size = t.data?.length ?? byteSize(t.dtype, t.shape);
    const offsets = t.offsets ?? [offset, offset + size];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: offsets };
    const data = t.data ?? patternBytes(size, datas.length + 1);
    datas.push(data);
    offset += data.length;
  }
  const json = new TextEncoder().encode(options.headerText ?? JSON.stringify(header));
  const padded = options.pad === false ? json.length : Math.ceil((8 + json.length) / 8) * 8 - 8;
  const dataLength = datas.reduce((a, d) => a + d.length, 0);
  const trailing = options.trailing ?? new Uint8Array(0);
  const out = new Uint8Array(8 + padded + dataLength + trailing.length);
  new DataView(out.buffer).setBigUint64(0, options.headerLength ?? BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let at = 8 + padded;
  for (const d of datas) {
    out.set(d, at);
    at += d.length;
  }
  out.set(trailing, at);
  return options.truncate ? out.subarray(0, out.length - options.truncate) : out;
}

export function patternBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 17) & 0xff;
  return out;
}

/** Splits bytes into chunks whose sizes cycle through `sizes`, as an async iterable. */
export async function* chunked(bytes: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let at = 0;
  let i = 0;
  while (at < bytes.length) {
    const n = Math.max(1, sizes[i++ % sizes.length]);
    yield bytes.subarray(at, Math.min(bytes.length, at + n));
    at += n;
  }
}

export function streamOf(bytes: Uint8Array, chunk = 65536): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + chunk));
      at += chunk;
    },
  });
}

/** A File-like object over bytes (the importer's FileLike), with Blob's slice. */
export function fileLike(name: string, bytes: Uint8Array, lastModified = 1): {
  name: string;
  size: number;
  lastModified: number;
  stream(): ReadableStream<Uint8Array>;
  slice(start?: number): { stream(): ReadableStream<Uint8Array> };
  text(): Promise<string>;
} {
  return {
    name,
    size: bytes.length,
    lastModified,
    stream: () => streamOf(bytes),
    slice: (start = 0) => ({ stream: () => streamOf(bytes.subarray(start)) }),
    text: async () => new TextDecoder().decode(bytes),
  };
}

// ---------------------------------------------------------------------------------------------
// A synthetic checkpoint: real header, data generated from a repeating table of half floats.

/** Half floats with magnitudes from 2^-10 to 2, random signs, a few exact zeros; never Inf/NaN. */
function halfTable(halves: number, seed: number): Uint16Array {
  const t = new Uint16Array(halves);
  let s = seed >>> 0;
  for (let i = 0; i < halves; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const exponent = 5 + ((s >>> 8) % 11); // 5..15: 2^-10 .. 2^1
    const mantissa = (s >>> 12) & 0x3ff;
    const sign = s & 0x80000000 ? 0x8000 : 0;
    t[i] = (s & 0xff) === 0 ? 0 : sign | (exponent << 10) | mantissa;
  }
  return t;
}

export interface SyntheticTensor {
  name: string;
  shape: number[];
}

export interface SyntheticFile {
  name: string;
  /** The file's header bytes: 8-byte length, JSON, padding. */
  head: Uint8Array;
  dataLength: number;
  size: number;
  /** Data offsets of each tensor. */
  offsets: Map<string, [number, number]>;
}

/**
 * A checkpoint of F16 tensors whose data byte at data offset p is TABLE[p mod T]: any amount of it can
 * be streamed without being stored, and any part regenerated to check the import.
 */
export class SyntheticCheckpoint {
  /** Bytes in one period of the data (even, so halves stay aligned; at least the largest chunk). */
  readonly period: number;
  private readonly doubled: Uint8Array;
  readonly files: SyntheticFile[];

  constructor(
    shards: Array<{ name: string; tensors: SyntheticTensor[] }>,
    options: { periodBytes?: number; seed?: number } = {},
  ) {
    this.period = options.periodBytes ?? 8 * 2 ** 20 + 2 * 12347;
    const table = new Uint8Array(halfTable(this.period / 2, options.seed ?? 1).buffer);
    // Twice the period back to back: any window up to one period is a contiguous view.
    this.doubled = new Uint8Array(this.period * 2);
    this.doubled.set(table, 0);
    this.doubled.set(table, this.period);
    this.files = shards.map((s) => {
      const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
      const offsets = new Map<string, [number, number]>();
      let at = 0;
      for (const t of s.tensors) {
        const size = t.shape.reduce((a, b) => a * b, 1) * 2;
        header[t.name] = { dtype: 'F16', shape: t.shape, data_offsets: [at, at + size] };
        offsets.set(t.name, [at, at + size]);
        at += size;
      }
      const json = new TextEncoder().encode(JSON.stringify(header));
      const n = Math.ceil((8 + json.length) / 8) * 8 - 8;
      const head = new Uint8Array(8 + n).fill(0x20);
      new DataView(head.buffer).setBigUint64(0, BigInt(n), true);
      head.set(json, 8);
      return { name: s.name, head, dataLength: at, size: head.length + at, offsets };
    });
  }

  file(name: string): SyntheticFile {
    const f = this.files.find((x) => x.name === name);
    if (!f) throw new Error(`no synthetic file ${name}`);
    return f;
  }

  /** The data bytes [from, from + length) of a file's data area (a copy). */
  dataBytes(from: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const p = (from + done) % this.period;
      const take = Math.min(length - done, this.period - p);
      out.set(this.doubled.subarray(p, p + take), done);
      done += take;
    }
    return out;
  }

  /** A tensor's rows [row, row + rows) as F16 bits. */
  rowsOf(file: string, tensor: string, cols: number, row: number, rows: number): Uint16Array {
    const [begin] = this.file(file).offsets.get(tensor)!;
    return new Uint16Array(this.dataBytes(begin + row * cols * 2, rows * cols * 2).buffer);
  }

  /**
   * The file's bytes from `offset`, in chunks of `chunkBytes` (views into the table: no copies, no
   * allocation per chunk).
   */
  async *stream(name: string, offset = 0, chunkBytes = 2 ** 20): AsyncGenerator<Uint8Array> {
    const f = this.file(name);
    if (chunkBytes > this.period) throw new Error('chunks must not exceed the period');
    let pos = offset;
    if (pos < f.head.length) {
      yield f.head.subarray(pos);
      pos = f.head.length;
    }
    while (pos < f.size) {
      const p = (pos - f.head.length) % this.period;
      const take = Math.min(chunkBytes, f.size - pos);
      yield this.doubled.subarray(p, p + take);
      pos += take;
    }
  }
}

/**
 * A synthetic checkpoint with the shapes a Phi config implies, cut into shards of about `shardBytes`
 * like the Hub's, with its index and a CheckpointSource serving it (for tests and import benchmarks).
 */
export function syntheticPhi(configJson: Record<string, unknown>, options: { shardBytes?: number; seed?: number; chunkBytes?: number } = {}) {
  const specs = phiParamSpecs(parsePhiConfig(configJson));
  const shardBytes = options.shardBytes ?? 5e9;
  const shards: Array<{ name: string; tensors: SyntheticTensor[] }> = [];
  let bytes = 0;
  for (const s of specs) {
    const size = s.shape.reduce((a, b) => a * b, 1) * 2;
    const index = Math.floor(bytes / shardBytes);
    while (shards.length <= index) shards.push({ name: '', tensors: [] });
    shards[index].tensors.push({ name: s.hfName, shape: [...s.shape] });
    bytes += size;
  }
  const used = shards.filter((s) => s.tensors.length);
  used.forEach((s, i) => (s.name = `model-${String(i + 1).padStart(5, '0')}-of-${String(used.length).padStart(5, '0')}.safetensors`));
  const checkpoint = new SyntheticCheckpoint(used, { seed: options.seed ?? 2024 });
  const weightMap: Record<string, string> = {};
  for (const sh of used) for (const t of sh.tensors) weightMap[t.name] = sh.name;
  const index = JSON.stringify({ metadata: { total_size: bytes }, weight_map: weightMap });
  const source: CheckpointSource = {
    description: { kind: 'hub', repo: 'synthetic/phi', revision: 'test', baseUrl: 'http://synthetic.invalid' },
    displayName: 'synthetic phi',
    remote: true,
    async readText(file) {
      if (file === 'config.json') return JSON.stringify(configJson);
      if (file === 'model.safetensors.index.json') return index;
      return null;
    },
    async open(file, offset): Promise<OpenedFile> {
      return { body: checkpoint.stream(file, offset, options.chunkBytes ?? 2 ** 20), offset, size: checkpoint.file(file).size, etag: '"synthetic"' };
    },
  };
  return { checkpoint, index, source, bytes };
}

/**
 * An ImportTarget that keeps only the small metadata: it checks each record's order and checksum,
 * folds the checksums into one digest, and drops the data (to measure or test the import alone).
 */
export class ChecksumSink implements ImportTarget {
  manifest: ModelManifest | undefined;
  entries = new Map<string, TensorEntry>();
  records = 0;
  bytes = 0;
  /** CRC-32 over every record's checksum (as text), in order: one number for the whole import. */
  digest = 0;

  constructor(private readonly onRecord?: (entry: TensorEntry, record: TensorRecord) => void) {}

  async getModel() {
    return this.manifest;
  }
  async putModel(m: ModelManifest) {
    this.manifest = m;
  }
  async putModelWithTensors(m: ModelManifest, entries: TensorEntry[]) {
    this.manifest = m;
    for (const e of entries) this.entries.set(e.key, e);
  }
  async getTensors() {
    return [...this.entries.values()];
  }
  async writeRecord(entry: TensorEntry, record: TensorRecord): Promise<TensorEntry> {
    if (record.index !== entry.recordsDone) throw new Error(`${entry.key}: record ${record.index} after ${entry.recordsDone}`);
    if (!(await RecordChecksums.load()).matches(record.checksum, record.data, record.scales)) throw new Error(`${entry.key}: record ${record.index} checksum mismatch`);
    this.onRecord?.(entry, record);
    this.records++;
    this.bytes += record.data.byteLength + (record.scales?.byteLength ?? 0);
    this.digest = crc32(new TextEncoder().encode(String(record.checksum)), this.digest);
    const updated = { ...entry, recordsDone: record.index + 1, checksums: [...entry.checksums, record.checksum], complete: record.index + 1 === entry.recordCount };
    this.entries.set(entry.key, updated);
    return updated;
  }
  async resetTensors(): Promise<void> {
    throw new Error('a synthetic checkpoint never changes');
  }
  async deleteModel() {
    this.manifest = undefined;
    this.entries.clear();
  }
  async putTokenizer() {}
  async requestPersistence() {
    return true;
  }
  async checkSpace() {}
}
