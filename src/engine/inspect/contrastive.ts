import { CHOICE_WORDS, contrastiveSelect, decodeChoices, type ContrastiveChoice } from '../kernels/contrastive';
import { viewTensor, type GpuTensor } from '../gpu/tensor';
import { KvCache, Phi2Model, Phi2Workspace } from '../model/phi2/forward';
import type { LoraState } from '../model/phi2/lora-state';

/**
 * Contrastive generation between a model with its LoRA adapter and the same model without it, after
 * "What's New in My Data? Novelty Exploration via Contrastive Generation" (Isonuma and Titov, 2024):
 * each next token maximises log p_adapter − log p_base among the tokens the adapter itself finds
 * plausible (at least `plausibility` times its top probability), so the text shows what fine-tuning
 * made likely that the base model was not going to say. 'reverse' swaps the roles: what the base
 * model says that the adapter made unlikely. Several samples run as one batch, each drawing from
 * softmax(score / temperature) with its own seed (greedy gives one sample).
 *
 * Both passes share the model's weights on the GPU: the adapter is applied unmerged in one forward
 * pass and left out of the other, each with its own KV cache; one forward per pass per step, then
 * one small readback of the chosen tokens and their scores. (The paper's iterated variant, which
 * fine-tunes the base model on earlier samples to push later ones elsewhere, is not done here.)
 */

export type ContrastDirection = 'adapter-over-base' | 'base-over-adapter';

export interface ContrastiveOptions {
  maxNewTokens: number;
  /** Diverse samples generated together (the batch). */
  samples: number;
  direction: ContrastDirection;
  /** Keep tokens the expert (the adapter, or the base model in reverse) gives >= plausibility · its top probability. */
  plausibility: number;
  /** 0: greedy (one sample); otherwise the temperature of each draw. */
  temperature: number;
  /** Sample s draws with seed + s. */
  seed: number;
  /** Token ids that end a sample (end-of-text by default); the stop token is not returned. */
  stopTokens?: readonly number[];
  /**
   * Ids below this are the only ones chosen: the tokenizer's size (Phi-2's lm_head has 51,200 rows for
   * 50,295 tokens). Default: every row of the lm_head.
   */
  decodableVocab?: number;
  /** End-of-text where config.json names no eos_token_id (Phi-1, Phi-1.5): the tokenizer's. */
  endOfText?: number | null;
  signal?: AbortSignal;
  /** Each sample's new token and its scores, as soon as the step that chose it is read back. */
  onToken?: (sample: number, choice: ContrastiveChoice, index: number) => void;
  /** After each step's tokens (one call per step, for a streaming view to send once). */
  onStep?: (step: number) => void;
}

export interface ContrastiveSample {
  tokens: number[];
  /** Per token: log p_expert − log p_amateur, and both log-probabilities. */
  choices: ContrastiveChoice[];
  stopped: 'stop-token' | 'max-tokens' | 'cancelled' | 'context-full';
}

/** Most samples generated together: each costs two KV caches. */
export const MAX_CONTRAST_SAMPLES = 8;
/** The two KV caches of a run at most (Phi-2: 8 samples of 600 positions take 3.1 GB; 2 GiB allows 4 of them). */
export const MAX_CONTRAST_CACHE_BYTES = 2 * 1024 ** 3;

export class ContrastiveError extends Error {
  override name = 'ContrastiveError';
}

/** GPU bytes the two KV caches of a run take: what a page can check before starting one. */
export function contrastiveCacheBytes(model: Phi2Model, samples: number, positions: number): number {
  const d = model.dims;
  return 2 * 2 * d.layers * samples * positions * d.hidden * 4;
}

export function checkContrastiveOptions(model: Phi2Model, promptTokens: number, o: ContrastiveOptions): void {
  const d = model.dims;
  if (!promptTokens) throw new ContrastiveError('The prompt is empty; give at least one token.');
  if (promptTokens >= d.maxPositions) throw new ContrastiveError(`The prompt has ${promptTokens} tokens; the model takes at most ${d.maxPositions - 1}.`);
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 1) throw new ContrastiveError(`Max new tokens must be a whole number of at least 1, got ${o.maxNewTokens}.`);
  if (!Number.isInteger(o.samples) || o.samples < 1 || o.samples > MAX_CONTRAST_SAMPLES) {
    throw new ContrastiveError(`Samples must be from 1 to ${MAX_CONTRAST_SAMPLES}, got ${o.samples}.`);
  }
  if (!(o.plausibility >= 0 && o.plausibility <= 1)) throw new ContrastiveError(`The plausibility cut must be from 0 to 1, got ${o.plausibility}.`);
  if (!Number.isFinite(o.temperature) || o.temperature < 0 || o.temperature > 5) throw new ContrastiveError(`Temperature must be from 0 (greedy) to 5, got ${o.temperature}.`);
  if (o.temperature === 0 && o.samples > 1) {
    throw new ContrastiveError('Greedy contrastive generation gives one sample; set a temperature above 0 for several diverse samples.');
  }
  if (!Number.isSafeInteger(o.seed) || o.seed < 0) throw new ContrastiveError(`The seed must be a whole number of 0 or more, got ${o.seed}.`);
  if (o.decodableVocab !== undefined && !(Number.isInteger(o.decodableVocab) && o.decodableVocab >= 1 && o.decodableVocab <= d.vocab)) {
    throw new ContrastiveError(`The decodable vocabulary must be a whole number from 1 to the model's ${d.vocab}, got ${o.decodableVocab}.`);
  }
  if (o.direction !== 'adapter-over-base' && o.direction !== 'base-over-adapter') throw new ContrastiveError(`Unknown direction "${o.direction}".`);
  const positions = Math.min(promptTokens + o.maxNewTokens, d.maxPositions);
  const bytes = contrastiveCacheBytes(model, o.samples, positions);
  if (bytes > MAX_CONTRAST_CACHE_BYTES) {
    throw new ContrastiveError(
      `${o.samples} samples of up to ${positions} positions need ${(bytes / 1e9).toFixed(1)} GB of GPU memory for the two KV caches ` +
        `(the adapter's and the base model's); at most ${(MAX_CONTRAST_CACHE_BYTES / 1e9).toFixed(1)} GB is allowed. Use fewer samples, fewer new tokens or a shorter prompt.`,
    );
  }
}

/**
 * Generates `samples` continuations of one prompt by the contrastive rule (see the top of this file).
 * The model must not be used by anything else meanwhile (the caller holds it).
 */
export async function generateContrastive(model: Phi2Model, adapter: LoraState, prompt: readonly number[], opts: ContrastiveOptions): Promise<ContrastiveSample[]> {
  checkContrastiveOptions(model, prompt.length, opts);
  const gpu = model.gpu;
  const d = model.dims;
  const S = opts.samples;
  const T = prompt.length;
  const steps = Math.min(opts.maxNewTokens, d.maxPositions - T);
  const positions = T + steps - 1;
  const endOfText = d.eosTokenId ?? opts.endOfText ?? null;
  const stops = new Set(opts.stopTokens ?? (endOfText === null ? [] : [endOfText]));

  const ws = new Phi2Workspace(gpu, d, S * T);
  const caches = { adapter: new KvCache(gpu, d, S, Math.max(positions, 1), model.kvCache), base: new KvCache(gpu, d, S, Math.max(positions, 1), model.kvCache) };
  const logits = { adapter: gpu.tensor('contrast.adapter_logits', [S, d.vocab]), base: gpu.tensor('contrast.base_logits', [S, d.vocab]) };
  const seeds = gpu.upload('contrast.seeds', [S], Uint32Array.from({ length: S }, (_, s) => (opts.seed + s) >>> 0), 'u32');
  const out = gpu.tensor('contrast.choice', [S, CHOICE_WORDS], 'u32');
  const [expert, amateur] = opts.direction === 'adapter-over-base' ? [logits.adapter, logits.base] : [logits.base, logits.adapter];
  const results: ContrastiveSample[] = Array.from({ length: S }, () => ({ tokens: [], choices: [], stopped: 'max-tokens' }));
  const done = new Array<boolean>(S).fill(false);
  try {
    let input = new Uint32Array(S * T);
    for (let s = 0; s < S; s++) input.set(prompt, s * T);
    for (let step = 0; step < steps; step++) {
      if (opts.signal?.aborted) {
        done.forEach((isDone, s) => isDone || ((results[s].stopped = 'cancelled'), (done[s] = true)));
        break;
      }
      const seq = step === 0 ? T : 1;
      // The model's logits buffer is reused by its next call: copy each pass's out first.
      for (const pass of ['adapter', 'base'] as const) {
        const rows = model.forward(ws, caches[pass], { ids: input, batch: S, seq, logits: 'last', adapter: pass === 'adapter' ? adapter : null })!;
        gpu.encoder.copy(viewTensor(rows, [S, d.vocab]), logits[pass], S * d.vocab * 4);
      }
      contrastiveSelect(gpu, out, expert, amateur, seeds, S, d.vocab, { plausibility: opts.plausibility, temperature: opts.temperature, step, valid: opts.decodableVocab });
      const choices = decodeChoices(await gpu.read(out), S);
      for (let s = 0; s < S; s++) {
        if (done[s]) continue;
        const choice = choices[s];
        if (stops.has(choice.token)) {
          results[s].stopped = 'stop-token';
          done[s] = true;
          continue;
        }
        results[s].tokens.push(choice.token);
        results[s].choices.push(choice);
        opts.onToken?.(s, choice, step);
        if (results[s].tokens.length === steps) {
          results[s].stopped = steps < opts.maxNewTokens ? 'context-full' : 'max-tokens';
          done[s] = true;
        }
      }
      opts.onStep?.(step);
      if (done.every(Boolean)) break;
      // Finished samples are fed their own last choice: any token does, their output is unused.
      input = Uint32Array.from(choices, (c) => c.token);
    }
    return results;
  } finally {
    gpu.encoder.submit(); // what was recorded goes first: destroy waits for submitted work only
    ws.destroy();
    caches.adapter.destroy();
    caches.base.destroy();
    for (const t of [logits.adapter, logits.base, seeds, out] as GpuTensor[]) t.buffer.destroy();
  }
}
