import { numberToF16Bits } from '../../src/engine/kernels/weight-formats';

/**
 * Seeded random data for the benchmarks: speed does not depend on the values, but NaN or overflow
 * could change which paths run, so weights look like a fresh model's (uniform with std 0.02) and
 * activations stay near unit scale.
 */

/** xorshift32: fast, seeded, good enough to fill benchmark tensors (not for statistics). */
export class XorShift32 {
  private state: number;

  constructor(seed: number) {
    // A zero state would stay zero forever.
    this.state = seed >>> 0 || 0x9e3779b9;
  }

  nextU32(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 2 ** 32;
  }
}

/** Half-width of a uniform distribution with standard deviation 0.02 (a fresh transformer's weights). */
export const WEIGHT_HALF_WIDTH = 0.02 * Math.sqrt(3);

/** n floats uniform in [-halfWidth, halfWidth). */
export function uniformF32(n: number, seed: number, halfWidth = 1): Float32Array {
  const rng = new XorShift32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * rng.next() - 1) * halfWidth;
  return out;
}

/** n token ids in [0, vocab). */
export function randomTokens(n: number, vocab: number, seed: number): Uint32Array {
  const rng = new XorShift32(seed);
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.nextU32() % vocab;
  return out;
}

/**
 * Packed int8 weights [rows, cols] (four per u32 word along a row) uniform in [-127, 127], as the
 * quantiser produces them (it never writes -128).
 */
export function randomInt8Words(rows: number, cols: number, seed: number): Uint32Array {
  if (cols % 4 !== 0) throw new Error(`randomInt8Words: cols ${cols} is not a multiple of 4`);
  const rng = new XorShift32(seed);
  const bytes = new Uint8Array(rows * cols);
  for (let i = 0; i < bytes.length; i += 4) {
    const w = rng.nextU32();
    for (let j = 0; j < 4; j++) {
      const b = (w >>> (8 * j)) & 0xff;
      bytes[i + j] = b === 0x80 ? 0x81 : b;
    }
  }
  return new Uint32Array(bytes.buffer);
}

/** Per-row scales that make randomInt8Words a matrix with std 0.02. */
export function int8Scales(rows: number): Float32Array {
  return new Float32Array(rows).fill(WEIGHT_HALF_WIDTH / 127);
}

/** Packed f16 values (two per u32 word, low half first), uniform in [-halfWidth, halfWidth). */
export function randomF16Words(count: number, seed: number, halfWidth = WEIGHT_HALF_WIDTH): Uint32Array {
  if (count % 2 !== 0) throw new Error(`randomF16Words: ${count} halves do not fill whole words`);
  const rng = new XorShift32(seed);
  const halves = new Uint16Array(count);
  for (let i = 0; i < count; i++) halves[i] = numberToF16Bits((2 * rng.next() - 1) * halfWidth);
  return new Uint32Array(halves.buffer);
}
