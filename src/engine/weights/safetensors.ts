import {
  F16_TO_NUMBER,
  SAFETENSORS_DTYPE_BITS,
  bf16BitsToNumber,
  dtypeByteSize,
  isSafetensorsDType,
  requireLittleEndian,
  type SafetensorsDType,
} from './dtypes';
import { briefJson, describeExcessNesting, findExcessNesting } from '../untrusted-json';
import { SafetensorsError } from './errors';

/**
 * Safetensors: an 8-byte little-endian header length n, n bytes of UTF-8 JSON (padded with spaces),
 * then the tensor data. The JSON maps each tensor name to {dtype, shape, data_offsets: [begin, end]}
 * (offsets relative to the start of the data) and may hold "__metadata__": {string: string}.
 *
 * Validation follows the format's reference implementation, and nothing is trusted before it passes:
 *  - n is at least 2 and at most MAX_HEADER_BYTES (100 MB, the reference's cap), and the header lies
 *    inside the file when the file's size is known;
 *  - the header is valid UTF-8 JSON, an object, starting with '{';
 *  - every dtype is one the format defines; every shape is a list of non-negative integers whose
 *    product times the dtype's size equals end - begin;
 *  - sorted by begin, the tensors tile the data area exactly: the first starts at 0, each starts where
 *    the previous ended. Gaps are refused as well as overlaps (the reference refuses both; a gap would
 *    be bytes that belong to nothing, which a correct writer never produces), and so are bytes after
 *    the last tensor. Zero-sized tensors (begin = end) are allowed.
 * Tensors are delivered in file order (by offset), which is not the header's key order.
 */

/** The reference implementation's cap on the JSON header. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Nesting allowed in a header: tensor entries are 3 deep; a little room for metadata written loosely. */
export const MAX_HEADER_DEPTH = 8;

export interface SafetensorsTensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Byte offsets in the data area (after the header). */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  readonly file: string;
  /** n: the JSON header's byte length, padding included. */
  readonly headerLength: number;
  /** 8 + n: where the data area starts in the file. */
  readonly dataStart: number;
  /** Bytes of tensor data: the end of the last tensor. */
  readonly dataLength: number;
  /** dataStart + dataLength: the only valid size of the file. */
  readonly fileSize: number;
  readonly metadata: Readonly<Record<string, string>>;
  /** In file order: sorted by begin. */
  readonly tensors: readonly SafetensorsTensorInfo[];
  /** The header's JSON text (without padding), to store and re-validate when a download resumes. */
  readonly json: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads the 8-byte header length and checks it before anything is allocated for it. */
export function readHeaderLength(first8: Uint8Array, file: string, fileSize?: number): number {
  if (first8.length < 8) throw new SafetensorsError('truncated', file, `only ${first8.length} bytes, fewer than the 8-byte header length`);
  const view = new DataView(first8.buffer, first8.byteOffset, 8);
  const high = view.getUint32(4, true);
  const low = view.getUint32(0, true);
  const n = high * 2 ** 32 + low;
  if (high !== 0 || n > MAX_HEADER_BYTES) {
    throw new SafetensorsError(
      'header-length',
      file,
      `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte cap; this is not a safetensors file or it is corrupt`,
    );
  }
  if (n < 2) throw new SafetensorsError('header-length', file, `header length ${n} is too small to hold a JSON object`);
  if (fileSize !== undefined && 8 + n > fileSize) {
    throw new SafetensorsError('header-length', file, `header length ${n} runs past the end of the ${fileSize}-byte file`);
  }
  return n;
}

/** Parses and validates the JSON header (the n bytes after the length). */
export function parseSafetensorsHeader(headerBytes: Uint8Array, file: string, fileSize?: number): SafetensorsHeader {
  const n = headerBytes.length;
  let text: string;
  try {
    text = utf8.decode(headerBytes);
  } catch {
    throw new SafetensorsError('header-json', file, 'the header is not valid UTF-8');
  }
  if (text[0] !== '{') throw new SafetensorsError('header-json', file, `the header does not start with '{' (found ${JSON.stringify(text.slice(0, 16))})`);
  // Every value of a valid header is at most 3 levels deep; a deep one would overflow whatever walks it later.
  const deep = findExcessNesting(text, MAX_HEADER_DEPTH);
  if (deep) throw new SafetensorsError('header-json', file, `the header is JSON ${describeExcessNesting(deep)}; a safetensors header is an object of tensor entries and string metadata`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new SafetensorsError('header-json', file, `the header is not valid JSON: ${(err as Error).message}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new SafetensorsError('header-json', file, 'the header is not a JSON object');
  }
  const entries = parsed as Record<string, unknown>;
  let metadata: Record<string, string> = {};
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, value] of Object.entries(entries)) {
    if (name === '__metadata__') {
      metadata = checkMetadata(value, file);
      continue;
    }
    tensors.push(checkEntry(name, value, file));
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i];
    if (t.begin < expected) {
      const other = tensors[i - 1];
      throw new SafetensorsError(
        'offsets-overlap',
        file,
        `data_offsets [${t.begin}, ${t.end}] overlap those of ${other.name} [${other.begin}, ${other.end}]`,
        t.name,
      );
    }
    if (t.begin > expected) {
      const where = i === 0 ? 'the start of the data' : `the end of ${tensors[i - 1].name} (${expected})`;
      throw new SafetensorsError(
        'offsets-gap',
        file,
        `data_offsets start at ${t.begin}, leaving ${t.begin - expected} unused bytes after ${where}`,
        t.name,
      );
    }
    expected = t.end;
  }
  const dataStart = 8 + n;
  const dataLength = expected;
  if (fileSize !== undefined) {
    if (dataStart + dataLength > fileSize) {
      const last = tensors[tensors.length - 1];
      throw new SafetensorsError(
        'offsets-out-of-range',
        file,
        `data_offsets end at ${dataLength} but the file holds only ${fileSize - dataStart} bytes of data`,
        last?.name,
      );
    }
    if (dataStart + dataLength < fileSize) {
      throw new SafetensorsError(
        'trailing-data',
        file,
        `${fileSize - dataStart - dataLength} bytes follow the last tensor; the header describes ${dataStart + dataLength} of the file's ${fileSize} bytes`,
      );
    }
  }
  return {
    file,
    headerLength: n,
    dataStart,
    dataLength,
    fileSize: dataStart + dataLength,
    metadata,
    tensors,
    json: text.trimEnd(),
  };
}

function checkMetadata(value: unknown, file: string): Record<string, string> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError('metadata', file, '__metadata__ is not an object');
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new SafetensorsError('metadata', file, `__metadata__.${k.length > 60 ? `${k.slice(0, 60)}…` : k} is not a string (found ${briefJson(v)})`);
    out[k] = v;
  }
  return out;
}

function checkEntry(name: string, value: unknown, file: string): SafetensorsTensorInfo {
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError('header-entry', file, 'the entry is not an object with dtype, shape and data_offsets', name);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== 'string') throw new SafetensorsError('header-entry', file, 'dtype is missing or not a string', name);
  if (!isSafetensorsDType(dtype)) {
    throw new SafetensorsError(
      'unknown-dtype',
      file,
      `unknown dtype ${briefJson(dtype)}; safetensors defines ${Object.keys(SAFETENSORS_DTYPE_BITS).join(', ')}`,
      name,
    );
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError('header-entry', file, `shape ${briefJson(shape)} is not a list of non-negative integers`, name);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
  ) {
    throw new SafetensorsError('header-entry', file, `data_offsets ${briefJson(offsets)} is not a pair of non-negative integers`, name);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw new SafetensorsError('offsets-out-of-range', file, `data_offsets [${begin}, ${end}] end before they begin`, name);
  let count = 1;
  for (const d of shape as number[]) count *= d;
  const bytes = Number.isSafeInteger(count) ? dtypeByteSize(dtype, count) : null;
  if (bytes === null || bytes !== end - begin) {
    throw new SafetensorsError(
      'size-mismatch',
      file,
      `shape [${shape.join(', ')}] of ${dtype} needs ${bytes ?? 'a non-whole number of'} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
      name,
    );
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

// ---------------------------------------------------------------------------------------------
// Streaming

export type ByteSource = ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

export type SafetensorsEvent =
  | { kind: 'header'; header: SafetensorsHeader }
  | {
      kind: 'piece';
      tensor: SafetensorsTensorInfo;
      /** Byte offset of `bytes` within the tensor. */
      offset: number;
      /** Valid only until the next event is requested: copy it to keep it. */
      bytes: Uint8Array;
      /** This piece ends the tensor. */
      last: boolean;
    };

export interface StreamReadOptions {
  /** The file's name, for messages. */
  file: string;
  /** The file's size when known (Content-Length, Blob.size), checked against the header before any data. */
  fileSize?: number;
  /**
   * Bytes per piece of a tensor (a positive number): tensors arrive in pieces of exactly this many
   * bytes, the last one shorter. Row-sized multiples let a quantiser work on whole rows.
   * Default: the whole tensor at once.
   */
  pieceBytes?: (tensor: SafetensorsTensorInfo) => number;
  /**
   * Resume: the source starts at byte `offset` of the file, which must be at or past the data start
   * and on a piece boundary; the header is the one read before. The header event is still emitted.
   */
  resume?: { header: SafetensorsHeader; offset: number };
}

/**
 * Reads a safetensors file from a stream of chunks of any size (1 byte included) and yields its
 * header, then every tensor in file order, piece by piece, as the bytes arrive. At most one piece is
 * held in memory. Ending the iteration early cancels the source.
 */
export async function* readSafetensorsStream(
  source: ByteSource,
  options: StreamReadOptions,
): AsyncGenerator<SafetensorsEvent, void, undefined> {
  const { file } = options;
  const pump = new BytePump(source);
  try {
    let header: SafetensorsHeader;
    let position: number; // file offset of the next byte the pump delivers
    if (options.resume) {
      header = options.resume.header;
      position = options.resume.offset;
      if (position < header.dataStart || position > header.fileSize) {
        throw new RangeError(`${file}: resume offset ${position} is outside the data area [${header.dataStart}, ${header.fileSize}]`);
      }
    } else {
      const lengthBytes = await pump.readExact(8, file, 'the header length');
      const n = readHeaderLength(lengthBytes, file, options.fileSize);
      const json = await pump.readExact(n, file, `the ${n}-byte header`);
      header = parseSafetensorsHeader(json, file, options.fileSize);
      position = header.dataStart;
    }
    yield { kind: 'header', header };

    let scratch = new Uint8Array(0);
    for (const tensor of header.tensors) {
      const tensorStart = header.dataStart + tensor.begin;
      const size = tensor.end - tensor.begin;
      // Tensors that ended before a resume point were delivered by the earlier stream.
      if (size > 0 ? tensorStart + size <= position : tensorStart < position) continue;
      const piece = Math.max(1, Math.floor(options.pieceBytes?.(tensor) ?? size));
      let offset = position - tensorStart;
      if (offset < 0) throw new Error(`${file}: internal error, stream position ${position} is before ${tensor.name}`);
      if (offset % piece !== 0) {
        throw new RangeError(`${file}: resume offset ${position} is not on a piece boundary of ${tensor.name} (${piece}-byte pieces)`);
      }
      if (size === 0) {
        yield { kind: 'piece', tensor, offset: 0, bytes: new Uint8Array(0), last: true };
        continue;
      }
      while (offset < size) {
        const want = Math.min(piece, size - offset);
        let bytes = pump.takeView(want);
        if (!bytes) {
          if (scratch.length < want) scratch = new Uint8Array(want);
          bytes = scratch.subarray(0, want);
          await pump.readInto(bytes, file, tensor.name);
        }
        offset += want;
        position += want;
        yield { kind: 'piece', tensor, offset: offset - want, bytes, last: offset === size };
      }
    }
    if (await pump.hasMore()) {
      throw new SafetensorsError('trailing-data', file, `bytes follow the last tensor (the header describes ${header.fileSize} bytes)`);
    }
  } finally {
    await pump.close();
  }
}

/** Pulls chunks from a stream and hands out exact byte counts across chunk boundaries. */
class BytePump {
  private chunk: Uint8Array = new Uint8Array(0);
  private at = 0;
  private done = false;
  private readonly next: () => Promise<IteratorResult<Uint8Array>>;
  private readonly cancel: () => Promise<unknown>;

  constructor(source: ByteSource) {
    if (typeof (source as ReadableStream<Uint8Array>).getReader === 'function') {
      const reader = (source as ReadableStream<Uint8Array>).getReader();
      this.next = () => reader.read() as Promise<IteratorResult<Uint8Array>>;
      this.cancel = async () => {
        try {
          await reader.cancel();
        } catch {
          // the stream had already failed; nothing to release
        }
      };
    } else {
      const it = (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
      this.next = () => it.next();
      this.cancel = async () => {
        await it.return?.();
      };
    }
  }

  /** Makes a non-empty current chunk available; false at the end of the stream. */
  private async fill(): Promise<boolean> {
    while (this.at >= this.chunk.length) {
      if (this.done) return false;
      const r = await this.next();
      if (r.done) {
        this.done = true;
        return false;
      }
      if (!(r.value instanceof Uint8Array)) throw new TypeError('a byte stream delivered a chunk that is not a Uint8Array');
      this.chunk = r.value;
      this.at = 0;
    }
    return true;
  }

  /** A view of the next `n` bytes when the current chunk holds them all (no copy); else null. */
  takeView(n: number): Uint8Array | null {
    if (this.chunk.length - this.at < n) return null;
    const view = this.chunk.subarray(this.at, this.at + n);
    this.at += n;
    return view;
  }

  async readInto(target: Uint8Array, file: string, what: string): Promise<void> {
    let filled = 0;
    while (filled < target.length) {
      if (!(await this.fill())) {
        throw new SafetensorsError('truncated', file, `the stream ended ${target.length - filled} bytes short inside the data`, what);
      }
      const take = Math.min(target.length - filled, this.chunk.length - this.at);
      target.set(this.chunk.subarray(this.at, this.at + take), filled);
      this.at += take;
      filled += take;
    }
  }

  async readExact(n: number, file: string, what: string): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      if (!(await this.fill())) {
        throw new SafetensorsError('truncated', file, `the stream ended after ${filled} of the ${n} bytes of ${what}`);
      }
      const take = Math.min(n - filled, this.chunk.length - this.at);
      out.set(this.chunk.subarray(this.at, this.at + take), filled);
      this.at += take;
      filled += take;
    }
    return out;
  }

  async hasMore(): Promise<boolean> {
    return this.fill();
  }

  async close(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.cancel();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Whole files (adapters, goldens): parse from one buffer.

export interface SafetensorsFile {
  readonly header: SafetensorsHeader;
  /** The raw bytes of a tensor (a view into the file's buffer). */
  bytes(name: string): Uint8Array;
  /** A float tensor's values as f32 (F16, BF16, F32 exactly; F64 rounded). */
  float32(name: string): Float32Array;
  has(name: string): boolean;
}

export function parseSafetensors(data: Uint8Array, file = 'safetensors'): SafetensorsFile {
  requireLittleEndian();
  const n = readHeaderLength(data.subarray(0, 8), file, data.length);
  const header = parseSafetensorsHeader(data.subarray(8, 8 + n), file, data.length);
  const byName = new Map(header.tensors.map((t) => [t.name, t]));
  const get = (name: string): SafetensorsTensorInfo => {
    const t = byName.get(name);
    if (!t) throw new SafetensorsError('tensor-absent', file, 'no such tensor in the file', name);
    return t;
  };
  const bytes = (name: string): Uint8Array => {
    const t = get(name);
    return data.subarray(header.dataStart + t.begin, header.dataStart + t.end);
  };
  return {
    header,
    has: (name) => byName.has(name),
    bytes,
    float32(name) {
      const t = get(name);
      return decodeFloats(t.dtype, bytes(name), file, name);
    },
  };
}

/** Float values of raw little-endian tensor bytes, as f32. */
export function decodeFloats(dtype: SafetensorsDType, raw: Uint8Array, file: string, tensor: string): Float32Array {
  const aligned = raw.byteOffset % 8 === 0 ? raw : raw.slice();
  switch (dtype) {
    case 'F32':
      return new Float32Array(aligned.buffer.slice(aligned.byteOffset, aligned.byteOffset + aligned.byteLength));
    case 'F64':
      return Float32Array.from(new Float64Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 8));
    case 'F16': {
      const h = new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
      const out = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) out[i] = F16_TO_NUMBER[h[i]];
      return out;
    }
    case 'BF16': {
      const h = new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
      const out = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) out[i] = bf16BitsToNumber(h[i]);
      return out;
    }
    default:
      throw new SafetensorsError('unknown-dtype', file, `${dtype} is not a float dtype this reader converts (F16, BF16, F32, F64)`, tensor);
  }
}
