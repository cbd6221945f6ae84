import type { GpuRuntime } from '../../gpu/runtime';
import { DTYPE_BYTES, viewTensor, type GpuTensor } from '../../gpu/tensor';
import type { KvCachePrecision } from '../../../shared/compute';
import type { ModelDims } from '../../weights/config';

/**
 * Activation buffers for Phi-2's forward pass, allocated once for the largest call (maxTokens =
 * batch x sequence) and viewed at each call's size. One block's buffers are reused by every block:
 * inference keeps nothing per layer but the KV cache.
 */
export class Phi2Workspace {
  readonly residual: GpuTensor;
  readonly normed: GpuTensor;
  readonly mean: GpuTensor;
  readonly rstd: GpuTensor;
  readonly q: GpuTensor;
  readonly k: GpuTensor;
  readonly v: GpuTensor;
  readonly attn: GpuTensor;
  readonly lse: GpuTensor;
  readonly fc1: GpuTensor;
  readonly gelu: GpuTensor;
  readonly ids: GpuTensor;
  /** The buffer that holds q and gelu. */
  private readonly projections: GpuTensor;
  private all: GpuTensor[];

  constructor(
    gpu: GpuRuntime,
    readonly dims: ModelDims,
    readonly maxTokens: number,
  ) {
    const { hidden: C, intermediate: I, heads: H } = dims;
    const M = maxTokens;
    const t = (name: string, shape: number[], dtype: 'f32' | 'u32' = 'f32') => gpu.tensor(name, shape, dtype);
    this.residual = t('residual', [M, C]);
    this.normed = t('ln_out', [M, C]);
    this.mean = t('ln_mean', [M]);
    this.rstd = t('ln_rstd', [M]);
    // q and gelu share one buffer: the fused input projection writes both through one binding.
    const align = gpu.device.limits.minStorageBufferOffsetAlignment / 4;
    const geluAt = Math.ceil((M * C) / align) * align;
    this.projections = t('q_and_gelu', [geluAt + M * I]);
    this.q = viewTensor(this.projections, [M, C], 'q');
    this.gelu = viewTensor(this.projections, [M, I], 'gelu_out', geluAt * 4);
    this.k = t('k', [M, C]);
    this.v = t('v', [M, C]);
    this.attn = t('attn_out', [M, C]);
    this.lse = t('attn_lse', [M * H]);
    this.fc1 = t('fc1_out', [M, I]);
    this.ids = t('input_ids', [M], 'u32');
    this.all = [this.residual, this.normed, this.mean, this.rstd, this.projections, this.k, this.v, this.attn, this.lse, this.fc1, this.ids];
  }

  /** Views of every buffer for `tokens` rows. */
  at(tokens: number, batch: number, seq: number) {
    if (tokens > this.maxTokens) throw new Error(`${tokens} tokens exceed the workspace's ${this.maxTokens}`);
    const { hidden: C, intermediate: I, heads: H } = this.dims;
    const v = viewTensor;
    return {
      residual: v(this.residual, [tokens, C]),
      normed: v(this.normed, [tokens, C]),
      mean: v(this.mean, [tokens]),
      rstd: v(this.rstd, [tokens]),
      q: v(this.q, [tokens, C]),
      k: v(this.k, [tokens, C]),
      v: v(this.v, [tokens, C]),
      attn: v(this.attn, [tokens, C]),
      lse: v(this.lse, [batch, H, seq]),
      fc1: v(this.fc1, [tokens, I]),
      gelu: v(this.gelu, [tokens, I]),
      ids: v(this.ids, [tokens]),
    };
  }

  bytes(): number {
    return this.all.reduce((s, t) => s + t.buffer.size, 0);
  }

  destroy(): void {
    for (const t of this.all) t.buffer.destroy();
  }
}

/** What a KV cache holds a key or value element as: f32 (exact), or f16 (half the bytes, rounded). */
export type KvCacheDType = KvCachePrecision;

/**
 * Keys and values of every layer for `batch` sequences of up to `maxSeq` positions, on the GPU. Each
 * layer's keys and values share one buffer (keys first, values from `valueOffset` elements on), so the
 * fused projection kernel that appends to both binds one buffer; every other kernel sees two tensors.
 * An f16 cache holds two elements a word and its keys in rotary-pair order (`keyPairs` pairs a head,
 * shaders/lib/kv_order.wgsl): the order the fused projection finishes them in.
 */
export class KvCache {
  readonly keys: GpuTensor[];
  readonly values: GpuTensor[];
  /** Each layer's whole buffer: keys at 0, values at `valueOffset`. */
  readonly layers: GpuTensor[];
  /** Where the values start in each layer's buffer, in elements (a multiple of the binding alignment). */
  readonly valueOffset: number;
  /** Keys stored in rotary-pair order with this many pairs a head (f16), or 0 (natural order, f32). */
  readonly keyPairs: number;
  /** Positions filled so far (the same for every sequence of the batch). */
  length = 0;

  /** `of`: another cache whose memory this one views (see view()); absent: new buffers. */
  constructor(
    private readonly gpu: GpuRuntime,
    readonly dims: ModelDims,
    readonly batch: number,
    readonly maxSeq: number,
    readonly dtype: KvCacheDType = 'f32',
    of?: KvCache,
  ) {
    if (dtype === 'f16' && dims.headDim % 2 !== 0) throw new Error(`KV cache: an f16 cache needs an even head size (two halves a word), this model's is ${dims.headDim}; use f32`);
    const shape = [batch, maxSeq, dims.hidden];
    this.keyPairs = dtype === 'f16' ? dims.rotaryDim / 2 : 0;
    if (of) {
      this.layers = of.layers;
      this.valueOffset = of.valueOffset;
    } else {
      const align = gpu.device.limits.minStorageBufferOffsetAlignment / DTYPE_BYTES[dtype];
      this.valueOffset = Math.ceil((batch * maxSeq * dims.hidden) / align) * align;
      this.layers = Array.from({ length: dims.layers }, (_, l) => this.gpu.tensor(`kv_cache.${l}`, [this.valueOffset + batch * maxSeq * dims.hidden], dtype));
    }
    this.keys = this.layers.map((t, l) => viewTensor(t, shape, `k_cache.${l}`));
    this.values = this.layers.map((t, l) => viewTensor(t, shape, `v_cache.${l}`, this.valueOffset * DTYPE_BYTES[dtype]));
  }

  /** Positions it holds in all: batch x maxSeq. */
  get capacity(): number {
    return this.batch * this.maxSeq;
  }

  /** Bytes of keys and values one position of one sequence takes over all layers. */
  get bytesPerPosition(): number {
    return 2 * this.dims.layers * this.dims.hidden * DTYPE_BYTES[this.dtype];
  }

  /**
   * The same memory as `batch` sequences of `maxSeq` positions (at most capacity in all), emptied:
   * one allocation serves batches of any shape. Destroying the view destroys this cache's buffers.
   */
  view(batch: number, maxSeq: number): KvCache {
    if (batch * maxSeq > this.capacity) throw new Error(`KV cache: ${batch} x ${maxSeq} positions exceed its ${this.capacity}`);
    return new KvCache(this.gpu, this.dims, batch, maxSeq, this.dtype, this);
  }

  reset(): void {
    this.length = 0;
  }

  destroy(): void {
    for (const t of this.layers) t.buffer.destroy();
  }
}
