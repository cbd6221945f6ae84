import loraGemm from '../../../shaders/lora.gemm.wgsl?raw';
import loraReduce from '../../../shaders/lora.reduce.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';
import type { DropoutMask } from './dropout';
import { expectBindable } from './matmul';
import { groupSlicing, loraScratchFloats, TILE } from '../../shared/lora-slicing';
import { dropThreshold, REPLAY_SEED, RNG_WGSL } from './rng';

/**
 * LoRA on a linear layer with input x [M, K] and output [M, N]:
 *   y += scaling * (dropout(x) · Aᵀ) · Bᵀ,   A [r, K], B [N, r], all f32.
 * The forward pass saves xa = dropout(x) · Aᵀ [M, r]; the backward pass replays the dropout mask from
 * its seed instead of storing it. Every product is one strided f32 GEMM (lora.gemm.wgsl); reductions
 * over long dimensions or over tokens are split into slices and summed by a second, deterministic
 * pass (lora.reduce.wgsl).
 */

const GEMM = { name: 'lora.gemm', code: RNG_WGSL + loraGemm };
const REDUCE = { name: 'lora.reduce', code: RNG_WGSL + loraReduce };

/**
 * LoRA's dropout on its input, the dropout kernel's mask: the seed is per step (or micro-batch), and
 * forward and backward of one step must use the same; the salt is per adapted layer, so that layers
 * drop different elements.
 */
export type LoraDropout = DropoutMask;

/** Scratch buffers of the LoRA kernels; by default a shared per-runtime set that grows as needed. */
export interface LoraScratch {
  /** scaling * dY · B, [M, r] floats at least. */
  dxa: GpuTensor;
  /** Partial sums of split reductions. */
  partials: GpuTensor;
}

export interface LoraOptions {
  dropout?: LoraDropout | null;
  scratch?: LoraScratch;
}

/** The left operand, element (i, l) at i * row + l * red. */
interface LeftOperand {
  t: GpuTensor;
  row: number;
  red: number;
}

/** The right operand, element (l, j) at l * red + j * col. */
interface RightOperand {
  t: GpuTensor;
  red: number;
  col: number;
}

/** C [M, N] (= or +=) alpha * a · b, reducing over L. */
interface Product {
  c: GpuTensor;
  a: LeftOperand;
  b: RightOperand;
  M: number;
  N: number;
  L: number;
  alpha: number;
  accumulate: boolean;
  drop?: { target: 'a' | 'b' | 'c'; dropout: LoraDropout };
}

const DROP_TARGET = { a: 1, b: 2, c: 3 } as const;
/** lora.gemm.wgsl's limits and flags. */
export const MAX_GROUP = 6;
const TABLE_SCALARS = 44;
const PER_PROBLEM = 0xffffffff;
const FLAG_SUM = 1;
const FLAG_ACCUMULATE = 2;
const FLAG_SPLIT = 4;
const EP_DROPOUT_RESIDUAL = 1;

/** One product of a group: C_q = alpha * op(A_q) · op(B_q), its operands and C at element offsets. */
export interface GroupProblem {
  M: number;
  N: number;
  /** Which of the group's A (and B) tensors the operand is in, and where it starts there. */
  a: { slot: number; off: number };
  b: { slot: number; off: number };
  cOff: number;
  /** Salt of LoRA's dropout for this product's layer (with the group's drop). */
  salt?: number;
}

/**
 * Products recorded as one dispatch (lora.gemm.wgsl): disjoint Cs, or (summed) one C that receives
 * every problem's product, each under its own dropout mask.
 */
export interface ProductGroup {
  c: GpuTensor;
  as: readonly GpuTensor[];
  bs: readonly GpuTensor[];
  problems: readonly GroupProblem[];
  L: number;
  /** A element (i, l) at a_off + i * aRow + l * aRed; 'M': each problem's M. */
  aRow: number;
  aRed: number | 'M';
  /** B element (l, j) at b_off + l * bRed + j * bCol; 'N': each problem's N. */
  bRed: number | 'N';
  bCol: number;
  alpha: number;
  accumulate: boolean;
  summed?: boolean;
  /** Split long reductions into slices when the tiles alone would leave the GPU idle (Cs must follow one another). */
  split?: boolean;
  /** LoRA's dropout on x, where x is an operand ('a', 'b') or under C's product ('c'); salts per problem. */
  drop?: { target: 'a' | 'b' | 'c'; p: number; seed: number } | null;
  /** C holds a branch's base output: residual[off + o] += dropout(C[o] + product), C unchanged. */
  residual?: { t: GpuTensor; off: number; mask: { p: number; seed: number; salt: number } | null };
}

const noAux = new WeakMap<GpuRuntime, GpuTensor>();

/** A writable binding for the epilogue's slot when there is no epilogue (a binding may not alias C). */
function unusedAux(gpu: GpuRuntime): GpuTensor {
  let t = noAux.get(gpu);
  if (!t) {
    t = gpu.tensor('lora.no_aux', [4]);
    noAux.set(gpu, t);
  }
  return t;
}

const elements = (t: GpuTensor) => t.shape.reduce((x, y) => x * y, 1);

function checkGroup(kernel: string, g: ProductGroup): void {
  const n = g.problems.length;
  if (n < 1 || n > MAX_GROUP) throw new Error(`${kernel}: a group holds 1 to ${MAX_GROUP} products, got ${n}`);
  if (g.as.length < 1 || g.as.length > 3 || g.bs.length < 1 || g.bs.length > 3) throw new Error(`${kernel}: 1 to 3 A and B tensors, got ${g.as.length} and ${g.bs.length}`);
  for (const t of [g.c, ...g.as, ...g.bs, ...(g.residual ? [g.residual.t] : [])]) expectDType(kernel, t, 'f32');
  for (const [name, v] of Object.entries({ L: g.L, aRow: g.aRow, bCol: g.bCol, ...(g.aRed === 'M' ? {} : { aRed: g.aRed }), ...(g.bRed === 'N' ? {} : { bRed: g.bRed }) })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${kernel}: ${name} must be a positive integer, got ${v}`);
  }
  if (!Number.isFinite(g.alpha)) throw new Error(`${kernel}: alpha must be finite, got ${g.alpha}`);
  const first = g.problems[0];
  for (const q of g.problems) {
    for (const [name, v] of Object.entries({ M: q.M, N: q.N })) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`${kernel}: ${name} must be a positive integer, got ${v}`);
    }
    if (g.summed && (q.M !== first.M || q.N !== first.N || q.cOff !== first.cOff)) throw new Error(`${kernel}: summed products need one M, N and C`);
    const aRed = g.aRed === 'M' ? q.M : g.aRed;
    const bRed = g.bRed === 'N' ? q.N : g.bRed;
    const a = g.as[q.a.slot];
    const b = g.bs[q.b.slot];
    if (!a || !b) throw new Error(`${kernel}: operand slot ${a ? q.b.slot : q.a.slot} is not bound`);
    const lastA = q.a.off + (q.M - 1) * g.aRow + (g.L - 1) * aRed;
    const lastB = q.b.off + (g.L - 1) * bRed + (q.N - 1) * g.bCol;
    if (lastA >= elements(a)) throw new Error(`${kernel}: ${a.name} has ${elements(a)} elements, a product reads up to ${lastA}`);
    if (lastB >= elements(b)) throw new Error(`${kernel}: ${b.name} has ${elements(b)} elements, a product reads up to ${lastB}`);
    if (q.cOff + q.M * q.N > elements(g.c)) throw new Error(`${kernel}: ${g.c.name} has ${elements(g.c)} elements, a product writes up to ${q.cOff + q.M * q.N}`);
    if (g.residual && g.residual.off + q.M * q.N > elements(g.residual.t)) throw new Error(`${kernel}: ${g.residual.t.name} is shorter than the product`);
    if (g.drop && g.drop.p > 0 && (q.salt === undefined || !Number.isInteger(q.salt) || q.salt < 0 || q.salt > 0xffffffff)) {
      throw new Error(`${kernel}: dropout salt must be a u32, got ${q.salt}`);
    }
  }
  if (g.drop) {
    dropThreshold(g.drop.p); // throws outside [0, 1)
    if (!Number.isInteger(g.drop.seed) || g.drop.seed < 0 || g.drop.seed > 0xffffffff) throw new Error(`${kernel}: dropout seed must be a u32, got ${g.drop.seed}`);
  }
  if (g.residual && (g.drop || g.summed)) throw new Error(`${kernel}: the residual epilogue takes one plain product`);
}

/**
 * Records a group of products (lora.gemm.wgsl), split over L with a reduction pass (lora.reduce.wgsl)
 * when that helps and the group allows it; `partials` is the scratch of split sums.
 */
export function recordGroup(gpu: GpuRuntime, kernel: string, g: ProductGroup, partials: GpuTensor | null): void {
  checkGroup(kernel, g);
  const tilesOf = (q: GroupProblem) => Math.ceil(q.M / TILE) * Math.ceil(q.N / TILE);
  const tiles = g.summed ? tilesOf(g.problems[0]) : g.problems.reduce((s, q) => s + tilesOf(q), 0);
  const { chunks, chunkLen } = groupSlicing(tiles, g.L, !!g.split && !g.residual);
  const split = chunks > 1;
  const count = g.summed ? g.problems[0].M * g.problems[0].N : g.problems.reduce((s, q) => s + q.M * q.N, 0);
  if (split) {
    let next = g.problems[0].cOff;
    for (const q of g.problems) {
      if (q.cOff !== next) throw new Error(`${kernel}: a split group needs its products' C one after another`);
      next += q.M * q.N;
    }
    if (!partials || elements(partials) < chunks * count) throw new Error(`${kernel}: split sums need ${chunks * count} floats of scratch`);
  }
  const drop = g.drop && g.drop.p > 0 ? g.drop : null;
  const mask = g.residual?.mask && g.residual.mask.p > 0 ? g.residual.mask : null;
  const aux = g.residual ? g.residual.t : unusedAux(gpu);
  const target = split ? partials! : g.c;
  expectBindable(kernel, gpu, [target, aux], [...g.as, ...g.bs]);
  if (split) expectBindable(kernel, gpu, [g.c], [partials!]);

  const flags =
    (g.summed ? FLAG_SUM : 0) | (g.accumulate ? FLAG_ACCUMULATE : 0) | (split ? FLAG_SPLIT : 0) |
    ((drop ? DROP_TARGET[drop.target] : 0) << 4) | ((g.residual ? EP_DROPOUT_RESIDUAL : 0) << 8);
  const seed = drop?.seed ?? mask?.seed ?? 0;
  const p = drop?.p ?? mask?.p ?? 0;
  const table: Array<['u32' | 'f32', number]> = [];
  for (const q of g.problems) {
    table.push(['u32', q.M], ['u32', q.N], ['u32', q.a.slot | (q.b.slot << 4)], ['u32', q.a.off], ['u32', q.b.off], ['u32', q.cOff], ['u32', q.salt ?? 0]);
  }
  while (table.length < TABLE_SCALARS) table.push(['u32', 0]);
  const [gx, gy] = grid(tiles * chunks);
  const pick = (ts: readonly GpuTensor[]) => [0, 1, 2].map((i) => ts[i] ?? ts[0]);
  gpu.encoder.dispatch(
    gpu.pipelines.get(GEMM),
    packUniforms([
      ['u32', g.problems.length], ['u32', flags], ['u32', g.L], ['u32', chunkLen],
      ['u32', chunks], ['u32', tiles], ['u32', gx], ['u32', g.aRow],
      ['u32', g.aRed === 'M' ? PER_PROBLEM : g.aRed], ['u32', g.bRed === 'N' ? PER_PROBLEM : g.bRed], ['u32', g.bCol], ['f32', g.alpha],
      drop || mask ? ['u32', seed, REPLAY_SEED] : ['u32', 0], ['u32', dropThreshold(p)], ['f32', 1 / (1 - p)], ['u32', g.residual?.off ?? 0],
      ['u32', mask?.salt ?? 0], ['u32', 0], ['u32', 0], ['u32', 0],
      ...table,
    ]),
    [target, aux, ...pick(g.as), ...pick(g.bs)],
    [gx, gy],
  );
  if (!split) return;
  const [rx, ry] = grid(Math.ceil(count / 256));
  gpu.encoder.dispatch(
    gpu.pipelines.get(REDUCE),
    packUniforms([['u32', count], ['u32', chunks], ['u32', g.accumulate ? 1 : 0], ['u32', rx], ['u32', g.problems[0].cOff]]),
    [g.c, partials!],
    [rx, ry],
  );
}

/** drop in a product's terms: the mask of one LoRA layer. */
function dropOf(target: 'a' | 'b' | 'c', dropout: LoraDropout | null | undefined): Pick<ProductGroup, 'drop'> & { salt?: number } {
  return dropout && dropout.p > 0 ? { drop: { target, p: dropout.p, seed: dropout.seed }, salt: dropout.salt } : {};
}

/** Records C (= or +=) alpha * op(A) · op(B) (one product: a group of one). */
function product(gpu: GpuRuntime, scratch: LoraScratch, q: Product): void {
  const { drop, salt } = q.drop ? dropOf(q.drop.target, q.drop.dropout) : { drop: undefined, salt: undefined };
  recordGroup(
    gpu,
    'lora',
    {
      c: q.c,
      as: [q.a.t],
      bs: [q.b.t],
      problems: [{ M: q.M, N: q.N, a: { slot: 0, off: 0 }, b: { slot: 0, off: 0 }, cOff: 0, salt }],
      L: q.L,
      aRow: q.a.row,
      aRed: q.a.red,
      bRed: q.b.red,
      bCol: q.b.col,
      alpha: q.alpha,
      accumulate: q.accumulate,
      split: true,
      drop,
    },
    scratch.partials,
  );
}

const sharedScratch = new WeakMap<GpuRuntime, LoraScratch>();

/**
 * Scratch for one layer's sizes, for callers that plan their own memory; to share one between layers,
 * size each part by the largest loraScratchFloats over them.
 */
export function createLoraScratch(gpu: GpuRuntime, M: number, N: number, K: number, r: number): LoraScratch {
  const need = loraScratchFloats(M, N, K, r);
  return { dxa: gpu.tensor('lora.dxa', [need.dxa]), partials: gpu.tensor('lora.partials', [Math.max(1, need.partials)]) };
}

function scratchFor(
  kernel: string,
  gpu: GpuRuntime,
  sizes: [M: number, N: number, K: number, r: number],
  bound: ReadonlyArray<GpuTensor | null>,
  given?: LoraScratch,
): LoraScratch {
  const need = loraScratchFloats(...sizes);
  let scratch = given;
  if (scratch) {
    for (const [role, t] of Object.entries(scratch) as Array<[keyof LoraScratch, GpuTensor]>) {
      expectDType(kernel, t, 'f32');
      const floats = (t.buffer.size - t.byteOffset) / 4;
      if (floats < need[role]) throw new Error(`${kernel}: scratch ${t.name} holds ${floats} floats, ${need[role]} needed`);
    }
    if (scratch.dxa.buffer === scratch.partials.buffer) throw new Error(`${kernel}: scratch dxa and partials must be separate buffers`);
  } else {
    // Growing replaces a buffer without destroying it: dispatches recorded before may still use it.
    const have = sharedScratch.get(gpu);
    const fits = (t: GpuTensor | undefined, floats: number) => t !== undefined && t.buffer.size >= floats * 4;
    scratch = {
      dxa: fits(have?.dxa, need.dxa) ? have!.dxa : gpu.tensor('lora.dxa', [need.dxa]),
      partials: fits(have?.partials, need.partials) ? have!.partials : gpu.tensor('lora.partials', [Math.max(1, need.partials)]),
    };
    sharedScratch.set(gpu, scratch);
  }
  for (const t of bound) {
    if (t && (t.buffer === scratch.dxa.buffer || t.buffer === scratch.partials.buffer)) {
      throw new Error(`${kernel}: ${t.name} shares a buffer with the LoRA scratch`);
    }
  }
  return scratch;
}

function checkSizes(kernel: string, sizes: Record<string, number>, scaling: number, dropout: LoraDropout | null | undefined): void {
  for (const [name, v] of Object.entries(sizes)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${kernel}: ${name} must be a positive integer, got ${v}`);
  }
  if (!Number.isFinite(scaling)) throw new Error(`${kernel}: scaling must be finite, got ${scaling}`);
  if (dropout) {
    dropThreshold(dropout.p); // throws outside [0, 1)
    for (const key of ['seed', 'salt'] as const) {
      const v = dropout[key];
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`${kernel}: dropout ${key} must be a u32, got ${v}`);
    }
  }
}

function checkTensors(kernel: string, shapes: Array<[GpuTensor, number[]]>): void {
  for (const [t, shape] of shapes) {
    expectDType(kernel, t, 'f32');
    expectShape(kernel, t, shape);
  }
}

/**
 * Saves xa = dropout(inp) · Aᵀ [M, r] and adds scaling * xa · Bᵀ into out [M, N] (after the base layer
 * has written it). With dropout, pass the same LoraDropout to loraBackward.
 */
export function loraForward(
  gpu: GpuRuntime,
  out: GpuTensor,
  xa: GpuTensor,
  inp: GpuTensor,
  A: GpuTensor,
  B: GpuTensor,
  M: number,
  N: number,
  K: number,
  r: number,
  scaling: number,
  opts: LoraOptions = {},
): void {
  const k = 'loraForward';
  const dropout = opts.dropout && opts.dropout.p > 0 ? opts.dropout : null;
  checkSizes(k, { M, N, K, r }, scaling, opts.dropout);
  checkTensors(k, [[out, [M, N]], [xa, [M, r]], [inp, [M, K]], [A, [r, K]], [B, [N, r]]]);
  expectBindable(k, gpu, [out, xa], [inp, A, B]);
  const scratch = scratchFor(k, gpu, [M, N, K, r], [out, xa, inp, A, B], opts.scratch);

  product(gpu, scratch, {
    c: xa, M, N: r, L: K, alpha: 1, accumulate: false,
    a: { t: inp, row: K, red: 1 },
    b: { t: A, red: 1, col: K },
    drop: dropout ? { target: 'a', dropout } : undefined,
  });
  product(gpu, scratch, {
    c: out, M, N, L: r, alpha: scaling, accumulate: true,
    a: { t: xa, row: r, red: 1 },
    b: { t: B, red: 1, col: r },
  });
}

/**
 * The gradients of loraForward from dout = dL/dy [M, N]:
 *   dB [N, r] (= or += with accumulateGrads) scaling * doutᵀ · xa
 *   dA [r, K] (= or +=)                       scaling * (dout · B)ᵀ · dropout(inp)
 *   dinp [M, K] +=                            mask ⊙ scaling * (dout · B) · A   (skipped when null)
 * dinp is added to, since the base layer's input gradient is already there. Pass the forward pass's
 * dropout so the same mask is replayed.
 */
export function loraBackward(
  gpu: GpuRuntime,
  dA: GpuTensor,
  dB: GpuTensor,
  dinp: GpuTensor | null,
  dout: GpuTensor,
  xa: GpuTensor,
  inp: GpuTensor,
  A: GpuTensor,
  B: GpuTensor,
  M: number,
  N: number,
  K: number,
  r: number,
  scaling: number,
  accumulateGrads: boolean,
  opts: LoraOptions = {},
): void {
  const k = 'loraBackward';
  const dropout = opts.dropout && opts.dropout.p > 0 ? opts.dropout : null;
  checkSizes(k, { M, N, K, r }, scaling, opts.dropout);
  checkTensors(k, [[dA, [r, K]], [dB, [N, r]], [dout, [M, N]], [xa, [M, r]], [inp, [M, K]], [A, [r, K]], [B, [N, r]]]);
  if (dinp) checkTensors(k, [[dinp, [M, K]]]);
  expectBindable(k, gpu, [dA, dB, ...(dinp ? [dinp] : [])], [dout, xa, inp, A, B]);
  const scratch = scratchFor(k, gpu, [M, N, K, r], [dA, dB, dinp, dout, xa, inp, A, B], opts.scratch);
  const dxa = scratch.dxa;

  product(gpu, scratch, {
    c: dB, M: N, N: r, L: M, alpha: scaling, accumulate: accumulateGrads,
    a: { t: dout, row: 1, red: N },
    b: { t: xa, red: r, col: 1 },
  });
  product(gpu, scratch, {
    c: dxa, M, N: r, L: N, alpha: scaling, accumulate: false,
    a: { t: dout, row: N, red: 1 },
    b: { t: B, red: r, col: 1 },
  });
  product(gpu, scratch, {
    c: dA, M: r, N: K, L: M, alpha: 1, accumulate: accumulateGrads,
    a: { t: dxa, row: 1, red: r },
    b: { t: inp, red: K, col: 1 },
    drop: dropout ? { target: 'b', dropout } : undefined,
  });
  if (dinp) {
    product(gpu, scratch, {
      c: dinp, M, N: K, L: r, alpha: 1, accumulate: true,
      a: { t: dxa, row: r, red: 1 },
      b: { t: A, red: K, col: 1 },
      drop: dropout ? { target: 'c', dropout } : undefined,
    });
  }
}
