import type { GpuRuntime } from '../../gpu/runtime';
import { viewTensor, type GpuTensor } from '../../gpu/tensor';
import { sampleTokens, samplingUniforms, GREEDY, type SamplingOptions } from '../../kernels/sampling';
import { gatherLogProbs } from '../../kernels/softmax';
import { KvCache, Phi2Model, Phi2Workspace } from './forward';
import type { LoraState } from './lora-state';

/**
 * Text generation and candidate scoring on Phi2Model. Generation runs the prompt once (prefill), then
 * one token at a time against the KV cache on the GPU; each step reads back only the chosen token id,
 * which is what streaming needs anyway. Sampling happens on the GPU from a seeded counter hash, so a
 * seed replays a generation exactly.
 */

export interface GenerateOptions {
  maxNewTokens: number;
  sampling?: SamplingOptions;
  seed?: number;
  /** Token ids that end the generation (end-of-text by default); the stop token is not returned. */
  stopTokens?: readonly number[];
  signal?: AbortSignal;
  /** Called with each new token as soon as it is known. */
  onToken?: (token: number, index: number) => void;
  /** A LoRA adapter applied unmerged to every step; null or absent: the base model. */
  adapter?: LoraState | null;
}

export interface Generation {
  tokens: number[];
  stopped: 'stop-token' | 'max-tokens' | 'cancelled' | 'context-full';
}

/** Reusable buffers for generation: one workspace, one KV cache, sized for the longest call. */
export class Generator {
  private ws: Phi2Workspace | null = null;
  private cache: KvCache | null = null;
  private next: GpuTensor;
  private uniforms: GpuTensor;

  constructor(readonly model: Phi2Model) {
    this.next = model.gpu.tensor('next_token', [1], 'u32');
    this.uniforms = model.gpu.tensor('sampling_uniforms', [1]);
  }

  private get gpu(): GpuRuntime {
    return this.model.gpu;
  }

  private buffers(promptTokens: number, totalTokens: number): { ws: Phi2Workspace; cache: KvCache } {
    const d = this.model.dims;
    if (!this.ws || this.ws.maxTokens < promptTokens) {
      this.ws?.destroy();
      this.ws = new Phi2Workspace(this.gpu, d, Math.max(promptTokens, 64));
    }
    if (!this.cache || this.cache.maxSeq < totalTokens) {
      this.cache?.destroy();
      this.cache = new KvCache(this.gpu, d, 1, Math.min(d.maxPositions, Math.max(totalTokens, 256)));
    }
    this.cache.reset();
    return { ws: this.ws, cache: this.cache };
  }

  async generate(prompt: readonly number[], opts: GenerateOptions): Promise<Generation> {
    const d = this.model.dims;
    if (!prompt.length) throw new Error('generate: the prompt is empty; give at least one token');
    if (prompt.length >= d.maxPositions) throw new Error(`generate: the prompt has ${prompt.length} tokens; the model takes at most ${d.maxPositions - 1}`);
    const maxNew = Math.min(opts.maxNewTokens, d.maxPositions - prompt.length);
    const sampling = opts.sampling ?? GREEDY;
    const stops = new Set(opts.stopTokens ?? (d.eosTokenId === null ? [] : [d.eosTokenId]));
    const { ws, cache } = this.buffers(prompt.length, prompt.length + maxNew);
    const tokens: number[] = [];
    let input = Uint32Array.from(prompt);
    for (let step = 0; step < maxNew; step++) {
      if (opts.signal?.aborted) return { tokens, stopped: 'cancelled' };
      const logits = this.model.forward(ws, cache, { ids: input, batch: 1, seq: input.length, logits: 'last', adapter: opts.adapter })!;
      const u = samplingUniforms(opts.seed ?? 0, step, 1);
      this.gpu.device.queue.writeBuffer(this.uniforms.buffer, 0, u.buffer as ArrayBuffer);
      sampleTokens(this.gpu, this.next, viewTensor(logits, [1, d.vocab]), this.uniforms, 1, d.vocab, sampling);
      const token = new Uint32Array(await this.gpu.read(this.next))[0];
      if (stops.has(token)) return { tokens, stopped: 'stop-token' };
      tokens.push(token);
      opts.onToken?.(token, step);
      input = Uint32Array.of(token);
    }
    return { tokens, stopped: maxNew < opts.maxNewTokens ? 'context-full' : 'max-tokens' };
  }

  /**
   * Log-likelihood of each candidate continuation after the prompt: the sum over the candidate's
   * tokens of log p(token | everything before). All candidates run as one right-padded batch.
   * `adapter`: a LoRA adapter applied unmerged; null or absent: the base model.
   */
  async scoreCandidates(prompt: readonly number[], candidates: ReadonlyArray<readonly number[]>, adapter: LoraState | null = null): Promise<number[]> {
    const d = this.model.dims;
    if (!prompt.length) throw new Error('scoreCandidates: the prompt is empty');
    if (candidates.some((c) => !c.length)) throw new Error('scoreCandidates: a candidate has no tokens');
    const B = candidates.length;
    const lengths = candidates.map((c) => prompt.length + c.length);
    const T = Math.max(...lengths);
    if (T > d.maxPositions) throw new Error(`scoreCandidates: ${T} tokens exceed the model's ${d.maxPositions} positions`);
    const ids = new Uint32Array(B * T);
    candidates.forEach((c, b) => {
      ids.set(prompt, b * T);
      ids.set(c, b * T + prompt.length);
    });
    const ws = new Phi2Workspace(this.gpu, d, B * T);
    const cache = new KvCache(this.gpu, d, B, T);
    try {
      const logits = this.model.forward(ws, cache, { ids, batch: B, seq: T, lengths, logits: 'all', adapter })!;
      // Row (b, t) predicts token t+1: gather the log-probability of each candidate token.
      const targets = new Uint32Array(B * T);
      candidates.forEach((c, b) => c.forEach((tok, j) => (targets[b * T + prompt.length - 1 + j] = tok)));
      const targetTensor = this.gpu.upload('score_targets', [B * T], targets, 'u32');
      const logProbs = this.gpu.tensor('score_logprobs', [B * T]);
      gatherLogProbs(this.gpu, logProbs, logits, targetTensor, B * T, d.vocab);
      const lp = await this.gpu.readF32(logProbs);
      targetTensor.buffer.destroy();
      logProbs.buffer.destroy();
      return candidates.map((c, b) => {
        let sum = 0;
        for (let j = 0; j < c.length; j++) sum += lp[b * T + prompt.length - 1 + j];
        return sum;
      });
    } finally {
      ws.destroy();
      cache.destroy();
    }
  }

  destroy(): void {
    this.ws?.destroy();
    this.cache?.destroy();
    this.next.buffer.destroy();
    this.uniforms.buffer.destroy();
  }
}
