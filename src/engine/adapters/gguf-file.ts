import { numberToF16Bits, requireLittleEndian } from '../weights/dtypes';

/**
 * A small GGUF (version 3) writer: the file format llama.cpp, Ollama and LM Studio load. Only what a
 * LoRA adapter needs: scalar and string metadata, F32 and F16 tensors. The layout, as ggml's
 * docs/gguf.md specifies it and gguf-py's GGUFWriter (gguf-py/gguf/gguf_writer.py) writes it:
 *
 *   header     magic "GGUF" (u32 0x46554747), version u32 = 3, tensor count u64, metadata count u64
 *   metadata   per pair: key (string), value type (u32), value. A string is a u64 byte length then
 *              UTF-8 bytes, no terminator; an array is element type (u32), count (u64), elements.
 *   tensors    per tensor: name (string), n_dims (u32), dims (u64 each, ggml order: the fastest-
 *              varying dimension first, i.e. numpy's shape reversed), ggml type (u32), offset (u64)
 *              of its data from the start of the data section, a multiple of the alignment
 *   padding    zeros up to the alignment (general.alignment, 32 when absent: GGUF_DEFAULT_ALIGNMENT)
 *   data       each tensor's bytes in the order of the infos, each padded with zeros to the alignment
 *
 * Everything is little-endian. Type codes: GGUFValueType and GGMLQuantizationType in
 * gguf-py/gguf/constants.py (UINT32 4, FLOAT32 6, STRING 8; ggml F32 0, F16 1).
 */

export const GGUF_MAGIC = 0x46554747;
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** GGUFValueType codes of the value kinds written here. */
const VALUE_TYPE = { uint32: 4, float32: 6, bool: 7, string: 8 } as const;
/** GGMLQuantizationType codes. */
export const GGML_TYPE = { F32: 0, F16: 1 } as const;
export type GgmlFloatType = keyof typeof GGML_TYPE;

export type GgufValue =
  | { type: 'string'; value: string }
  | { type: 'uint32'; value: number }
  | { type: 'float32'; value: number }
  | { type: 'bool'; value: boolean };

export interface GgufTensor {
  name: string;
  /** numpy/PyTorch order (slowest dimension first), as the source tensor's shape; written reversed. */
  shape: readonly number[];
  type: GgmlFloatType;
  /** Row-major values; converted to the tensor's type when written. */
  data: Float32Array;
}

export class GgufWriteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GgufWriteError';
  }
}

const utf8 = new TextEncoder();

function padTo(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

function valueBytes(v: GgufValue): number {
  switch (v.type) {
    case 'string':
      return 8 + utf8.encode(v.value).length;
    case 'bool':
      return 1;
    default:
      return 4;
  }
}

/** Writes the file into one buffer sized up front: metadata in the given order, tensors in the given order. */
export function writeGguf(metadata: ReadonlyArray<readonly [string, GgufValue]>, tensors: readonly GgufTensor[], alignment = GGUF_ALIGNMENT): Uint8Array {
  requireLittleEndian();
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new GgufWriteError(`The tensor ${t.name} appears twice.`);
    names.add(t.name);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (!t.shape.length || !t.shape.every((d) => Number.isSafeInteger(d) && d > 0)) throw new GgufWriteError(`${t.name}: shape [${t.shape}] is not a list of positive integers.`);
    if (count !== t.data.length) throw new GgufWriteError(`${t.name}: shape [${t.shape}] holds ${count} values but ${t.data.length} were given.`);
  }
  const keys = new Set<string>();
  for (const [key] of metadata) {
    if (keys.has(key)) throw new GgufWriteError(`The metadata key ${key} appears twice.`);
    keys.add(key);
  }

  const dataBytes = (t: GgufTensor) => t.data.length * (t.type === 'F32' ? 4 : 2);
  let headerSize = 4 + 4 + 8 + 8;
  for (const [key, value] of metadata) headerSize += 8 + utf8.encode(key).length + 4 + valueBytes(value);
  for (const t of tensors) headerSize += 8 + utf8.encode(t.name).length + 4 + 8 * t.shape.length + 4 + 8;
  const dataStart = padTo(headerSize, alignment);
  const offsets: number[] = [];
  let dataSize = 0;
  for (const t of tensors) {
    offsets.push(dataSize);
    dataSize += padTo(dataBytes(t), alignment);
  }

  const out = new Uint8Array(dataStart + dataSize);
  const view = new DataView(out.buffer);
  let at = 0;
  const u32 = (v: number) => {
    view.setUint32(at, v, true);
    at += 4;
  };
  const u64 = (v: number) => {
    view.setBigUint64(at, BigInt(v), true);
    at += 8;
  };
  const str = (s: string) => {
    const b = utf8.encode(s);
    u64(b.length);
    out.set(b, at);
    at += b.length;
  };

  u32(GGUF_MAGIC);
  u32(GGUF_VERSION);
  u64(tensors.length);
  u64(metadata.length);
  for (const [key, v] of metadata) {
    str(key);
    u32(VALUE_TYPE[v.type]);
    switch (v.type) {
      case 'string':
        str(v.value);
        break;
      case 'uint32':
        u32(v.value);
        break;
      case 'float32':
        view.setFloat32(at, v.value, true);
        at += 4;
        break;
      case 'bool':
        out[at++] = v.value ? 1 : 0;
        break;
    }
  }
  tensors.forEach((t, i) => {
    str(t.name);
    u32(t.shape.length);
    for (const d of [...t.shape].reverse()) u64(d);
    u32(GGML_TYPE[t.type]);
    u64(offsets[i]);
  });
  if (at !== headerSize) throw new GgufWriteError(`internal: header is ${at} bytes, ${headerSize} were planned`);

  tensors.forEach((t, i) => {
    const start = dataStart + offsets[i];
    if (t.type === 'F32') {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), start);
      return;
    }
    const halves = new Uint16Array(out.buffer, start, t.data.length);
    for (let j = 0; j < t.data.length; j++) {
      const h = numberToF16Bits(t.data[j]);
      if (h < 0) throw new GgufWriteError(`${t.name}: value ${t.data[j]} at index ${j} has no F16 equivalent (NaN, or beyond ±65504); export it as F32.`);
      halves[j] = h;
    }
  });
  return out;
}
