import { describe, expect, it } from 'vitest';
import { F16_TO_NUMBER, bf16BitsToNumber, numberToF16Bits, type FloatSourceDType } from '../../../../src/engine/weights/dtypes';
import { CheckpointError } from '../../../../src/engine/weights/errors';
import type { StoredDType } from '../../../../src/engine/weights/layout';
import { RowCodec } from '../../../../src/engine/weights/quantize';
import { parseSafetensors } from '../../../../src/engine/weights/safetensors';
import { compareTensors, rng } from '../../../support/compare';
import { fixtureBytes } from '../../../support/safetensors-fixtures';
import { halfToNumberRef, numberToHalfRef, quantizeRowsRef, unpackHalfWords, unpackInt8Words } from '../../../reference/quantize';

/** Random half bits with magnitudes spread over the whole range, some zeros and subnormals. */
function randomHalves(n: number, random: () => number, maxExponent = 30): Uint16Array {
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const u = random();
    const e = u < 0.05 ? 0 : 1 + Math.floor(random() * maxExponent);
    out[i] = (random() < 0.5 ? 0x8000 : 0) | (Math.min(e, 30) << 10) | Math.floor(random() * 1024);
  }
  return out;
}

/** The same values as bytes of another source dtype (exactly representable there). */
function encodeAs(values: ArrayLike<number>, dtype: FloatSourceDType): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(Float32Array.from(values).buffer);
  if (dtype === 'F64') return new Uint8Array(Float64Array.from(values).buffer);
  if (dtype === 'F16') return new Uint8Array(Uint16Array.from(values, (v) => numberToHalfRef(v)).buffer);
  // BF16: the upper half of the float32 bits (exact for values with 8 significant bits or fewer)
  const f = Float32Array.from(values);
  const u = new Uint32Array(f.buffer);
  return new Uint8Array(Uint16Array.from(u, (x) => x >>> 16).buffer);
}

function codec(stored: StoredDType, source: FloatSourceDType, cols: number, tensor = 't') {
  return new RowCodec({ file: 'f.safetensors', tensor, source, stored, cols });
}

function expectInt8Matches(tag: string, bytes: Uint8Array, source: FloatSourceDType, values: ArrayLike<number>, rows: number, cols: number) {
  const out = codec('i8', source, cols).encode(bytes, 0);
  const ref = quantizeRowsRef(values, rows, cols);
  const q = unpackInt8Words(out.data);
  const c = compareTensors(`${tag} q`, q, ref.q, true);
  expect(c.maxAbsDiff, `${tag}: q differs at ${c.maxAt}`).toBe(0);
  for (let r = 0; r < rows; r++) expect(out.scales![r], `${tag} scale of row ${r}`).toBe(Math.fround(ref.scales[r]));
  return out;
}

describe('half-float conversions', () => {
  it('decodes all 65536 half bit patterns exactly', () => {
    for (let b = 0; b < 65536; b++) {
      const want = halfToNumberRef(b);
      if (Number.isNaN(want)) expect(F16_TO_NUMBER[b]).toBeNaN();
      else expect(Object.is(F16_TO_NUMBER[b], want), `bits 0x${b.toString(16)}`).toBe(true);
    }
  });

  it('rounds numbers to the nearest half, ties to even, like the search reference', () => {
    const random = rng(11);
    const samples: number[] = [0, -0, 1, -1, 65504, -65504, 65519.99, 65520, 1e-8, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14, 2 ** -14 - 2 ** -25, 0.1, 1 / 3];
    // exact midpoints between neighbouring halves, normal and subnormal
    for (const b of [0x0001, 0x0002, 0x03ff, 0x0400, 0x3c00, 0x3c01, 0x7bfe]) samples.push((halfToNumberRef(b) + halfToNumberRef(b + 1)) / 2);
    for (let i = 0; i < 20000; i++) {
      const mag = Math.pow(2, random() * 44 - 28);
      samples.push((random() < 0.5 ? -1 : 1) * mag);
      samples.push(Math.fround((random() - 0.5) * 4));
    }
    for (const v of samples) expect(numberToF16Bits(v), `value ${v}`).toBe(numberToHalfRef(v));
    expect(numberToF16Bits(NaN)).toBe(-1);
    expect(numberToF16Bits(Infinity)).toBe(-1);
  });

  it('decodes bfloat16 as the top half of a float32', () => {
    expect(bf16BitsToNumber(0x3f80)).toBe(1);
    expect(bf16BitsToNumber(0xc049)).toBe(Math.fround(-3.140625));
    expect(bf16BitsToNumber(0x0001)).toBe(2 ** -133);
  });
});

describe('int8 row quantisation', () => {
  // K values: the packing minimum, odd multiples of 4, Phi-2's 2560 and 10240, and a prime-ish width.
  const SHAPES: Array<[number, number]> = [
    [1, 4],
    [3, 12],
    [5, 160],
    [2, 2560],
    [1, 10240],
    [7, 1004],
  ];
  for (const [rows, cols] of SHAPES) {
    for (const source of ['F16', 'BF16', 'F32', 'F64'] as const) {
      it(`matches the float64 reference from ${source} at ${rows}x${cols}`, () => {
        const random = rng(rows * 1000 + cols + source.length);
        // F16-representable values (small enough for BF16 too when the mantissa is short), so every source carries the same numbers
        const bits = randomHalves(rows * cols, random, source === 'F16' ? 30 : 29);
        const values = Array.from(bits, (b) => halfToNumberRef(source === 'BF16' ? b & 0xfff0 : b));
        if (rows > 2) values.fill(0, cols, 2 * cols); // an all-zero row
        const out = expectInt8Matches(`${source} ${rows}x${cols}`, encodeAs(values, source), source, values, rows, cols);
        if (rows > 2) {
          expect(out.scales![1]).toBe(0);
          expect(unpackInt8Words(out.data).subarray(cols, 2 * cols).every((q) => q === 0)).toBe(true);
        }
      });
    }
  }

  it('rounds exact halves away from zero, both signs', () => {
    // absmax 127 * 2^-4 makes the scale exactly 2^-4, so w = (k + 0.5) * 2^-4 lands on a tie.
    const cols = 8;
    const values = [127, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, -126.5].map((k) => k * 2 ** -4);
    const bytes = encodeAs(values, 'F16');
    const out = codec('i8', 'F16', cols).encode(bytes, 0);
    expect(Array.from(unpackInt8Words(out.data))).toEqual([127, 1, -1, 2, -2, 3, -3, -127]);
    expect(out.scales![0]).toBe(2 ** -4);
  });

  it('keeps a single non-zero value at ±127 and subnormal rows exact', () => {
    const values = [0, 0, -(2 ** -24), 0, 0, 3 * 2 ** -24, 0, 2 ** -23];
    expectInt8Matches('subnormal', encodeAs(values, 'F16'), 'F16', values, 1, 8);
    const lone = [0, 0, 0, -65504];
    const out = expectInt8Matches('lone', encodeAs(lone, 'F16'), 'F16', lone, 1, 4);
    expect(Array.from(unpackInt8Words(out.data))).toEqual([0, 0, 0, -127]);
  });

  it('packs byte j of word w as element 4w + j, two\u2019s complement', () => {
    const values = [127, -1, 2, -127, 0, 64, -64, 1];
    const out = codec('i8', 'F32', 8).encode(encodeAs(values, 'F32'), 0);
    const view = new DataView(out.data.buffer);
    expect(out.data.length).toBe(2);
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((i) => view.getInt8(i))).toEqual([127, -1, 2, -127, 0, 64, -64, 1]);
    expect(out.data[0] >>> 0).toBe(0x81_02_ff_7f);
  });

  it('accepts pieces at odd byte offsets (views into network chunks)', () => {
    const values = Array.from(randomHalves(2 * 16, rng(5)), halfToNumberRef);
    const bytes = encodeAs(values, 'F16');
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const a = codec('i8', 'F16', 16).encode(bytes, 0);
    const b = codec('i8', 'F16', 16).encode(shifted.subarray(1), 0);
    expect(Array.from(b.data)).toEqual(Array.from(a.data));
  });

  it('quantises the golden checkpoint\u2019s linear weights as the reference does', () => {
    const shard = parseSafetensors(fixtureBytes('golden', 'model-00001-of-00002.safetensors'));
    for (const name of ['model.layers.0.mlp.fc1.weight', 'model.layers.0.mlp.fc2.weight', 'model.layers.0.self_attn.q_proj.weight']) {
      const t = shard.header.tensors.find((x) => x.name === name)!;
      const [rows, cols] = t.shape;
      expectInt8Matches(name, shard.bytes(name), 'F16', shard.float32(name), rows, cols);
    }
  });

  it('refuses NaN and infinities, naming the tensor and row', () => {
    const bits = new Uint16Array(3 * 8).fill(0x3c00);
    bits[2 * 8 + 5] = 0x7c00; // +inf in row 2
    const err = (() => {
      try {
        codec('i8', 'F16', 8, 'model.layers.3.mlp.fc1.weight').encode(new Uint8Array(bits.buffer), 40);
      } catch (e) {
        return e as CheckpointError;
      }
    })();
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err!.code).toBe('tensor-values');
    expect(err!.message).toMatch(/model\.layers\.3\.mlp\.fc1\.weight row 42 holds Infinity/);
    const f = new Float32Array([1, 2, NaN, 4]);
    expect(() => codec('i8', 'F32', 4).encode(new Uint8Array(f.buffer), 0)).toThrow(/row 0 holds NaN/);
    expect(() => codec('f32', 'F32', 4).encode(new Uint8Array(f.buffer), 0)).toThrow(/row 0 holds NaN/);
    const nanHalf = new Uint16Array([0x3c00, 0x7e00]);
    expect(() => codec('f16', 'F16', 2).encode(new Uint8Array(nanHalf.buffer), 0)).toThrow(/row 0 holds NaN/);
  });

  it('refuses row lengths the packing cannot hold', () => {
    expect(() => codec('i8', 'F16', 6)).toThrow(/multiple of 4/);
    expect(() => codec('f16', 'F16', 3)).toThrow(/even/);
    expect(() => codec('i8', 'F16', 8).encode(new Uint8Array(10), 0)).toThrow(/not whole rows/);
  });
});

describe('F16 and f32 storage', () => {
  it('copies F16 and rounds BF16/F32/F64 to the nearest half', () => {
    const random = rng(3);
    const cols = 64;
    const f32 = Float32Array.from({ length: 3 * cols }, () => Math.fround((random() - 0.5) * 2 ** Math.floor(random() * 20 - 10)));
    for (const source of ['F32', 'F64'] as const) {
      const out = codec('f16', source, cols).encode(encodeAs(f32, source), 0);
      expect(Array.from(unpackHalfWords(out.data))).toEqual(Array.from(f32, numberToHalfRef));
    }
    const halves = randomHalves(3 * cols, random);
    const copy = codec('f16', 'F16', cols).encode(new Uint8Array(halves.buffer), 0);
    expect(Array.from(unpackHalfWords(copy.data))).toEqual(Array.from(halves));
    const bf = Uint16Array.from(f32, (v) => new Uint32Array(Float32Array.of(v).buffer)[0] >>> 16); // truncated to BF16
    const fromBf = codec('f16', 'BF16', cols).encode(new Uint8Array(bf.buffer), 0);
    expect(Array.from(unpackHalfWords(fromBf.data))).toEqual(Array.from(bf, (b) => numberToHalfRef(bf16BitsToNumber(b))));
  });

  it('refuses values beyond the F16 range instead of storing infinity', () => {
    const f = new Float32Array([1, 2, 3, 70000]);
    expect(() => codec('f16', 'F32', 2, 'lm_head.weight').encode(new Uint8Array(f.buffer), 10)).toThrow(/lm_head\.weight row 11 holds 70000, beyond F16's range/);
    const huge = new Float64Array([1e300, 0]);
    expect(() => codec('f32', 'F64', 2, 'final_ln.bias').encode(new Uint8Array(huge.buffer), 0)).toThrow(/final_ln\.bias row 0 holds 1e\+300, beyond f32's range/);
  });

  it('stores biases and LayerNorm parameters as exact f32', () => {
    const halves = randomHalves(10, rng(9));
    const out = codec('f32', 'F16', 10).encode(new Uint8Array(halves.buffer), 0);
    expect(Array.from(new Float32Array(out.data.buffer))).toEqual(Array.from(halves, halfToNumberRef));
    const f64 = new Float64Array([Math.PI, -1e-3]);
    const fromF64 = codec('f32', 'F64', 2).encode(new Uint8Array(f64.buffer), 0);
    expect(Array.from(new Float32Array(fromF64.data.buffer))).toEqual([Math.fround(Math.PI), Math.fround(-1e-3)]);
    const bf = new Uint16Array([0x3f80, 0xbf00]);
    const fromBf = codec('f32', 'BF16', 2).encode(new Uint8Array(bf.buffer), 0);
    expect(Array.from(new Float32Array(fromBf.data.buffer))).toEqual([1, -0.5]);
  });
});
