import combineCode from '../../../shaders/attention.combine.wgsl?raw';
import decodeCode from '../../../shaders/attention.decode.wgsl?raw';
import dkvCode from '../../../shaders/attention.bwd_dkv.wgsl?raw';
import dqCode from '../../../shaders/attention.bwd_dq.wgsl?raw';
import statsCode from '../../../shaders/attention.bwd_stats.wgsl?raw';
import fwdCode from '../../../shaders/attention.fwd.wgsl?raw';
import backwardLib from '../../../shaders/lib/attention_backward.wgsl?raw';
import onlineLib from '../../../shaders/lib/attention_online.wgsl?raw';
import rowsLib from '../../../shaders/lib/attention_rows.wgsl?raw';
import tileLib from '../../../shaders/lib/attention_tile.wgsl?raw';
import kvOrderLib from '../../../shaders/lib/kv_order.wgsl?raw';
import kvReadF16 from '../../../shaders/lib/kv_read_f16.wgsl?raw';
import kvReadF16Native from '../../../shaders/lib/kv_read_f16_native.wgsl?raw';
import kvReadF32 from '../../../shaders/lib/kv_read_f32.wgsl?raw';
import kvReadF32Vec4 from '../../../shaders/lib/kv_read_f32_vec4.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import type { ShaderSource } from '../gpu/pipelines';
import { grid, type GpuRuntime } from '../gpu/runtime';
import { tensorBytes, type GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';

/**
 * Causal multi-head flash attention, forward and backward, with a KV cache, right padding and (in the
 * forward) left padding.
 *
 * Layouts: q, out, dq, dout [batch*seq, heads*headDim] straight from the projections (head h in
 * columns h*headDim ..); k and v either fresh [batch*seq, heads*headDim] (training, prefill without
 * a cache: pastLen 0) or one layer's KV cache [batch, maxLen, heads*headDim] holding positions
 * 0..pastLen+seq-1; lse [batch, heads, seq], the natural log-sum-exp of each query's scaled scores.
 * Query t sits at position pastLen + t and attends keys 0..pastLen+t; scores are scaled by 1/sqrt(headDim).
 * Left padding (batched generation of prompts of different lengths) moves a sequence's start from
 * row 0 to row leftPad[b]: its keys before that are never read, its queries before it give zeros.
 * The forward also reads an f16 KV cache (k and v of dtype f16, see KvCache): halves unpacked to f32
 * as they are loaded, with shader-f16 where the device has it, else with unpack2x16float; its keys
 * may be stored in rotary-pair order (options.keyPairs, shaders/lib/kv_order.wgsl).
 *
 * Kernels: prefill and training use a tiled kernel (queries in blocks, keys streamed through
 * workgroup memory, online softmax); decode (a few queries) uses one workgroup per query with the
 * key range optionally split over workgroups and merged (flash-decoding). The backward recomputes
 * the probabilities from q, k and lse: per-row (lse, delta) stats, then dq over key tiles, then dk
 * and dv over query tiles, with no float atomics and no seq x seq matrix.
 */

export interface AttentionShape {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
  /** Positions already in the KV cache (forward only; 0 or absent in training). */
  pastLen?: number;
}

export interface AttentionSplitWorkspace {
  /**
   * [capacity * (headDim + 2)]: first the unnormalised partial outputs, a headDim row per (split,
   * sequence, head, query), then the partial (max, sum) of each. One buffer, so that the decode
   * kernel binds no more than the 8 storage buffers every device offers.
   */
  readonly partial: GpuTensor;
  readonly headDim: number;
  readonly capacity: number;
}

export interface AttentionForwardOptions {
  /** [batch] u32 or i32: valid positions per sequence (right padding). Keys at or past it are
   * ignored and queries there produce zeros (and lse 0). */
  validLengths?: GpuTensor;
  /** [batch] u32 or i32: rows of left padding per sequence, below pastLen + seq. Keys at cache rows
   * before it are never read and queries there produce zeros (and lse 0). */
  leftPad?: GpuTensor;
  /** Lets the decode kernel split long key ranges over several workgroups. Without it, each
   * query is one workgroup: correct, but few workgroups when batch * heads * seq is small. */
  splitWorkspace?: AttentionSplitWorkspace;
  /** Which kernel; chosen from seq when absent (tests use it to check both on one shape). */
  path?: 'tiled' | 'decode';
  /** Key-range splits for the decode kernel; chosen from the shape when absent. */
  splits?: number;
  /**
   * Keys stored in rotary-pair order with this many pairs per head (an f16 KV cache written by the
   * fused projection or by kvCacheAppend with the same keyPairs; shaders/lib/kv_order.wgsl). 0, the
   * default: natural order.
   */
  keyPairs?: number;
  /** Read an f16 cache with shader-f16 (the default where the device has it) or with unpack2x16float. */
  nativeF16?: boolean;
}

export interface AttentionBackwardOptions {
  validLengths?: GpuTensor;
}

/** Up to this many queries per sequence, one workgroup per query beats blocks of 16 mostly empty rows. */
const DECODE_MAX_SEQ = 4;
/** Decode workgroups to aim for when splitting the keys: several per unit of a large GPU (132 on an H100). */
const TARGET_WORKGROUPS = 512;
/** Fewer keys than this per split leave threads of the decode workgroup (64) without a key. */
const MIN_KEYS_PER_SPLIT = 64;
/** Register arrays hold a head row per thread; beyond this they would spill wholesale. */
const MAX_HEAD_DIM = 256;

const VEC4_BYTES = 16;

/** past_len and kv_len in both forward kernels' uniforms: what a replayed decode step shifts (gpu/encoder.ts). */
const POSITION_WORDS = [3, 4];

interface TileConfig {
  /** Rows (queries, or keys in dk/dv) a workgroup owns. */
  rows: number;
  /** Threads per owned row, splitting the other side's rows between them. */
  lanes: number;
  /** Rows of the other side staged in workgroup memory at once. */
  tile: number;
}

const stride = (d4: number) => d4 | 1; // as STRIDE in the shaders

const WORKGROUP_BYTES = {
  fwd: (c: TileConfig, d4: number) => 2 * c.tile * stride(d4) * VEC4_BYTES + ((c.rows * c.lanes) / 2) * 8,
  dq: (c: TileConfig, d4: number) => (2 * c.tile + c.rows) * stride(d4) * VEC4_BYTES,
  dkv: (c: TileConfig, d4: number) => (2 * c.rows + 2 * c.tile) * stride(d4) * VEC4_BYTES + c.tile * 8,
};

/**
 * The largest tiles that fit the device's workgroup memory: 16 rows x 4 lanes x 32-row tiles fit
 * head_dim 80 in 32 KiB (SwiftShader, most GPUs); smaller limits or larger heads halve the tile,
 * then the rows. The lane merge reuses the tile memory, which holds it while rows*lanes <= 4*tile.
 */
function fitTiles(kind: keyof typeof WORKGROUP_BYTES, d4: number, limit: number): TileConfig {
  const c: TileConfig = { rows: 16, lanes: 4, tile: kind === 'dkv' ? 16 : 32 };
  const bytes = WORKGROUP_BYTES[kind];
  while (bytes(c, d4) > limit) {
    if (c.tile > 1 && c.rows * c.lanes <= 2 * c.tile) c.tile /= 2;
    else if (c.rows > 1) c.rows /= 2;
    else throw new Error(`attention: head_dim ${4 * d4} does not fit ${limit} bytes of workgroup memory`);
  }
  return c;
}

/** Threads of the decode kernel: 64, fewer only when the merge area would not fit. */
function fitDecodeThreads(d4: number, limit: number): number {
  let wg = 64;
  while (wg > 2 && (wg / 2) * (stride(d4) * VEC4_BYTES + 8) > limit) wg /= 2;
  return wg;
}

/** The shader with the head size prepended: q, o and gradient rows live in registers as D4 vec4s. */
function shader(name: string, code: string, d4: number): ShaderSource {
  return { name: `${name}[d4=${d4}]`, code: `const D4: u32 = ${d4}u;\n${code}` };
}

/** How a forward kernel reads k and v: f32 as vec4s where head rows are whole 16-byte vectors, else as scalars; f16 packed. */
type KvReads = 'f32' | 'f32-vec4' | 'f16' | 'f16-native';

const KV_READS: Record<KvReads, string> = { f32: kvReadF32, 'f32-vec4': kvReadF32Vec4, f16: kvReadF16, 'f16-native': kvReadF16Native };

function kvReads(k: GpuTensor, v: GpuTensor, headDim: number, nativeF16: boolean): KvReads {
  if (k.dtype === 'f16') return nativeF16 ? 'f16-native' : 'f16';
  return headDim % 4 === 0 && k.byteOffset % 16 === 0 && v.byteOffset % 16 === 0 ? 'f32-vec4' : 'f32';
}

/** What each attention kernel shares with the others (shaders/lib/), after the key order, its KV reads and the head rows. */
const SHARED = {
  'attention.fwd': onlineLib + tileLib,
  'attention.decode': onlineLib,
  'attention.bwd_dq': tileLib + backwardLib,
  'attention.bwd_dkv': tileLib + backwardLib,
};

/** An attention kernel with the shared parts it uses before it (WGSL has no includes). */
function attentionShader(name: keyof typeof SHARED, code: string, d4: number, reads: KvReads): ShaderSource {
  const s = shader(name, kvOrderLib + KV_READS[reads] + rowsLib + SHARED[name] + code, d4);
  // `enable` must open the module, before the head size.
  return { name: `${s.name}[${reads}]`, code: (reads === 'f16-native' ? 'enable f16;\n' : '') + s.code };
}

const placeholders = new WeakMap<GpuRuntime, { lengths: GpuTensor; leftPad: GpuTensor; partial: GpuTensor }>();

/** Tiny stand-ins for optional bindings the shader skips (a uniform flag says so). */
function placeholder(gpu: GpuRuntime) {
  let p = placeholders.get(gpu);
  if (!p) {
    p = {
      lengths: gpu.tensor('attention.no_lengths', [4], 'u32'),
      leftPad: gpu.tensor('attention.no_left_pad', [4], 'u32'),
      partial: gpu.tensor('attention.no_partial', [4]),
    };
    placeholders.set(gpu, p);
  }
  return p;
}

/** Scratch for splitting decode over the keys; capacity counts (split, sequence, head, query) rows. */
export function createAttentionSplitWorkspace(gpu: GpuRuntime, headDim: number, capacity = 4096): AttentionSplitWorkspace {
  if (!Number.isInteger(headDim) || headDim < 1) throw new Error(`attention: headDim must be a positive integer, got ${headDim}`);
  if (!Number.isInteger(capacity) || capacity < 2) throw new Error(`attention: split workspace capacity must be an integer >= 2, got ${capacity}`);
  return { partial: gpu.tensor('attention.partial', [capacity * (headDim + 2)]), headDim, capacity };
}

interface Dims {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
  pastLen: number;
  width: number;
  d4: number;
  scale: number;
}

function checkDims(kernel: string, shape: AttentionShape): Dims {
  const { batch, seq, heads, headDim } = shape;
  const pastLen = shape.pastLen ?? 0;
  for (const [name, value] of Object.entries({ batch, seq, heads, headDim })) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`${kernel}: ${name} must be a positive integer, got ${value}`);
  }
  if (!Number.isInteger(pastLen) || pastLen < 0) throw new Error(`${kernel}: pastLen must be a non-negative integer, got ${pastLen}`);
  if (headDim > MAX_HEAD_DIM) throw new Error(`${kernel}: headDim ${headDim} exceeds the supported ${MAX_HEAD_DIM}`);
  return { batch, seq, heads, headDim, pastLen, width: heads * headDim, d4: Math.ceil(headDim / 4), scale: 1 / Math.sqrt(headDim) };
}

function checkLengths(kernel: string, lengths: GpuTensor | undefined, batch: number): void {
  if (!lengths) return;
  if (lengths.dtype !== 'u32' && lengths.dtype !== 'i32') throw new Error(`${kernel}: ${lengths.name} is ${lengths.dtype}, expected u32 or i32`);
  expectShape(kernel, lengths, [batch]);
}

/**
 * A written tensor may share memory with no other binding of the same dispatch (WebGPU forbids it);
 * caught here with the names, rather than as a validation error at submit.
 */
function expectNoOverlap(kernel: string, written: readonly GpuTensor[], read: readonly GpuTensor[]): void {
  const end = (t: GpuTensor) => t.byteOffset + tensorBytes(t.shape, t.dtype);
  const overlap = (a: GpuTensor, b: GpuTensor) => a.buffer === b.buffer && a.byteOffset < end(b) && b.byteOffset < end(a);
  written.forEach((w, i) => {
    for (const o of [...written.slice(i + 1), ...read]) {
      if (overlap(w, o)) throw new Error(`${kernel}: ${w.name} and ${o.name} share memory; ${w.name} is written`);
    }
  });
}

/** Where keys and values come from: rows per sequence, and how many are valid. */
function kvLayout(kernel: string, k: GpuTensor, v: GpuTensor, d: Dims): { kvRows: number; kvLen: number } {
  const kvLen = d.pastLen + d.seq;
  if (k.shape.length === 2) {
    if (d.pastLen !== 0) {
      throw new Error(`${kernel}: pastLen ${d.pastLen} needs k and v from the KV cache [batch, maxLen, ${d.width}], got ${k.name} [${k.shape}]`);
    }
    expectShape(kernel, k, [d.batch * d.seq, d.width]);
    expectShape(kernel, v, [d.batch * d.seq, d.width]);
    return { kvRows: d.seq, kvLen };
  }
  if (k.shape.length !== 3) throw new Error(`${kernel}: ${k.name} has shape [${k.shape}], expected [${d.batch * d.seq}, ${d.width}] or a cache [${d.batch}, maxLen, ${d.width}]`);
  const maxLen = k.shape[1];
  expectShape(kernel, k, [d.batch, maxLen, d.width]);
  expectShape(kernel, v, [d.batch, maxLen, d.width]);
  if (kvLen > maxLen) throw new Error(`${kernel}: positions up to ${kvLen - 1} do not fit a cache of ${maxLen} positions`);
  return { kvRows: maxLen, kvLen };
}

/**
 * out and lse of causal attention over q and k/v (fresh projections or a KV cache, see above).
 * Records one dispatch (two when the decode kernel splits its keys).
 */
export function attentionForward(
  gpu: GpuRuntime,
  out: GpuTensor,
  lse: GpuTensor,
  q: GpuTensor,
  k: GpuTensor,
  v: GpuTensor,
  shape: AttentionShape,
  options: AttentionForwardOptions = {},
): void {
  const kernel = 'attentionForward';
  const d = checkDims(kernel, shape);
  for (const t of [out, lse, q]) expectDType(kernel, t, 'f32');
  if (k.dtype !== 'f32' && k.dtype !== 'f16') throw new Error(`${kernel}: ${k.name} is ${k.dtype}, expected f32 or f16`);
  expectDType(kernel, v, k.dtype);
  const keyPairs = options.keyPairs ?? 0;
  if (!Number.isInteger(keyPairs) || keyPairs < 0 || 2 * keyPairs > d.headDim) {
    throw new Error(`${kernel}: keyPairs must be an integer from 0 to headDim / 2 (${d.headDim / 2}), got ${keyPairs}`);
  }
  if (k.dtype === 'f16') {
    if (d.headDim % 2 !== 0) throw new Error(`${kernel}: an f16 KV cache needs an even headDim (two halves a word), got ${d.headDim}`);
    if (k.byteOffset % 4 !== 0 || v.byteOffset % 4 !== 0) throw new Error(`${kernel}: f16 ${k.name} and ${v.name} must start on a 4-byte word`);
  }
  const nativeF16 = options.nativeF16 ?? gpu.ctx.hasF16;
  if (nativeF16 && !gpu.ctx.hasF16) throw new Error(`${kernel}: nativeF16 needs the shader-f16 feature, which this device lacks`);
  const reads = kvReads(k, v, d.headDim, nativeF16);
  expectShape(kernel, q, [d.batch * d.seq, d.width]);
  expectShape(kernel, out, [d.batch * d.seq, d.width]);
  expectShape(kernel, lse, [d.batch, d.heads, d.seq]);
  const { kvRows, kvLen } = kvLayout(kernel, k, v, d);
  checkLengths(kernel, options.validLengths, d.batch);
  checkLengths(kernel, options.leftPad, d.batch);
  const lengths = options.validLengths ?? placeholder(gpu).lengths;
  const leftPad = options.leftPad ?? placeholder(gpu).leftPad;
  expectNoOverlap(kernel, [out, lse], [q, k, v, lengths, leftPad]);
  const useLengths = options.validLengths ? 1 : 0;
  const useLeftPad = options.leftPad ? 1 : 0;
  const limit = gpu.device.limits.maxComputeWorkgroupStorageSize;
  const path = options.path ?? (d.seq <= DECODE_MAX_SEQ ? 'decode' : 'tiled');

  // lib/attention_online.wgsl's Params, one block for both kernels; splits, query_rows and
  // stats_offset are the decode kernel's.
  const uniforms = (splits: number, queryRows: number, statsOffset: number) =>
    packUniforms([
      ['u32', d.seq],
      ['u32', d.heads],
      ['u32', d.headDim],
      ['u32', d.pastLen],
      ['u32', kvLen],
      ['u32', kvRows],
      ['u32', useLengths],
      ['f32', d.scale],
      ['u32', useLeftPad],
      ['u32', keyPairs],
      ['u32', splits],
      ['u32', queryRows],
      ['u32', statsOffset],
    ]);

  if (path === 'tiled') {
    const c = fitTiles('fwd', d.d4, limit);
    gpu.encoder.dispatch(
      gpu.pipelines.get(attentionShader('attention.fwd', fwdCode, d.d4, reads), { ROWS: c.rows, LANES: c.lanes, BK: c.tile }),
      uniforms(1, 0, 0),
      [out, lse, q, k, v, lengths, leftPad],
      [Math.ceil(d.seq / c.rows), d.batch * d.heads],
      undefined,
      POSITION_WORDS,
    );
    return;
  }

  const queryRows = d.batch * d.heads * d.seq;
  const workspace = options.splitWorkspace;
  if (workspace) {
    if (workspace.headDim !== d.headDim) throw new Error(`${kernel}: split workspace is for headDim ${workspace.headDim}, not ${d.headDim}`);
    expectNoOverlap(kernel, [out, lse, workspace.partial], [q, k, v, lengths, leftPad]);
  }
  const splits = chooseSplits(kernel, options.splits, workspace, queryRows, kvLen);
  const wg = fitDecodeThreads(d.d4, limit);
  const partial = splits > 1 ? workspace!.partial : placeholder(gpu).partial;
  // The (m, l) pairs follow the outputs of the rows this call uses.
  const statsOffset = splits > 1 ? splits * queryRows * d.headDim : 0;
  gpu.encoder.dispatch(
    gpu.pipelines.get(attentionShader('attention.decode', decodeCode, d.d4, reads), { WG: wg }),
    uniforms(splits, queryRows, statsOffset),
    [out, lse, partial, q, k, v, lengths, leftPad],
    [splits, d.batch * d.heads, d.seq],
    undefined,
    POSITION_WORDS,
  );
  if (splits === 1) return;
  const [gx, gy] = grid(queryRows);
  gpu.encoder.dispatch(
    gpu.pipelines.get({ name: 'attention.combine', code: combineCode }, { WG: 64 }),
    packUniforms([
      ['u32', queryRows],
      ['u32', d.seq],
      ['u32', d.heads],
      ['u32', d.headDim],
      ['u32', splits],
      ['u32', gx],
      ['u32', statsOffset],
    ]),
    [out, lse, workspace!.partial],
    [gx, gy],
  );
}

/**
 * The key splits attentionForward's decode kernel takes by itself with this workspace, for `queryRows`
 * (batch x heads x new tokens) over kvLen keys. A captured decode step keeps the count it was recorded
 * with as the cache grows, so a caller that replays one re-captures where this changes
 * (model/phi2/generate.ts): a generation from a short prompt then still fills the GPU at long contexts.
 */
export function decodeSplits(workspace: AttentionSplitWorkspace, queryRows: number, kvLen: number): number {
  return chooseSplits('decodeSplits', undefined, workspace, queryRows, kvLen);
}

/** Splits of the key range: enough workgroups to fill the GPU, each with a worthwhile share of keys. */
function chooseSplits(
  kernel: string,
  requested: number | undefined,
  workspace: AttentionSplitWorkspace | undefined,
  queryRows: number,
  kvLen: number,
): number {
  if (requested !== undefined) {
    if (!Number.isInteger(requested) || requested < 1) throw new Error(`${kernel}: splits must be a positive integer, got ${requested}`);
    if (requested > 1 && !workspace) throw new Error(`${kernel}: ${requested} splits need a split workspace`);
    if (requested > kvLen) throw new Error(`${kernel}: ${requested} splits exceed the ${kvLen} keys`);
    if (requested * queryRows > (workspace?.capacity ?? 1)) {
      throw new Error(`${kernel}: ${requested} splits x ${queryRows} query rows exceed the split workspace's ${workspace?.capacity} rows`);
    }
    return Math.ceil(kvLen / Math.ceil(kvLen / requested)); // no split left empty
  }
  if (!workspace) return 1;
  const wanted = Math.ceil(TARGET_WORKGROUPS / queryRows);
  const worthwhile = Math.floor(kvLen / MIN_KEYS_PER_SPLIT);
  const room = Math.floor(workspace.capacity / queryRows);
  const splits = Math.max(1, Math.min(wanted, worthwhile, room));
  return Math.ceil(kvLen / Math.ceil(kvLen / splits));
}

/**
 * dq, dk and dv of attentionForward in training (fresh k and v, pastLen 0), recomputing the
 * probabilities from q, k and the saved lse; `out` is the forward's output. `stats` [batch, heads,
 * seq, 2] is scratch for the per-query (lse, rowsum(dout * out)). Records three dispatches.
 * Padded queries and keys (validLengths) get zero gradients.
 */
export function attentionBackward(
  gpu: GpuRuntime,
  dq: GpuTensor,
  dk: GpuTensor,
  dv: GpuTensor,
  stats: GpuTensor,
  dout: GpuTensor,
  q: GpuTensor,
  k: GpuTensor,
  v: GpuTensor,
  out: GpuTensor,
  lse: GpuTensor,
  shape: AttentionShape,
  options: AttentionBackwardOptions = {},
): void {
  const kernel = 'attentionBackward';
  const d = checkDims(kernel, shape);
  if (d.pastLen !== 0) throw new Error(`${kernel}: training attention has no KV cache; pastLen must be 0, got ${d.pastLen}`);
  for (const t of [dq, dk, dv, stats, dout, q, k, v, out, lse]) expectDType(kernel, t, 'f32');
  for (const t of [dq, dk, dv, dout, q, k, v, out]) expectShape(kernel, t, [d.batch * d.seq, d.width]);
  expectShape(kernel, lse, [d.batch, d.heads, d.seq]);
  expectShape(kernel, stats, [d.batch, d.heads, d.seq, 2]);
  checkLengths(kernel, options.validLengths, d.batch);
  const lengths = options.validLengths ?? placeholder(gpu).lengths;
  expectNoOverlap(kernel, [dq, dk, dv, stats], [dout, q, k, v, out, lse, lengths]);
  const useLengths = options.validLengths ? 1 : 0;
  const limit = gpu.device.limits.maxComputeWorkgroupStorageSize;

  const statRows = d.batch * d.seq * d.heads;
  const [sx, sy] = grid(Math.ceil(statRows / 64));
  gpu.encoder.dispatch(
    gpu.pipelines.get({ name: 'attention.bwd_stats', code: statsCode }, { WG: 64 }),
    packUniforms([
      ['u32', statRows],
      ['u32', d.seq],
      ['u32', d.heads],
      ['u32', d.headDim],
      ['u32', useLengths],
      ['u32', sx],
    ]),
    [stats, dout, out, lse, lengths],
    [sx, sy],
  );

  const sizes = packUniforms([
    ['u32', d.seq],
    ['u32', d.heads],
    ['u32', d.headDim],
    ['u32', useLengths],
    ['f32', d.scale],
  ]);
  const reads = kvReads(k, v, d.headDim, false);
  const cq = fitTiles('dq', d.d4, limit);
  gpu.encoder.dispatch(
    gpu.pipelines.get(attentionShader('attention.bwd_dq', dqCode, d.d4, reads), { ROWS: cq.rows, LANES: cq.lanes, BK: cq.tile }),
    sizes,
    [dq, dout, q, k, v, stats, lengths],
    [Math.ceil(d.seq / cq.rows), d.batch * d.heads],
  );
  const ckv = fitTiles('dkv', d.d4, limit);
  gpu.encoder.dispatch(
    gpu.pipelines.get(attentionShader('attention.bwd_dkv', dkvCode, d.d4, reads), { KROWS: ckv.rows, LANES: ckv.lanes, BQ: ckv.tile }),
    sizes,
    [dk, dout, q, k, v, stats, lengths, dv], // the inputs at dq's bindings (lib/attention_backward.wgsl)
    [Math.ceil(d.seq / ckv.rows), d.batch * d.heads],
  );
}
