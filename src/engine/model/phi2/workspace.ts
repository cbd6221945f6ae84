import type { GpuRuntime } from '../../gpu/runtime';
import { viewTensor, type GpuTensor } from '../../gpu/tensor';
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
    this.q = t('q', [M, C]);
    this.k = t('k', [M, C]);
    this.v = t('v', [M, C]);
    this.attn = t('attn_out', [M, C]);
    this.lse = t('attn_lse', [M * H]);
    this.fc1 = t('fc1_out', [M, I]);
    this.gelu = t('gelu_out', [M, I]);
    this.ids = t('input_ids', [M], 'u32');
    this.all = [this.residual, this.normed, this.mean, this.rstd, this.q, this.k, this.v, this.attn, this.lse, this.fc1, this.gelu, this.ids];
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

/** Keys and values of every layer for `batch` sequences of up to `maxSeq` positions, on the GPU. */
export class KvCache {
  readonly keys: GpuTensor[];
  readonly values: GpuTensor[];
  /** Positions filled so far (the same for every sequence of the batch). */
  length = 0;

  /** `of`: another cache whose memory this one views (see view()); absent: new buffers. */
  constructor(
    private readonly gpu: GpuRuntime,
    readonly dims: ModelDims,
    readonly batch: number,
    readonly maxSeq: number,
    of?: KvCache,
  ) {
    const shape = [batch, maxSeq, dims.hidden];
    if (of) {
      this.keys = of.keys.map((t) => viewTensor(t, shape));
      this.values = of.values.map((t) => viewTensor(t, shape));
    } else {
      this.keys = Array.from({ length: dims.layers }, (_, l) => this.gpu.tensor(`k_cache.${l}`, shape));
      this.values = Array.from({ length: dims.layers }, (_, l) => this.gpu.tensor(`v_cache.${l}`, shape));
    }
  }

  /** Positions it holds in all: batch x maxSeq. */
  get capacity(): number {
    return this.batch * this.maxSeq;
  }

  /**
   * The same memory as `batch` sequences of `maxSeq` positions (at most capacity in all), emptied:
   * one allocation serves batches of any shape. Destroying the view destroys this cache's buffers.
   */
  view(batch: number, maxSeq: number): KvCache {
    if (batch * maxSeq > this.capacity) throw new Error(`KV cache: ${batch} x ${maxSeq} positions exceed its ${this.capacity}`);
    return new KvCache(this.gpu, this.dims, batch, maxSeq, this);
  }

  reset(): void {
    this.length = 0;
  }

  destroy(): void {
    for (const t of [...this.keys, ...this.values]) t.buffer.destroy();
  }
}
