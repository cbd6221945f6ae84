import { describeInference } from '../../shared/compute';
import type { Engine } from '../engine';
import { drawFewShot } from '../data/few-shot';
import { SeededRandom } from '../random';
import { drawSymbols, SYMBOL_KINDS, type SymbolKind } from '../data/symbols';
import { type ClassificationFormat, CLASSIFICATION_FORMATS, type Exemplar, paperShape, renderFewShot, usesSymbols, wrapPaperPrompt } from '../data/prompts';
import { MAX_NEW_TOKENS_LIMIT } from '../eval/runner';
import { scoreAnswer, type Verdict } from '../eval/scoring';
import type { SamplingOptions } from '../kernels/sampling';
import type { Generation } from '../model/phi2/generate';
import { withModel, type Session } from './session';
import { bundledData } from '../eval/requests';

/**
 * The Demo page's engine: one live 8-shot prompt from a bundled pool (the paper's shapes, with symbols
 * drawn from a seed or typed by hand), exactly as an evaluation builds it, then a generation from it on
 * the base model or an adapter, streamed token by token with the sampling asked for, and scored with the
 * answer verdict when the target is known.
 */

export interface DemoDataset {
  id: string;
  name: string;
  instruction: string;
  /** Class key -> label word, and the flipped word. */
  labels: Record<string, string>;
  flippedLabels: Record<string, string>;
  rows: number;
}

export type DemoSymbols = { mode: 'random'; kinds: SymbolKind[]; seed: number } | { mode: 'manual'; symbols: string[] };

export interface DemoPromptRequest {
  dataUrl: string;
  dataset: string;
  format: ClassificationFormat;
  /** Chooses the query, the exemplars and their order. */
  seed: number;
  /** Exemplars per class (the paper: 4, so 8 shots for two classes). */
  perClass?: number;
  /** For the symbol formats: drawn from a seed (held-out evaluation symbols) or typed, one per class. */
  symbols: DemoSymbols;
}

export interface DemoPrompt {
  prompt: string;
  query: string;
  /** The word standing for the query's true class in this prompt. */
  target: string;
  /** The words shown for each class, in class order, and the classes' own label words. */
  labels: string[];
  classWords: string[];
  shots: number;
}

export interface DemoRunRequest {
  jobId: string;
  prompt: string;
  /** 'paper' sends `Instruct: {prompt}\nOutput:` as the paper did; 'none' sends the prompt as it is. */
  wrapper: 'paper' | 'none';
  /** null for the base model, or a loaded adapter's id. */
  adapter: string | null;
  maxNewTokens: number;
  sampling: SamplingOptions;
  seed: number;
  /** When given, the answer is scored against it with the evaluation's answer verdict (scoring.ts). */
  target?: string | null;
}

export interface DemoUpdate {
  jobId: string;
  /** Everything generated so far, decoded again each time (a multi-byte character can span tokens). */
  text: string;
  tokens: number;
  promptTokens: number;
  /** Time to the first token (the prompt's prefill), then new tokens per second since it. */
  firstTokenMs: number | null;
  tokensPerSecond: number | null;
}

export interface DemoResult extends DemoUpdate {
  /** The exact text the model was given. */
  input: string;
  stopped: Generation['stopped'];
  verdict: Verdict | null;
  /** The inference settings it ran with where they leave the exact model ("int8 compute, int8 lm_head"), else null. */
  precision: string | null;
}

export class DemoInputError extends Error {
  override name = 'DemoInputError';
}

const SYMBOL_LINE = /[\r\n]/;

function checkSampling(s: SamplingOptions): SamplingOptions {
  if (!Number.isFinite(s.temperature) || s.temperature < 0 || s.temperature > 5) throw new DemoInputError(`Temperature must be from 0 (greedy) to 5, got ${s.temperature}.`);
  if (!Number.isInteger(s.topK) || s.topK < 0) throw new DemoInputError(`Top-k must be a whole number, 0 for no limit; got ${s.topK}.`);
  if (!(s.topP > 0 && s.topP <= 1)) throw new DemoInputError(`Top-p must be above 0 and at most 1, got ${s.topP}.`);
  return s;
}

export class DemoWorkspace {
  private readonly jobs = new Map<string, AbortController>();

  constructor(
    private readonly engine: Pick<Engine, 'platform'>,
    private readonly session: Session,
  ) {}

  async datasets(dataUrl: string): Promise<DemoDataset[]> {
    const data = await bundledData(this.engine.platform.fetch, dataUrl);
    return Object.values(data.catalog.classification).map((t) => ({
      id: t.id,
      name: t.name,
      instruction: t.instruction,
      labels: { ...t.labels },
      flippedLabels: { ...t.flippedLabels },
      rows: data.pools[t.id]?.rows.length ?? 0,
    }));
  }

  async buildPrompt(request: DemoPromptRequest): Promise<DemoPrompt> {
    const data = await bundledData(this.engine.platform.fetch, request.dataUrl);
    const pool = data.pools[request.dataset];
    if (!pool) throw new DemoInputError(`There is no bundled dataset "${request.dataset}".`);
    if (!CLASSIFICATION_FORMATS.includes(request.format)) throw new DemoInputError(`Unknown prompt format "${request.format}".`);
    if (!Number.isSafeInteger(request.seed) || request.seed < 0) throw new DemoInputError(`The seed must be a whole number of 0 or more, got ${request.seed}.`);
    const perClass = request.perClass ?? 4;
    if (!Number.isInteger(perClass) || perClass < 1 || perClass > 16) throw new DemoInputError(`Exemplars per class must be from 1 to 16, got ${perClass}.`);
    const draw = drawFewShot(pool, SeededRandom.from(request.seed, 'demo', pool.id), perClass, 'uniform');
    let words: Record<string, string>;
    if (request.format === 'flipped') words = pool.flippedWords;
    else if (!usesSymbols(request.format)) words = pool.labelWords;
    else {
      // Symbols never equal one of the task's own words (an uppercase "HATE" would leak the label).
      const symbols = this.symbols(request.symbols, pool.classes.length, [...Object.values(pool.labelWords), ...Object.values(pool.flippedWords)]);
      words = Object.fromEntries(pool.classes.map((c, k) => [c, symbols[k]]));
    }
    const exemplars: Exemplar[] = SeededRandom.from(request.seed, 'demo-order', pool.id, request.format).shuffle(draw.exemplars.map((e) => ({ text: e.text, label: words[e.label] })));
    return {
      prompt: renderFewShot(paperShape(request.format, pool.instruction ?? ''), exemplars, draw.query.text),
      query: draw.query.text,
      target: words[draw.query.label],
      labels: pool.classes.map((c) => words[c]),
      classWords: pool.classes.map((c) => pool.labelWords[c]),
      shots: exemplars.length,
    };
  }

  private symbols(choice: DemoSymbols, count: number, avoid: string[]): string[] {
    if (choice.mode === 'manual') {
      const typed = choice.symbols.map((s) => s.trim());
      if (typed.length !== count) throw new DemoInputError(`Type ${count} symbols, one per class; got ${typed.length}.`);
      typed.forEach((s, k) => {
        if (s === '') throw new DemoInputError(`Symbol ${k + 1} is empty.`);
        if (SYMBOL_LINE.test(s)) throw new DemoInputError(`Symbol ${k + 1} contains a line break; symbols must be on one line.`);
      });
      if (new Set(typed).size !== typed.length) throw new DemoInputError('The symbols must differ from each other.');
      return typed;
    }
    if (!Number.isSafeInteger(choice.seed) || choice.seed < 0) throw new DemoInputError(`The symbol seed must be a whole number of 0 or more, got ${choice.seed}.`);
    const kinds = choice.kinds.length ? choice.kinds : SYMBOL_KINDS;
    for (const k of kinds) if (!SYMBOL_KINDS.includes(k)) throw new DemoInputError(`Unknown symbol kind "${k}".`);
    return drawSymbols(SeededRandom.from(choice.seed, 'demo-symbols'), count, { set: 'evaluation', kinds, avoid });
  }

  tokenCount(prompt: string, wrapper: 'paper' | 'none'): number | null {
    const loaded = this.session.loaded;
    return loaded ? loaded.tokenizer.encode(this.input(prompt, wrapper)).length : null;
  }

  private input(prompt: string, wrapper: 'paper' | 'none'): string {
    return wrapper === 'paper' ? wrapPaperPrompt(prompt) : prompt;
  }

  async run(request: DemoRunRequest, onUpdate?: (u: DemoUpdate) => void): Promise<DemoResult> {
    const loaded = this.session.requireModel();
    if (request.prompt.trim() === '') throw new DemoInputError('The prompt is empty: build one or type it.');
    if (!Number.isInteger(request.maxNewTokens) || request.maxNewTokens < 1 || request.maxNewTokens > MAX_NEW_TOKENS_LIMIT) {
      throw new DemoInputError(`Max new tokens must be from 1 to ${MAX_NEW_TOKENS_LIMIT}, got ${request.maxNewTokens}.`);
    }
    if (!Number.isSafeInteger(request.seed) || request.seed < 0) throw new DemoInputError(`The sampling seed must be a whole number of 0 or more, got ${request.seed}.`);
    const sampling = checkSampling(request.sampling);
    const adapter = this.session.adapter(request.adapter);
    if (this.jobs.has(request.jobId)) throw new DemoInputError(`job ${request.jobId} is already running`);
    const input = this.input(request.prompt, request.wrapper);
    const ids = loaded.tokenizer.encode(input);
    const limit = loaded.dims.maxPositions;
    if (ids.length >= limit) throw new DemoInputError(`The prompt has ${ids.length} tokens; the model takes at most ${limit - 1}. Shorten it or use fewer exemplars.`);
    const controller = new AbortController();
    this.jobs.set(request.jobId, controller);
    const now = () => this.engine.platform.now();
    try {
      return await withModel(loaded.generator, 'the demo on the Demo page', async () => {
        const tokens: number[] = [];
        const t0 = now();
        let firstAt: number | null = null;
        const state = (): DemoUpdate => {
          const t = now();
          return {
            jobId: request.jobId,
            text: loaded.tokenizer.decode(tokens),
            tokens: tokens.length,
            promptTokens: ids.length,
            firstTokenMs: firstAt === null ? null : firstAt - t0,
            tokensPerSecond: firstAt !== null && tokens.length > 1 && t > firstAt ? ((tokens.length - 1) / (t - firstAt)) * 1000 : null,
          };
        };
        const gen = await loaded.generator.generate(ids, {
          maxNewTokens: request.maxNewTokens,
          sampling,
          seed: request.seed,
          adapter,
          signal: controller.signal,
          onToken: (token, index) => {
            if (index === 0) firstAt = now();
            tokens.push(token);
            onUpdate?.(state());
          },
        });
        const final = state();
        const verdict = request.target ? scoreAnswer(final.text, request.target, { prompt: request.prompt }) : null;
        return { ...final, input, stopped: gen.stopped, verdict, precision: describeInference(loaded.model.options) };
      });
    } finally {
      this.jobs.delete(request.jobId);
    }
  }

  cancel(jobId: string): void {
    this.jobs.get(jobId)?.abort();
  }
}
