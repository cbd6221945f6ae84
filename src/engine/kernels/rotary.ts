import rotaryCode from '../../../shaders/rotary.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';
import { expectDisjoint } from './kernel-args';

const ROTARY = { name: 'rotary', code: rotaryCode };
const WG = 256;

/**
 * Partial rotary position embedding in the "rotate half" convention (Phi-2, GPT-NeoX): within the
 * first `rotaryDim` dims of every head, dims i and i + rotaryDim/2 rotate by position * theta^(-2i/rotaryDim).
 */
export interface RotaryTable {
  /** [positions, rotaryDim/2, 2]: cos and sin of every (position, pair) angle. */
  readonly tensor: GpuTensor;
  readonly rotaryDim: number;
  readonly theta: number;
  readonly positions: number;
}

export interface RotaryShape {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
  /** Positions already in the KV cache: token t of this call sits at pastLen + t (0 in training). */
  pastLen?: number;
}

export interface RotaryOptions {
  /**
   * [batch] u32: rows of left padding per sequence (batched generation of prompts of different
   * lengths). Token t of sequence b then sits at position pastLen + t - leftPad[b]; padding rows
   * themselves (negative positions) take position 0. Positions stay within pastLen + seq, so the
   * table check is the same.
   */
  leftPad?: GpuTensor;
}

const placeholders = new WeakMap<GpuRuntime, GpuTensor>();

/** A stand-in for the left-padding binding when there is none (a uniform flag tells the shader). */
function noLeftPad(gpu: GpuRuntime): GpuTensor {
  let t = placeholders.get(gpu);
  if (!t) {
    t = gpu.tensor('rotary.no_left_pad', [4], 'u32');
    placeholders.set(gpu, t);
  }
  return t;
}

/**
 * The cos/sin table in float64, rounded once to f32. Large angles (position up to thousands of
 * radians) are where f32 angle products and GPU sin/cos lose digits, so the angles never exist in f32.
 */
export function rotaryTableData(theta: number, rotaryDim: number, positions: number): Float32Array {
  if (!(theta > 1)) throw new Error(`rotary: theta must be > 1, got ${theta}`);
  if (!Number.isInteger(rotaryDim) || rotaryDim < 2 || rotaryDim % 2 !== 0) {
    throw new Error(`rotary: rotaryDim must be a positive even integer, got ${rotaryDim}`);
  }
  if (!Number.isInteger(positions) || positions < 1) throw new Error(`rotary: positions must be a positive integer, got ${positions}`);
  const half = rotaryDim / 2;
  const table = new Float32Array(positions * half * 2);
  for (let i = 0; i < half; i++) {
    const invFreq = Math.pow(theta, (-2 * i) / rotaryDim);
    for (let pos = 0; pos < positions; pos++) {
      const angle = pos * invFreq;
      table[(pos * half + i) * 2] = Math.cos(angle);
      table[(pos * half + i) * 2 + 1] = Math.sin(angle);
    }
  }
  return table;
}

/** Uploads the table for positions 0..positions-1 (Phi-2: theta 10000, rotaryDim 32, 2048 positions: 256 KiB). */
export function createRotaryTable(gpu: GpuRuntime, theta: number, rotaryDim: number, positions: number): RotaryTable {
  const data = rotaryTableData(theta, rotaryDim, positions);
  const tensor = gpu.upload(`rotary_cos_sin[${rotaryDim},θ=${theta}]`, [positions, rotaryDim / 2, 2], data);
  return { tensor, rotaryDim, theta, positions };
}

/** Rotates q or k [batch*seq, heads*headDim] in place. */
export function rotaryForward(gpu: GpuRuntime, x: GpuTensor, table: RotaryTable, shape: RotaryShape, options: RotaryOptions = {}): void {
  rotate(gpu, 'rotaryForward', x, table, shape, 1, options);
}

/** The backward of rotaryForward, in place on dq or dk: the transposed (inverse) rotation. */
export function rotaryBackward(gpu: GpuRuntime, dx: GpuTensor, table: RotaryTable, shape: RotaryShape, options: RotaryOptions = {}): void {
  rotate(gpu, 'rotaryBackward', dx, table, shape, -1, options);
}

function rotate(gpu: GpuRuntime, kernel: string, x: GpuTensor, table: RotaryTable, shape: RotaryShape, sinSign: 1 | -1, options: RotaryOptions): void {
  const { batch, seq, heads, headDim } = shape;
  const pastLen = shape.pastLen ?? 0;
  for (const [name, value] of Object.entries({ batch, seq, heads, headDim, pastLen })) {
    if (!Number.isInteger(value) || value < (name === 'pastLen' ? 0 : 1)) {
      throw new Error(`${kernel}: ${name} must be a ${name === 'pastLen' ? 'non-negative' : 'positive'} integer, got ${value}`);
    }
  }
  if (table.rotaryDim > headDim) {
    throw new Error(`${kernel}: rotaryDim ${table.rotaryDim} exceeds headDim ${headDim}`);
  }
  if (pastLen + seq > table.positions) {
    throw new Error(
      `${kernel}: positions up to ${pastLen + seq - 1} need a rotary table of ${pastLen + seq} positions, ` +
        `this one has ${table.positions}`,
    );
  }
  expectDType(kernel, x, 'f32');
  expectShape(kernel, x, [batch * seq, heads * headDim]);
  const { leftPad } = options;
  if (leftPad) {
    expectDType(kernel, leftPad, 'u32');
    expectShape(kernel, leftPad, [batch]);
    expectDisjoint(kernel, x, [leftPad]);
  }
  const half = table.rotaryDim / 2;
  const [gx, gy] = grid(Math.ceil((batch * seq * heads * half) / WG));
  gpu.encoder.dispatch(
    gpu.pipelines.get(ROTARY, { WG }),
    packUniforms([
      ['u32', batch * seq],
      ['u32', seq],
      ['u32', heads],
      ['u32', headDim],
      ['u32', half],
      ['u32', pastLen],
      ['f32', sinSign],
      ['u32', gx],
      ['u32', leftPad ? 1 : 0],
    ]),
    [x, table.tensor, leftPad ?? noLeftPad(gpu)],
    [gx, gy],
    undefined,
    [5], // past_len, shifted when a decode step is replayed
  );
}
