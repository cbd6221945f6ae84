import { viewTensor } from '../gpu/tensor';
import { gatherLogProbs } from '../kernels/softmax';
import { KvCache, type Phi2Model, Phi2Workspace } from '../model/phi2/forward';
import type { LoraState } from '../model/phi2/lora-state';
import type { EvalItemResult } from './results';

/**
 * Log-likelihoods of candidate continuations sharing one prompt: sum over each candidate's tokens of
 * log p(token | prompt and the candidate's tokens before it). The prompt but its last token runs once
 * into a KV cache; each candidate then runs [last prompt token, its tokens but the last] from that
 * cache (rewound to the prompt's end: later writes overwrite the earlier candidate's positions), with
 * logits only for those rows. Buffers are kept across items and grown when an item needs more.
 */
export class CandidateScorer {
  private ws: Phi2Workspace | null = null;
  private cache: KvCache | null = null;

  constructor(private readonly model: Phi2Model) {}

  async score(prompt: readonly number[], candidates: ReadonlyArray<readonly number[]>, adapter: LoraState | null = null): Promise<number[]> {
    const { gpu, dims } = this.model;
    const P = prompt.length;
    if (P === 0) throw new Error('CandidateScorer: the prompt is empty');
    if (candidates.length === 0) throw new Error('CandidateScorer: no candidates to score');
    if (candidates.some((c) => c.length === 0)) throw new Error('CandidateScorer: a candidate has no tokens');
    const longest = Math.max(...candidates.map((c) => c.length));
    if (P + longest > dims.maxPositions) throw new Error(`CandidateScorer: ${P + longest} positions exceed the model's ${dims.maxPositions}`);
    const { ws, cache } = this.buffers(Math.max(P - 1, longest), P - 1 + longest);
    // Each candidate's rows start at a storage-offset boundary, so its slice binds as a view.
    const align = gpu.device.limits.minStorageBufferOffsetAlignment / 4;
    const offsets: number[] = [];
    let total = 0;
    for (const c of candidates) {
      offsets.push(total);
      total += Math.ceil(c.length / align) * align;
    }
    const targets = new Uint32Array(total);
    candidates.forEach((c, b) => targets.set(c, offsets[b]));
    const targetTensor = gpu.upload('candidate_targets', [total], targets, 'u32');
    const logProbs = gpu.tensor('candidate_logprobs', [total]);
    try {
      cache.reset();
      if (P > 1) {
        this.model.forward(ws, cache, { ids: Uint32Array.from(prompt.slice(0, P - 1)), batch: 1, seq: P - 1, logits: 'none', adapter });
      }
      candidates.forEach((c, b) => {
        cache.length = P - 1;
        const n = c.length;
        const ids = Uint32Array.of(prompt[P - 1], ...c.slice(0, n - 1));
        const logits = this.model.forward(ws, cache, { ids, batch: 1, seq: n, logits: 'all', adapter })!;
        const at = offsets[b] * 4;
        gatherLogProbs(gpu, viewTensor(logProbs, [n], 'candidate_logprobs', at), logits, viewTensor(targetTensor, [n], 'candidate_targets', at), n, dims.vocab);
      });
      const lp = await gpu.readF32(logProbs);
      return candidates.map((c, b) => {
        let sum = 0;
        for (let j = 0; j < c.length; j++) sum += lp[offsets[b] + j];
        return sum;
      });
    } finally {
      targetTensor.buffer.destroy();
      logProbs.buffer.destroy();
    }
  }

  private buffers(tokens: number, positions: number): { ws: Phi2Workspace; cache: KvCache } {
    const { gpu, dims } = this.model;
    if (!this.ws || this.ws.maxTokens < tokens) {
      this.ws?.destroy();
      this.ws = new Phi2Workspace(gpu, dims, Math.max(tokens, 64));
    }
    if (!this.cache || this.cache.maxSeq < positions || this.cache.dtype !== this.model.kvCache) {
      this.cache?.destroy();
      this.cache = new KvCache(gpu, dims, 1, Math.min(dims.maxPositions, Math.max(positions, 256)), this.model.kvCache);
    }
    return { ws: this.ws, cache: this.cache };
  }

  destroy(): void {
    this.ws?.destroy();
    this.cache?.destroy();
    this.ws = null;
    this.cache = null;
  }
}

/** Accuracy of results under rank classification (items with log-likelihoods only): for side-by-side views. */
export function rankAccuracy(results: readonly EvalItemResult[]): { correct: number; total: number } {
  let correct = 0;
  let total = 0;
  for (const r of results) {
    if (!r.labels || !r.logLikelihoods) continue;
    total++;
    let best = 0;
    r.logLikelihoods.forEach((ll, k) => {
      if (ll > r.logLikelihoods![best]) best = k;
    });
    if (r.labels[best] === r.target) correct++;
  }
  return { correct, total };
}
