import { SAFETENSORS_DTYPE_BITS, dtypeByteSize, isSafetensorsDType, requireLittleEndian, type SafetensorsDType } from './dtypes';
import { SafetensorsError } from './errors';

/** Writing safetensors files (adapters, the CLI's tensors); reading them is ./safetensors.ts. */

const utf8Encoder = new TextEncoder();

export interface TensorToWrite {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  /** Little-endian element bytes: a typed array of the dtype (Float32Array for F32...) or raw bytes. */
  data: ArrayBufferView;
}

/** The reference implementation's dtype order; it writes larger-ranked dtypes first. */
const DTYPE_RANK = Object.keys(SAFETENSORS_DTYPE_BITS) as SafetensorsDType[];

/**
 * A safetensors file that Python's safetensors (and this reader) loads: 8-byte little-endian header
 * size, compact JSON header with __metadata__ first, padded with spaces so the data starts on an
 * 8-byte boundary, data_offsets relative to the data start. Tensors are laid out in the reference
 * implementation's order (dtype rank descending, then name), so identical inputs give identical bytes.
 */
export function serializeSafetensors(tensors: readonly TensorToWrite[], metadata?: Readonly<Record<string, string>>): Uint8Array {
  requireLittleEndian();
  const names = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__') throw new SafetensorsError('header-entry', 'writer', 'a tensor may not be named __metadata__', t.name);
    if (names.has(t.name)) throw new SafetensorsError('header-entry', 'writer', 'the tensor name appears twice', t.name);
    names.add(t.name);
    if (!isSafetensorsDType(t.dtype)) throw new SafetensorsError('unknown-dtype', 'writer', `unknown dtype ${String(t.dtype)}`, t.name);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError('header-entry', 'writer', `shape [${t.shape.join(', ')}] is not a list of non-negative integers`, t.name);
    }
    const count = t.shape.reduce((a, b) => a * b, 1);
    const bytes = dtypeByteSize(t.dtype, count);
    if (bytes !== t.data.byteLength) {
      throw new SafetensorsError(
        'size-mismatch',
        'writer',
        `shape [${t.shape.join(', ')}] of ${t.dtype} needs ${bytes} bytes but ${t.data.byteLength} were given`,
        t.name,
      );
    }
  }
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError('metadata', 'writer', `metadata ${k} must be a string`);
    }
  }
  const ordered = [...tensors].sort(
    (a, b) => DTYPE_RANK.indexOf(b.dtype) - DTYPE_RANK.indexOf(a.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of ordered) {
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = utf8Encoder.encode(JSON.stringify(header));
  const n = Math.ceil((8 + json.length) / 8) * 8 - 8;
  const out = new Uint8Array(8 + n + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, n, true);
  view.setUint32(4, 0, true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + n);
  let at = 8 + n;
  for (const t of ordered) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}
