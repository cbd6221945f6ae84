import { F16_TO_NUMBER, bf16BitsToNumber, dtypeBytes, numberToF16Bits, requireLittleEndian, type FloatSourceDType } from './dtypes';
import { CheckpointError } from './errors';
import type { StoredDType } from './layout';

/**
 * Converts whole rows of a checkpoint tensor, as they stream in, to the stored formats:
 *  - 'i8': per output row, scale = absmax / 127 and q = sign(w / scale) * floor(|w / scale| + 0.5)
 *    (round half away from zero), in [-127, 127]; an all-zero row gets scale 0 and q 0. The arithmetic
 *    is float64 as in the golden fixtures' reference, so q matches it exactly; only the stored scale
 *    is rounded to f32. Packed four per u32 word along K (byte j of word w = element 4w + j).
 *  - 'f16': half bits, two per u32 word (low half first); F16 sources are copied, BF16/F32/F64 rounded
 *    to nearest even (a value beyond F16's range is an error, not an infinity).
 *  - 'f32': exact from F16/BF16/F32, rounded from F64.
 * NaN and infinities in a weight are refused with the tensor and row named. The packed layouts are
 * the little-endian byte order of the unpacked arrays, so packing is writing through a byte view.
 */

export interface EncodedRows {
  /** Packed words: 4 int8, 2 f16 or 1 f32 each. */
  readonly data: Uint32Array;
  /** 'i8' only: one f32 scale per row. */
  readonly scales?: Float32Array;
}

export interface RowCodecOptions {
  file: string;
  tensor: string;
  source: FloatSourceDType;
  stored: StoredDType;
  /** Elements per row (K; a 1-D tensor is one row). */
  cols: number;
}

/** |w| of every half by its magnitude bits (0x0000..0x7fff). */
const F16_MAGNITUDE = F16_TO_NUMBER.subarray(0, 0x8000);

// A scratch row shared by all codecs (the pipeline converts one piece at a time).
let scratchRow = new Float64Array(0);

function rowScratch(cols: number): void {
  if (scratchRow.length < cols) scratchRow = new Float64Array(cols);
}

export class RowCodec {
  readonly sourceRowBytes: number;

  constructor(readonly options: RowCodecOptions) {
    requireLittleEndian();
    const { cols, stored, tensor } = options;
    if (!Number.isSafeInteger(cols) || cols < 1) throw new RangeError(`${tensor}: row length ${cols} is not a positive integer`);
    if (stored === 'i8' && cols % 4 !== 0) throw new RangeError(`${tensor}: int8 rows need a length that is a multiple of 4, got ${cols}`);
    if (stored === 'f16' && cols % 2 !== 0) throw new RangeError(`${tensor}: F16 rows need an even length, got ${cols}`);
    this.sourceRowBytes = cols * dtypeBytes(options.source);
  }

  /** Converts `bytes` (whole source rows) whose first row is `rowStart` of the tensor. */
  encode(bytes: Uint8Array, rowStart: number): EncodedRows {
    const { cols, stored, source } = this.options;
    if (bytes.length % this.sourceRowBytes !== 0) {
      throw new RangeError(`${this.options.tensor}: ${bytes.length} bytes are not whole rows of ${this.sourceRowBytes}`);
    }
    const rows = bytes.length / this.sourceRowBytes;
    const elemBytes = dtypeBytes(source);
    // Typed views need an aligned start; a piece cut from a network chunk may not have one.
    const src = bytes.byteOffset % elemBytes === 0 ? bytes : bytes.slice();
    const count = rows * cols;
    const data = new Uint32Array((count * (stored === 'i8' ? 1 : stored === 'f16' ? 2 : 4)) / 4);
    if (stored === 'i8') {
      const scales = new Float32Array(rows);
      if (source === 'F16') {
        // read two halves per u32 word: needs a 4-byte aligned start
        const aligned = src.byteOffset % 4 === 0 ? src : src.slice();
        this.int8FromF16(new Uint32Array(aligned.buffer, aligned.byteOffset, count / 2), rows, data, scales, rowStart);
      } else {
        this.int8FromValues(src, rows, new Int8Array(data.buffer), scales, rowStart);
      }
      return { data, scales };
    }
    if (stored === 'f16') {
      const out = new Uint16Array(data.buffer);
      if (source === 'F16') {
        const h = new Uint16Array(src.buffer, src.byteOffset, count);
        for (let i = 0; i < count; i++) if ((h[i] & 0x7c00) === 0x7c00) this.nonFinite(rowStart + Math.floor(i / cols), F16_TO_NUMBER[h[i]]);
        out.set(h);
      } else {
        const row = this.decodeRows(src, rows);
        for (let i = 0; i < count; i++) {
          const bits = numberToF16Bits(row(i));
          if (bits < 0) this.outOfRange(rowStart + Math.floor(i / cols), row(i), "F16's range (±65504)");
          out[i] = bits;
        }
      }
      return { data };
    }
    const out = new Float32Array(data.buffer);
    const value = this.decodeRows(src, rows);
    for (let i = 0; i < count; i++) {
      const v = Math.fround(value(i));
      if (!Number.isFinite(v)) this.outOfRange(rowStart + Math.floor(i / cols), value(i), "f32's range");
      out[i] = v;
    }
    return { data };
  }

  /**
   * The hot path (Phi-2's 2.6 GB of linear weights), about twice as fast as the plain loop: halves are
   * read two per u32 word, |w| comes from a 32768-entry table, the row's absmax from an integer max of
   * the magnitude bits (finite halves order like their magnitudes), the sign from the sign bit (no
   * data-dependent branch), and four results are packed into one word per store. The arithmetic is the
   * reference's: floor(|w| / scale + 0.5) in float64.
   */
  private int8FromF16(words: Uint32Array, rows: number, out: Uint32Array, scales: Float32Array, rowStart: number): void {
    const K = this.options.cols;
    const abs = F16_MAGNITUDE;
    const wordsPerRow = K >> 1;
    let o = 0;
    for (let r = 0; r < rows; r++) {
      const begin = r * wordsPerRow;
      const end = begin + wordsPerRow;
      let maxBits = 0;
      for (let i = begin; i < end; i++) {
        const w = words[i];
        const lo = w & 0x7fff;
        const hi = (w >>> 16) & 0x7fff;
        if (lo > maxBits) maxBits = lo;
        if (hi > maxBits) maxBits = hi;
      }
      if (maxBits >= 0x7c00) this.nonFiniteHalfRow(words, begin, end, rowStart + r);
      const scale = abs[maxBits] / 127;
      scales[r] = scale;
      if (scale === 0) {
        o += K >> 2; // out is zero-filled
        continue;
      }
      for (let i = begin; i < end; i += 2) {
        const a = words[i];
        const b = words[i + 1];
        // |w| / scale <= 127 (plus rounding), so floor(. + 0.5) <= 127: no clamp needed; |0 floors the non-negative value.
        let q0 = (abs[a & 0x7fff] / scale + 0.5) | 0;
        let q1 = (abs[(a >>> 16) & 0x7fff] / scale + 0.5) | 0;
        let q2 = (abs[b & 0x7fff] / scale + 0.5) | 0;
        let q3 = (abs[(b >>> 16) & 0x7fff] / scale + 0.5) | 0;
        // negate where the sign bit is set: (q ^ -1) + 1 = -q
        let s = -((a >>> 15) & 1);
        q0 = (q0 ^ s) - s;
        s = a >> 31;
        q1 = (q1 ^ s) - s;
        s = -((b >>> 15) & 1);
        q2 = (q2 ^ s) - s;
        s = b >> 31;
        q3 = (q3 ^ s) - s;
        out[o++] = (q0 & 0xff) | ((q1 & 0xff) << 8) | ((q2 & 0xff) << 16) | (q3 << 24);
      }
    }
  }

  private nonFiniteHalfRow(words: Uint32Array, begin: number, end: number, row: number): never {
    const halves = new Uint16Array(words.buffer, words.byteOffset + begin * 4, (end - begin) * 2);
    const bad = halves.find((h) => (h & 0x7c00) === 0x7c00)!;
    this.nonFinite(row, F16_TO_NUMBER[bad]);
  }

  private int8FromValues(src: Uint8Array, rows: number, out: Int8Array, scales: Float32Array, rowStart: number): void {
    const K = this.options.cols;
    rowScratch(K);
    const row = scratchRow;
    const value = this.decodeRows(src, rows);
    for (let r = 0; r < rows; r++) {
      const base = r * K;
      let absmax = 0;
      for (let k = 0; k < K; k++) {
        const v = value(base + k);
        if (!Number.isFinite(v)) this.nonFinite(rowStart + r, v);
        row[k] = v;
        const a = Math.abs(v);
        if (a > absmax) absmax = a;
      }
      const scale = absmax / 127;
      scales[r] = scale;
      if (scale === 0) continue;
      for (let k = 0; k < K; k++) {
        const x = row[k] / scale;
        let q = Math.floor(Math.abs(x) + 0.5);
        if (q > 127) q = 127;
        out[base + k] = x < 0 ? -q : q;
      }
    }
  }

  /** Element reader over whole rows of a non-F16 (or any) source, as float64. */
  private decodeRows(src: Uint8Array, rows: number): (i: number) => number {
    const count = rows * this.options.cols;
    switch (this.options.source) {
      case 'F16': {
        const h = new Uint16Array(src.buffer, src.byteOffset, count);
        return (i) => F16_TO_NUMBER[h[i]];
      }
      case 'BF16': {
        const h = new Uint16Array(src.buffer, src.byteOffset, count);
        return (i) => bf16BitsToNumber(h[i]);
      }
      case 'F32': {
        const f = new Float32Array(src.buffer, src.byteOffset, count);
        return (i) => f[i];
      }
      case 'F64': {
        const f = new Float64Array(src.buffer, src.byteOffset, count);
        return (i) => f[i];
      }
    }
  }

  private nonFinite(row: number, value: number): never {
    const { file, tensor } = this.options;
    throw new CheckpointError('tensor-values', `${file}: ${tensor} row ${row} holds ${value}; weights must be finite`, file, tensor);
  }

  private outOfRange(row: number, value: number, range: string): never {
    const { file, tensor } = this.options;
    if (!Number.isFinite(value)) this.nonFinite(row, value);
    throw new CheckpointError('tensor-values', `${file}: ${tensor} row ${row} holds ${value}, beyond ${range}; it cannot be stored`, file, tensor);
  }
}
