import type { GpuRuntime } from '../../gpu/runtime';
import type { RecordedPass } from '../../gpu/encoder';
import { viewTensor, type GpuTensor } from '../../gpu/tensor';
import { sampleTokens, samplingUniforms, GREEDY, type SamplingOptions } from '../../kernels/sampling';
import { gatherLogProbs } from '../../kernels/softmax';
import { KvCache, Phi2Model, Phi2Workspace } from './forward';
import type { LoraState } from './lora-state';

/**
 * Text generation and candidate scoring on Phi2Model. Generation runs the prompt once (prefill), then
 * one token at a time against the KV cache on the GPU; each step reads back only the chosen token id,
 * which is what streaming needs anyway. Sampling happens on the GPU from a seeded counter hash, so a
 * seed replays a generation exactly. The sampled ids stay on the GPU as the next step's input; a
 * decode step is recorded once and replayed (gpu/encoder.ts), and each is submitted before the
 * previous token is read back, so the CPU neither records kernels per token nor makes the GPU wait.
 *
 * Several prompts generate together as Hugging Face's batched generate does: left-padded to the
 * longest, so that every sequence ends at the batch's last position, then one token per sequence per
 * step from one [batch, 1] forward and one readback of the batch's ids. Decode reads all the weights
 * once per step whatever the batch, so B sequences decode nearly B times faster than one by one. The
 * kernels give a padded sequence its own positions and never attend to the padding, so each sequence
 * gets the tokens it gets alone (up to f32 rounding in matmuls over a different row count).
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

export interface BatchGenerateOptions {
  /** New tokens per sequence at most: one number for all, or one per prompt. */
  maxNewTokens: number | readonly number[];
  sampling?: SamplingOptions;
  /**
   * One seed for all, or one per prompt. A sequence draws the numbers `generate` draws alone with
   * the same seed, so where it sits in a batch changes nothing.
   */
  seed?: number | readonly number[];
  /** Token ids that end a sequence (end-of-text by default); the stop token is not returned. */
  stopTokens?: readonly number[];
  /** Ends every sequence not yet finished (stopped 'cancelled') before the next step. */
  signal?: AbortSignal;
  /**
   * Called with each sequence's new token as soon as the step that chose it is read back, sequences
   * in order. Returning true ends that sequence there: its tokens so far, this one included, are
   * kept and it reports 'cancelled', as generate does when its signal is aborted from onToken.
   */
  onToken?: (sequence: number, token: number, index: number) => boolean | void;
  /** A LoRA adapter applied unmerged to every step; null or absent: the base model. */
  adapter?: LoraState | null;
}

export interface Generation {
  tokens: number[];
  stopped: 'stop-token' | 'max-tokens' | 'cancelled' | 'context-full';
}

/** The id that fills left padding: any valid id does, nothing attends to those rows. */
const PAD_TOKEN = 0;

export interface GeneratorOptions {
  /**
   * Ids below this are the only ones generated: the tokenizer's size (PhiTokenizer.vocabSize). Phi-2's
   * lm_head has 51,200 rows for 50,295 tokens; an id past the tokenizer's cannot be decoded, so every
   * generator that feeds text to a tokenizer passes it. Default: every row of the lm_head.
   */
  decodableVocab?: number;
  /**
   * The id that ends a generation when a call names no stop tokens and config.json names no
   * eos_token_id: the tokenizer's end-of-text. Phi-2's config names 50256; Phi-1's and Phi-1.5's name
   * none, though their tokenizer ends text with the same <|endoftext|>.
   */
  endOfText?: number | null;
}

/**
 * Reusable buffers for generation: one workspace, one KV cache (seen as [batch, positions] of each
 * call, see KvCache.view), sized for the largest call so far.
 */
export class Generator {
  private ws: Phi2Workspace | null = null;
  private cache: KvCache | null = null;
  private next: GpuTensor;
  private uniforms: GpuTensor;
  /** Ids at or past this are never chosen (GeneratorOptions.decodableVocab). */
  readonly decodableVocab: number;
  /** What ends a generation by default: config.json's eos_token_id, else GeneratorOptions.endOfText. */
  readonly endOfText: number | null;

  constructor(
    readonly model: Phi2Model,
    options: GeneratorOptions = {},
  ) {
    const valid = options.decodableVocab ?? model.dims.vocab;
    if (!Number.isInteger(valid) || valid < 1 || valid > model.dims.vocab) {
      throw new Error(`Generator: the decodable vocabulary must be an integer from 1 to the model's ${model.dims.vocab}, got ${valid}`);
    }
    this.decodableVocab = valid;
    this.endOfText = model.dims.eosTokenId ?? options.endOfText ?? null;
    this.next = model.gpu.tensor('next_token', [1], 'u32');
    this.uniforms = model.gpu.tensor('sampling_uniforms', [1]);
  }

  private get gpu(): GpuRuntime {
    return this.model.gpu;
  }

  /** A workspace for `tokens` rows and a cache of `batch` x `positions`, grown when a call needs more. */
  private buffers(tokens: number, batch: number, positions: number): { ws: Phi2Workspace; cache: KvCache } {
    const d = this.model.dims;
    if (!this.ws || this.ws.maxTokens < tokens) {
      this.ws?.destroy();
      this.ws = new Phi2Workspace(this.gpu, d, Math.max(tokens, 64));
    }
    // A new cache also when the model's KV cache setting changed (Phi2Model.configure).
    if (!this.cache || this.cache.capacity < batch * positions || this.cache.dtype !== this.model.kvCache) {
      this.cache?.destroy();
      this.cache = new KvCache(this.gpu, d, 1, Math.max(batch * positions, 256), this.model.kvCache);
    }
    if (this.next.shape[0] < batch) {
      this.next.buffer.destroy();
      this.uniforms.buffer.destroy();
      this.next = this.gpu.tensor('next_token', [batch], 'u32');
      this.uniforms = this.gpu.tensor('sampling_uniforms', [batch]);
    }
    return { ws: this.ws, cache: this.cache.view(batch, positions) };
  }

  /** One prompt: generateBatch with a batch of one. */
  async generate(prompt: readonly number[], opts: GenerateOptions): Promise<Generation> {
    const d = this.model.dims;
    if (!prompt.length) throw new Error('generate: the prompt is empty; give at least one token');
    if (prompt.length >= d.maxPositions) throw new Error(`generate: the prompt has ${prompt.length} tokens; the model takes at most ${d.maxPositions - 1}`);
    const { onToken, ...rest } = opts;
    const [generation] = await this.generateBatch([prompt], {
      ...rest,
      onToken: onToken && ((_sequence, token, index) => void onToken(token, index)),
    });
    return generation;
  }

  /**
   * Generates a continuation of each prompt, all together (see the top of this file). Each sequence
   * ends at a stop token, at its budget of new tokens (fewer near the end of the model's context:
   * 'context-full'), when onToken says so, or when the signal aborts; finished sequences ride along
   * until the last one ends, their further tokens unused. Results are in prompt order.
   */
  async generateBatch(prompts: ReadonlyArray<readonly number[]>, opts: BatchGenerateOptions): Promise<Generation[]> {
    const d = this.model.dims;
    const B = prompts.length;
    if (B === 0) throw new Error('generateBatch: no prompts');
    const perSequence = (name: string, value: number | readonly number[] | undefined, fallback: number): number[] => {
      const values = typeof value === 'object' ? [...value] : new Array<number>(B).fill(value ?? fallback);
      if (values.length !== B) throw new Error(`generateBatch: ${values.length} values of ${name} for ${B} prompts`);
      return values;
    };
    const maxNew = perSequence('maxNewTokens', opts.maxNewTokens, 0);
    const seeds = perSequence('seed', opts.seed, 0);
    prompts.forEach((prompt, b) => {
      if (!prompt.length) throw new Error(`generateBatch: prompt ${b} is empty; give at least one token`);
      if (prompt.length >= d.maxPositions) throw new Error(`generateBatch: prompt ${b} has ${prompt.length} tokens; the model takes at most ${d.maxPositions - 1}`);
      if (!Number.isInteger(maxNew[b]) || maxNew[b] < 0) throw new Error(`generateBatch: maxNewTokens of prompt ${b} must be a non-negative integer, got ${maxNew[b]}`);
    });
    const longest = Math.max(...prompts.map((p) => p.length));
    const budget = prompts.map((p, b) => Math.min(maxNew[b], d.maxPositions - p.length));
    const steps = Math.max(...budget);
    // Padding puts every sequence's tokens at cache rows up to longest + steps - 1 (the last token is not fed back).
    if (longest + steps - 1 > d.maxPositions) {
      throw new Error(
        `generateBatch: prompts of up to ${longest} tokens and up to ${steps} new tokens need ${longest + steps - 1} positions; ` +
          `the model has ${d.maxPositions}. Generate the longest prompts in another batch, or fewer new tokens.`,
      );
    }
    const sampling = opts.sampling ?? GREEDY;
    const stops = new Set(opts.stopTokens ?? (this.endOfText === null ? [] : [this.endOfText]));
    const results: Generation[] = prompts.map(() => ({ tokens: [], stopped: 'max-tokens' }));
    const done = budget.map((n) => n === 0);
    const finish = (b: number, stopped: Generation['stopped']) => {
      results[b].stopped = stopped;
      done[b] = true;
    };
    if (steps === 0) return results;

    const { ws, cache } = this.buffers(B * longest, B, longest + steps - 1);
    const leftPad = prompts.map((p) => longest - p.length);
    const input = new Uint32Array(B * longest).fill(PAD_TOKEN);
    prompts.forEach((p, b) => input.set(p, b * longest + leftPad[b]));
    const next = viewTensor(this.next, [B], 'next_token');
    const uniforms = viewTensor(this.uniforms, [B], 'sampling_uniforms');
    const random = sampling.temperature > 0 && sampling.topK !== 1;
    const setUniforms = (step: number) => {
      if (random) this.gpu.write(uniforms, Float32Array.from(seeds, (seed) => samplingUniforms(seed, step, 1)[0]));
    };
    const sample = (logits: GpuTensor) => sampleTokens(this.gpu, next, viewTensor(logits, [B, d.vocab]), uniforms, B, d.vocab, sampling, this.decodableVocab);

    if (opts.signal?.aborted) {
      done.forEach((isDone, b) => isDone || finish(b, 'cancelled'));
      return results;
    }
    // Step 0: the prompts. Its tokens are read back while the next step runs.
    setUniforms(0);
    sample(this.model.forward(ws, cache, { ids: input, batch: B, seq: longest, leftPad, logits: 'last', adapter: opts.adapter })!);
    let pending = this.gpu.read(next);
    // Later steps: one token per sequence, fed from `next` on the GPU. The step is recorded once and
    // replayed one position further each time (recorded again where attention would split its keys
    // differently: every 64 positions or so as the context grows); step s + 1 is submitted before step
    // s's tokens are read, so the GPU never waits for the host. The stop checks lag one step: a step
    // submitted after every sequence ended is wasted, never used.
    let decode: RecordedPass | null = null;
    let capturedAt = 0;
    let capturedSplits = 0;
    // A pass still in flight may use its uniforms: destroy them once the queue is done.
    const retire = (pass: RecordedPass) => void this.gpu.device.queue.onSubmittedWorkDone().then(() => pass.destroy());
    try {
      for (let step = 0; step < steps; step++) {
        let following: Promise<ArrayBuffer> | null = null;
        if (step + 1 < steps && !opts.signal?.aborted) {
          setUniforms(step + 1);
          const at = cache.length;
          const splits = this.model.decodeSplits(B, at + 1);
          if (!decode || splits !== capturedSplits) {
            if (decode) retire(decode);
            capturedAt = at;
            capturedSplits = splits;
            // Finished sequences are fed their own last choice: any token does, their output is unused.
            decode = this.gpu.encoder.capture(() => sample(this.model.forward(ws, cache, { ids: next, batch: B, seq: 1, leftPad, logits: 'last', adapter: opts.adapter })!));
          }
          this.gpu.encoder.replay(decode, at - capturedAt);
          cache.length = at + 1;
          following = this.gpu.read(next);
        }
        const chosen = new Uint32Array(await pending);
        for (let b = 0; b < B; b++) {
          if (done[b]) continue;
          const token = chosen[b];
          if (stops.has(token)) {
            finish(b, 'stop-token');
            continue;
          }
          results[b].tokens.push(token);
          if (opts.onToken?.(b, token, step) === true) finish(b, 'cancelled');
          else if (results[b].tokens.length === budget[b]) finish(b, budget[b] < maxNew[b] ? 'context-full' : 'max-tokens');
        }
        if (!done.every(Boolean) && (opts.signal?.aborted || !following)) done.forEach((isDone, b) => isDone || finish(b, 'cancelled'));
        if (done.every(Boolean)) {
          // A step submitted ahead is not needed; its readback settles unobserved.
          following?.catch(() => undefined);
          break;
        }
        pending = following!;
      }
    } finally {
      const pass = decode as RecordedPass | null;
      if (pass) retire(pass);
    }
    return results;
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
    const cache = new KvCache(this.gpu, d, B, T, this.model.kvCache);
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
