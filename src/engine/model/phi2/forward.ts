import type { GpuRuntime } from '../../gpu/runtime';
import { viewTensor, type GpuTensor } from '../../gpu/tensor';
import { attentionForward, createAttentionSplitWorkspace, decodeSplits, type AttentionSplitWorkspace } from '../../kernels/attention';
import { embeddingForward } from '../../kernels/embedding';
import { geluForward } from '../../kernels/gelu';
import { kvCacheAppend } from '../../kernels/kv-cache';
import { layernormForward } from '../../kernels/layernorm';
import { matmulForward, matmulForwardSum } from '../../kernels/matmul';
import { inProjectionForward, inProjectionPacking } from '../../kernels/projections';
import { quantizeRows } from '../../kernels/quantize';
import { createRotaryTable, rotaryForward, type RotaryTable } from '../../kernels/rotary';
import { loraForward } from '../../kernels/lora';
import { computePathProblem, type ComputePath } from '../../../shared/compute';
import { FrozenLinears, type LinearInput } from './frozen-linear';
import type { LoraState } from './lora-state';
import { LINEAR_NAMES, type LinearName, type Phi2Params } from './params';
import { KvCache, Phi2Workspace, type KvCacheDType } from './workspace';

/**
 * Phi-2's forward pass on the GPU, exactly as transformers computes it:
 *   x = embed(ids)
 *   per block:  h = LN(x);  x = x + dense(attn(rotary(q(h)), rotary(k(h)), v(h))) + fc2(gelu_new(fc1(h)))
 *   logits = lm_head(final_LN(x))
 * A block is four dispatches (five when decode attention splits its keys): the LayerNorm; q, k, v and
 * fc1 as one matmul whose epilogue rotates q and k, appends k and v to the KV cache and applies gelu
 * (kernels/projections.ts); attention; dense(attn) + fc2(gelu) as one matmul that adds into the
 * residual stream. Blocks whose weights are not packed that way (weights/gpu-weights.ts), that carry a
 * LoRA adapter, or that run on the int8 compute path (Phi2ModelOptions.compute) run the same maths one
 * layer at a time. Keys and values go to the KV cache,
 * so a prompt is processed once and each new token attends to everything before it.
 */

export type LogitsWanted = 'all' | 'last' | 'none';

/** Blocks recorded per submit: a few submits per pass (each costs a little) overlap recording and running. */
const SUBMIT_EVERY_BLOCKS = 4;

export interface ForwardCall {
  /**
   * Token ids [batch * seq], batch-major: from the host, or a u32 tensor already on the GPU (a decode
   * step's input is the previous step's sampled tokens, which never leave the GPU).
   */
  ids: Uint32Array | GpuTensor;
  batch: number;
  seq: number;
  /** Valid tokens per sequence when right-padded (all seq when absent). Logits 'last' read position len-1. */
  lengths?: readonly number[];
  /**
   * Rows of left padding per sequence, constant over a generation (batched generation of prompts of
   * different lengths: each ends at the batch's last position). Sequence b's tokens start at cache
   * row leftPad[b] and take positions from 0 there, as they would alone; nothing attends to the
   * padding rows. Logits 'last' read position seq-1 of every sequence.
   */
  leftPad?: readonly number[];
  logits: LogitsWanted;
  /**
   * Hidden states to copy out, as transformers' output_hidden_states gives them: [0] the embeddings,
   * [l] the residual stream after block l-1 for l < layers, [layers] the final LayerNorm's output.
   * Each [batch*seq, hidden]; for tests and tools.
   */
  captureHidden?: GpuTensor[];
  /** A LoRA adapter applied unmerged: each adapted layer adds scaling * (x A^T) B^T. */
  adapter?: LoraState | null;
}

export interface Phi2ModelOptions {
  /**
   * 'int8': logits from an int8 copy of the F16 lm_head, quantised per row on the GPU when the model is
   * made (131 MB more GPU memory for Phi-2, the F16 head stays for training): a decode token reads
   * 131 MB less, and the logits move by what the README states (measured against the goldens in
   * test/gpu/engine/model/phi2/forward.test.ts). 'f16' (the default) reads the checkpoint's head: exact.
   */
  lmHead?: 'f16' | 'int8';
  /**
   * The blocks' linear layers: 'f32' (the default) multiplies f32 activations by the dequantised
   * weights, exactly; 'int8' runs them on the int8 compute path (SwitchBack, frozen-linear.ts): each
   * layer's input quantised per row to int8 (once for q, k, v and fc1, which share it) and multiplied
   * with the int8 weights by dot4I8Packed. Needs int8 weights. Its blocks run layer by layer (the
   * fused projection kernels are f32), and the logits move by what the README states (measured against
   * the f32 path on the goldens in the forward tests). LoRA's products and the lm_head (see lmHead)
   * are not affected.
   */
  compute?: ComputePath;
  /**
   * What the KV caches made for this model hold (callers make them with `new KvCache(..., model.kvCache)`):
   * 'f32' (the default) is exact; 'f16' halves the bytes each decode token reads from the cache
   * (Phi-2 at 512 context: 168 MB less) and moves the logits by what the README states (measured
   * against the goldens in test/gpu/engine/model/phi2/forward.test.ts). forward() takes a cache of either kind.
   */
  kvCache?: KvCacheDType;
}

/** A row chunk of the lm_head as the logits read it: the F16 table, or its int8 copy with row scales. */
interface HeadChunk {
  weight: GpuTensor;
  scales: GpuTensor | null;
  firstRow: number;
}

export class Phi2Model {
  readonly rotary: RotaryTable;
  /** The lm_head's row chunks as the logits read them (Phi2ModelOptions.lmHead). */
  private head: HeadChunk[];
  /** The blocks' linear layers on the compute path of the options; int8 scratch sized for the largest workspace seen. */
  private base: FrozenLinears;
  private current: Required<Phi2ModelOptions> = { lmHead: 'f16', compute: 'f32', kvCache: 'f32' };
  private split: AttentionSplitWorkspace;
  private logitsBuffer: GpuTensor | null = null;
  private lastRows: GpuTensor | null = null;
  private lengthsBuffer: GpuTensor | null = null;
  private leftPadBuffer: GpuTensor | null = null;
  private headScratch: GpuTensor | null = null;
  /** What leftPadBuffer holds. */
  private leftPadWritten: { buffer: GPUBuffer; values: number[] } | null = null;
  private loraXa: GpuTensor | null = null;
  /** Per block: whether its input projections run fused (packed weights, even head and MLP sizes). */
  private readonly fused: boolean[];

  constructor(
    readonly gpu: GpuRuntime,
    readonly params: Phi2Params,
    options: Phi2ModelOptions = {},
  ) {
    const d = params.dims;
    this.head = f16Head(params);
    this.base = new FrozenLinears(gpu, 'f32', params.weightMode, 1, Math.max(d.hidden, d.intermediate));
    this.configure(options);
    this.fused = params.blocks.map((b) => d.headDim % 2 === 0 && d.intermediate % 2 === 0 && inProjectionPacking(b) !== null);
    this.rotary = createRotaryTable(gpu, d.ropeTheta, d.rotaryDim, d.maxPositions);
    this.split = createAttentionSplitWorkspace(gpu, d.headDim, 8192);
  }

  get dims() {
    return this.params.dims;
  }

  /** The element type of the KV caches this model's callers make (Phi2ModelOptions.kvCache). */
  get kvCache(): KvCacheDType {
    return this.current.kvCache;
  }

  /** The options this model runs with now (every field filled in). */
  get options(): Readonly<Required<Phi2ModelOptions>> {
    return this.current;
  }

  /**
   * Switches the options of a made model (its parameters stay): the int8 head is made or freed, the
   * compute path's scratch is made at the next forward. Checks every option before changing any, so
   * a refused change leaves the model as it was. Not while a forward pass or a captured decode step
   * is in use: the caller holds the model (session/session.ts withModel).
   */
  configure(options: Phi2ModelOptions): void {
    const next: Required<Phi2ModelOptions> = { lmHead: options.lmHead ?? 'f16', compute: options.compute ?? 'f32', kvCache: options.kvCache ?? 'f32' };
    if (next.kvCache === 'f16' && this.params.dims.headDim % 2 !== 0) {
      throw new Error(`Phi2Model: an f16 KV cache needs an even head size (two halves a word), this model's is ${this.params.dims.headDim}; use f32`);
    }
    const problem = computePathProblem(next.compute, this.params.weightMode, this.gpu.ctx.hasInt8Dot);
    if (problem) throw new Error(`Phi2Model: ${problem}`);
    if (next.lmHead !== this.current.lmHead) {
      const head = next.lmHead === 'int8' ? quantizeHead(this.gpu, this.params) : f16Head(this.params);
      this.destroyHead();
      this.head = head;
    }
    this.current = next;
  }

  /** The blocks' linear layers for a workspace of up to `rows` tokens. */
  private linears(rows: number): FrozenLinears {
    const { base, current } = this;
    if (base.path === current.compute && (base.path === 'f32' || base.maxRows >= rows)) return base;
    base.destroy();
    const d = this.params.dims;
    this.base = new FrozenLinears(this.gpu, current.compute, this.params.weightMode, rows, Math.max(d.hidden, d.intermediate));
    return this.base;
  }

  /**
   * The key splits of decode attention in a step of one token per sequence for `batch` sequences with
   * kvLen positions in the cache: a replayed step keeps its count, so Generator re-captures where it changes.
   */
  decodeSplits(batch: number, kvLen: number): number {
    return decodeSplits(this.split, batch * this.dims.heads, kvLen);
  }

  /**
   * Runs the blocks over `call.ids` at positions cache.length.. and advances the cache. Returns the
   * logits asked for ([batch*seq, vocab], [batch, vocab] or none), valid until the next call.
   */
  forward(ws: Phi2Workspace, cache: KvCache, call: ForwardCall): GpuTensor | null {
    const { gpu, params } = this;
    const d = params.dims;
    const { batch: B, seq: T } = call;
    const M = B * T;
    const C = d.hidden;
    const pastLen = cache.length;
    const idCount = call.ids instanceof Uint32Array ? call.ids.length : call.ids.shape.reduce((x, y) => x * y, 1);
    if (idCount !== M) throw new Error(`forward: ${idCount} ids for batch ${B} x seq ${T}`);
    if (cache.batch !== B) throw new Error(`forward: the KV cache holds ${cache.batch} sequences, the call has ${B}`);
    if (pastLen + T > cache.maxSeq) throw new Error(`forward: ${pastLen + T} positions exceed the KV cache's ${cache.maxSeq}`);
    if (pastLen + T > d.maxPositions) throw new Error(`forward: position ${pastLen + T - 1} is past the model's ${d.maxPositions} positions`);
    const a = ws.at(M, B, T);

    if (call.ids instanceof Uint32Array) {
      gpu.write(a.ids, call.ids);
      embeddingForward(gpu, a.residual, a.ids, params.embedding, M, C, d.vocab, call.ids);
    } else {
      // Ids made on the GPU (sampled) are in range; the kernel clamps them regardless.
      embeddingForward(gpu, a.residual, viewTensor(call.ids, [M], 'input_ids'), params.embedding, M, C, d.vocab);
    }
    const capture = (i: number, t: GpuTensor) => {
      const target = call.captureHidden?.[i];
      if (target) gpu.encoder.copy(t, target, M * C * 4);
    };
    capture(0, a.residual);
    const validLengths = call.lengths ? this.uploadLengths(call.lengths, pastLen, T) : undefined;
    const leftPad = call.leftPad ? this.uploadLeftPad(call.leftPad, B, pastLen, T) : undefined;

    const shape = { batch: B, seq: T, heads: d.heads, headDim: d.headDim, pastLen };
    const keyPairs = cache.keyPairs;
    const base = this.linears(ws.maxTokens);
    for (let l = 0; l < d.layers; l++) {
      const p = params.blocks[l];
      layernormForward(gpu, a.normed, a.mean, a.rstd, a.residual, p.ln.weight, p.ln.bias, M, C, d.layerNormEps);
      const adapted = LINEAR_NAMES.some((name) => call.adapter?.at(l, name));
      if (this.fused[l] && !adapted && base.path === 'f32') {
        // q, k, v (rotary, KV append) and gelu(fc1) in one pass; dense(attn) + fc2(gelu) in another.
        inProjectionForward(gpu, a.q, cache.keys[l], cache.values[l], a.gelu, a.normed, p, this.rotary, { ...shape, intermediate: d.intermediate }, { leftPad });
        attentionForward(gpu, a.attn, a.lse, a.q, cache.keys[l], cache.values[l], shape, { validLengths, leftPad, splitWorkspace: this.split, keyPairs });
        matmulForwardSum(gpu, a.residual, { inp: a.attn, ...p.dense, K: C }, { inp: a.gelu, ...p.fc2, K: d.intermediate }, M, C, { accumulate: true });
      } else {
        const linear = (out: GpuTensor, input: LinearInput, name: LinearName, N: number, accumulate = false) => {
          base.forward(out, input, p[name], M, N, accumulate);
          const lora = call.adapter?.at(l, name);
          if (lora) {
            const r = call.adapter!.settings.r;
            const xa = viewTensor(this.ensure('loraXa', [M, r]), [M, r], 'lora_xa');
            loraForward(gpu, out, xa, input.x, lora.A, lora.B, M, N, input.K, r, call.adapter!.scaling);
          }
        };
        // q, k, v and fc1 read one input: on the int8 path it is quantised once, before anything else is.
        const normed = base.input(a.normed, M, C);
        linear(a.q, normed, 'q', C);
        linear(a.k, normed, 'k', C);
        linear(a.v, normed, 'v', C);
        linear(a.fc1, normed, 'fc1', d.intermediate);
        geluForward(gpu, a.gelu, a.fc1, M * d.intermediate);
        rotaryForward(gpu, a.q, this.rotary, shape, { leftPad });
        rotaryForward(gpu, a.k, this.rotary, shape, { leftPad });
        kvCacheAppend(gpu, cache.keys[l], cache.values[l], a.k, a.v, { ...shape, pastLen, keyPairs });
        attentionForward(gpu, a.attn, a.lse, a.q, cache.keys[l], cache.values[l], shape, {
          validLengths,
          leftPad,
          splitWorkspace: this.split,
          keyPairs,
        });
        linear(a.residual, base.input(a.attn, M, C), 'dense', C, true);
        linear(a.residual, base.input(a.gelu, M, d.intermediate), 'fc2', C, true);
      }
      if (l < d.layers - 1) capture(l + 1, a.residual);
      // Every few blocks, hand the GPU what is recorded, so it runs while the CPU records the rest.
      if (l % SUBMIT_EVERY_BLOCKS === SUBMIT_EVERY_BLOCKS - 1) gpu.encoder.submit();
    }
    cache.length = pastLen + T;

    if (call.logits === 'none' && !call.captureHidden) return null;
    layernormForward(gpu, a.normed, a.mean, a.rstd, a.residual, params.finalLn.weight, params.finalLn.bias, M, C, d.layerNormEps);
    capture(d.layers, a.normed);
    if (call.logits === 'none') return null;
    if (call.logits === 'all') return this.lmHead(a.normed, M);
    // One token per sequence: its rows are the last positions already.
    if (T === 1 && !call.lengths) return this.lmHead(a.normed, B);
    // Gather each sequence's last valid position, then project only those rows.
    const rows = this.ensure('lastRows', [B, C]);
    for (let b = 0; b < B; b++) {
      const last = (call.lengths ? call.lengths[b] - pastLen : T) - 1;
      if (last < 0) throw new Error(`forward: sequence ${b} has no valid position in this call`);
      gpu.encoder.copy(viewTensor(a.normed, [C], 'row', (b * T + last) * C * 4), viewTensor(rows, [C], 'row', b * C * 4), C * 4);
    }
    return this.lmHead(rows, B);
  }

  /** logits [rows, vocab] = h · lm_head^T + bias, over the head's row chunks (F16, or their int8 copy). */
  private lmHead(h: GpuTensor, rows: number): GpuTensor {
    const { gpu, params, head } = this;
    const V = params.dims.vocab;
    const C = params.dims.hidden;
    const logits = viewTensor(this.ensure('logitsBuffer', [rows, V]), [rows, V], 'logits');
    if (head.length === 1) {
      matmulForward(gpu, logits, h, head[0].weight, head[0].scales, params.lmHeadBias, rows, V, C);
      return logits;
    }
    // A head split into row chunks (tables larger than one binding): each chunk's logits land in
    // scratch, then move to their columns of the full rows.
    for (const { weight, scales, firstRow } of head) {
      const n = weight.shape[0];
      const scratch = viewTensor(this.ensure('headScratch', [rows, n]), [rows, n], 'logits_chunk');
      const bias = viewTensor(params.lmHeadBias, [n], 'lm_head.bias_chunk', firstRow * 4);
      matmulForward(gpu, scratch, h, weight, scales, bias, rows, n, C);
      for (let r = 0; r < rows; r++) {
        gpu.encoder.copy(viewTensor(scratch, [n], 'row', r * n * 4), viewTensor(logits, [n], 'row', (r * V + firstRow) * 4), n * 4);
      }
    }
    return logits;
  }

  private uploadLengths(lengths: readonly number[], pastLen: number, seq: number): GpuTensor {
    for (const len of lengths) {
      if (!Number.isInteger(len) || len < 1 || len > pastLen + seq) throw new Error(`forward: valid length ${len} outside 1..${pastLen + seq}`);
    }
    const t = viewTensor(this.ensure('lengthsBuffer', [lengths.length], 'u32'), [lengths.length], 'valid_lengths');
    this.gpu.write(t, new Uint32Array(lengths));
    return t;
  }

  /** The left padding as the kernels read it; none when no sequence is padded (the same kernels then run as without). */
  private uploadLeftPad(leftPad: readonly number[], batch: number, pastLen: number, seq: number): GpuTensor | undefined {
    if (leftPad.length !== batch) throw new Error(`forward: ${leftPad.length} left paddings for a batch of ${batch}`);
    for (const [b, pad] of leftPad.entries()) {
      // Every sequence keeps at least its last position: the one whose logits 'last' reads.
      if (!Number.isInteger(pad) || pad < 0 || pad >= pastLen + seq) {
        throw new Error(`forward: left padding ${pad} of sequence ${b} outside 0..${pastLen + seq - 1}`);
      }
    }
    if (leftPad.every((pad) => pad === 0)) return undefined;
    const t = viewTensor(this.ensure('leftPadBuffer', [batch], 'u32'), [batch], 'left_pad');
    // The same padding every step of a generation: written once (so a decode step can be captured).
    const same = this.leftPadWritten?.buffer === t.buffer && this.leftPadWritten.values.length === batch && leftPad.every((pad, b) => pad === this.leftPadWritten!.values[b]);
    if (!same) {
      this.gpu.write(t, new Uint32Array(leftPad));
      this.leftPadWritten = { buffer: t.buffer, values: [...leftPad] };
    }
    return t;
  }

  /** A scratch buffer kept across calls, grown when a call needs more. */
  private ensure(key: 'logitsBuffer' | 'lastRows' | 'lengthsBuffer' | 'leftPadBuffer' | 'headScratch' | 'loraXa', shape: number[], dtype: 'f32' | 'u32' = 'f32'): GpuTensor {
    const bytes = shape.reduce((x, y) => x * y, 1) * 4;
    const current = this[key];
    if (current && current.buffer.size >= bytes) return viewTensor(current, shape);
    current?.buffer.destroy();
    const t = this.gpu.tensor(key, shape, dtype);
    this[key] = t;
    return t;
  }

  destroy(): void {
    this.rotary.tensor.buffer.destroy();
    this.split.partial.buffer.destroy();
    for (const t of [this.logitsBuffer, this.lastRows, this.lengthsBuffer, this.leftPadBuffer, this.headScratch, this.loraXa]) t?.buffer.destroy();
    this.destroyHead();
    this.base.destroy();
  }

  private destroyHead(): void {
    // The int8 head is the model's own; the F16 one belongs to the parameters.
    for (const c of this.head) {
      if (!c.scales) continue;
      c.weight.buffer.destroy();
      c.scales.buffer.destroy();
    }
  }
}

/** The lm_head's row chunks as the parameters hold them (F16). */
function f16Head(params: Phi2Params): HeadChunk[] {
  return params.lmHead.map(({ table, firstRow }) => ({ weight: table, scales: null, firstRow }));
}

/** The lm_head's row chunks quantised to int8 per row on the GPU (Phi2ModelOptions.lmHead 'int8'). */
function quantizeHead(gpu: GpuRuntime, params: Phi2Params): HeadChunk[] {
  const C = params.dims.hidden;
  if (C % 4 !== 0) throw new Error(`Phi2Model: an int8 lm_head needs a hidden size divisible by 4 (four int8 a word), this model's is ${C}; use the F16 head`);
  if (!gpu.ctx.hasInt8Dot) {
    throw new Error("Phi2Model: an int8 lm_head is made with WGSL's packed_4x8_integer_dot_product, which this browser does not offer (Chrome and Edge have it since version 123); use the F16 head");
  }
  const chunks = params.lmHead.map(({ table, firstRow }) => {
    const rows = table.shape[0];
    const chunk = { weight: gpu.tensor(`lm_head.int8[${firstRow}]`, [rows, C], 'i8'), scales: gpu.tensor(`lm_head.scales[${firstRow}]`, [rows]), firstRow };
    quantizeRows(gpu, chunk.weight, chunk.scales, table, null, rows, C);
    return chunk;
  });
  gpu.encoder.submit();
  return chunks;
}

export { KvCache, Phi2Workspace, type KvCacheDType };
