import type { LinearShapes, LoraTarget } from '../../shared/lora';
import { AdapterStore } from '../adapters/store';
import { wrapPaperPrompt } from '../data/prompts';
import { AdapterFactors } from '../inspect/factors';
import { checkContrastiveOptions, ContrastiveError, generateContrastive, type ContrastDirection } from '../inspect/contrastive';
import { adapterIntruders, type IntruderResult, type IntruderSettings } from '../inspect/intruders';
import { adapterSpectra, type UpdateCell } from '../inspect/spectra';
import { LoraState } from '../model/phi2/lora-state';
import { withModel, type LoadedModel, type Session } from './session';

/**
 * What an adapter changed, three ways (the Adapters page's Inspect view).
 *  - Spectra: every module's update scaling·B·A (norm, singular values, effective rank) from the stored
 *    factors, and the cosine of two adapters' updates; needs no model on the GPU.
 *  - Intruder dimensions: top singular vectors of the loaded model's weights with and without the
 *    adapter, on the GPU, per module.
 *  - Contrastive generation: text the adapter makes likely and the base model does not (or the
 *    reverse), streamed.
 * Each long call has a jobId: progress arrives through its callback after every module or token, and
 * cancel(jobId) stops it at the next one (spectra and intruders then reject with an AbortError; a
 * contrastive run resolves with what it generated).
 */

export interface SpectraRequest {
  jobId: string;
  /** A stored adapter's id, and optionally a second one to compare with. */
  adapter: string;
  compareWith: string | null;
}

export interface IntrudersRequest {
  jobId: string;
  adapter: string;
  /** Modules to examine: 'all' the adapter adapts, one target module in every layer that has it, or a list. */
  modules: 'all' | LoraTarget | Array<{ layer: number; target: LoraTarget }>;
  settings: IntruderSettings;
}

export interface ContrastRequest {
  jobId: string;
  prompt: string;
  /** 'paper' sends `Instruct: {prompt}\nOutput:`; 'none' the prompt as it is. */
  wrapper: 'paper' | 'none';
  adapter: string;
  direction: ContrastDirection;
  samples: number;
  maxNewTokens: number;
  plausibility: number;
  temperature: number;
  seed: number;
}

export interface InspectProgress<T> {
  jobId: string;
  done: number;
  total: number;
  /** What the step just finished produced. */
  item: T;
}

export interface ContrastTokenView {
  token: number;
  /** The token's own text (bytes of a split character show as the replacement character). */
  text: string;
  score: number;
  logpExpert: number;
  logpAmateur: number;
}

export interface ContrastSampleView {
  /** Everything generated so far, decoded again each time (a character can span tokens). */
  text: string;
  tokens: ContrastTokenView[];
  stopped: 'stop-token' | 'max-tokens' | 'cancelled' | 'context-full' | null;
}

export interface ContrastUpdate {
  jobId: string;
  /** The exact text the model was given. */
  input: string;
  promptTokens: number;
  samples: ContrastSampleView[];
  done: boolean;
}

export class InspectInputError extends Error {
  override name = 'InspectInputError';
}

function shapesOf(loaded: LoadedModel): LinearShapes {
  return { hidden: loaded.dims.hidden, intermediate: loaded.dims.intermediate, layers: loaded.dims.layers };
}

export class AdapterInspection {
  private readonly jobs = new Map<string, AbortController>();

  constructor(private readonly session: Session) {}

  private start(jobId: string): AbortController {
    if (this.jobs.has(jobId)) throw new InspectInputError(`Job ${jobId} is already running.`);
    const controller = new AbortController();
    this.jobs.set(jobId, controller);
    return controller;
  }

  /** A stored adapter's factors, checked against the loaded model's shapes (`model`) or against its own tensors. */
  private async factors(id: string, model: LoadedModel | null): Promise<AdapterFactors> {
    const store = AdapterStore.over(await this.session.store());
    return new AdapterFactors(await store.files(id), model ? shapesOf(model) : undefined);
  }

  async spectra(request: SpectraRequest, onProgress?: (p: InspectProgress<UpdateCell>) => void): Promise<UpdateCell[]> {
    const controller = this.start(request.jobId);
    try {
      // The update map needs no model: an adapter for another model can be inspected too.
      const first = await this.factors(request.adapter, null);
      const second = request.compareWith ? await this.factors(request.compareWith, null) : null;
      return await adapterSpectra(first, second, {
        signal: controller.signal,
        onProgress: (p) => onProgress?.({ jobId: request.jobId, done: p.done, total: p.total, item: p.cell }),
      });
    } finally {
      this.jobs.delete(request.jobId);
    }
  }

  async intruders(request: IntrudersRequest, onProgress?: (p: InspectProgress<IntruderResult>) => void): Promise<IntruderResult[]> {
    const loaded = this.session.requireModel();
    const adapter = await this.factors(request.adapter, loaded);
    const target = typeof request.modules === 'string' && request.modules !== 'all' ? request.modules : null;
    if (target && !adapter.modules.some((m) => m.target === target)) throw new InspectInputError(`The adapter does not adapt ${target} in any layer.`);
    const controller = this.start(request.jobId);
    try {
      return await withModel(loaded.generator, 'the intruder analysis on the Adapters page', () =>
        adapterIntruders(loaded.model.gpu, loaded.model.params, adapter, request.settings, {
          modules:
            request.modules === 'all' ? undefined : target ? adapter.modules.filter((m) => m.target === target) : (request.modules as Array<{ layer: number; target: LoraTarget }>),
          signal: controller.signal,
          onProgress: (p) => onProgress?.({ jobId: request.jobId, done: p.done, total: p.total, item: p.result }),
        }).catch((err: unknown) => {
          // Settings and module choices the engine refuses are the user's to fix: say so plainly.
          throw err instanceof RangeError ? new InspectInputError(err.message) : err;
        }),
      );
    } finally {
      this.jobs.delete(request.jobId);
    }
  }

  async contrast(request: ContrastRequest, onUpdate?: (u: ContrastUpdate) => void): Promise<ContrastUpdate> {
    const loaded = this.session.requireModel();
    if (request.prompt.trim() === '') throw new InspectInputError('The prompt is empty: type one.');
    const input = request.wrapper === 'paper' ? wrapPaperPrompt(request.prompt) : request.prompt;
    const ids = loaded.tokenizer.encode(input);
    const options = {
      maxNewTokens: request.maxNewTokens,
      samples: request.samples,
      direction: request.direction,
      plausibility: request.plausibility,
      temperature: request.temperature,
      seed: request.seed,
      decodableVocab: loaded.generator.decodableVocab,
      endOfText: loaded.generator.endOfText,
    };
    try {
      checkContrastiveOptions(loaded.model, ids.length, options);
    } catch (err) {
      if (err instanceof ContrastiveError) throw new InspectInputError(err.message);
      throw err;
    }
    // A loaded adapter is used as it is on the GPU; a stored one is put there for this run only.
    const onGpu = this.session.loadedAdapters().includes(request.adapter);
    let temporary: LoraState | null = null;
    let lora: LoraState;
    if (onGpu) lora = this.session.adapter(request.adapter)!;
    else {
      const f = await this.factors(request.adapter, loaded);
      temporary = new LoraState(loaded.model.gpu, loaded.dims, f.settings);
      temporary.setWeights((name) => {
        const m = f.modules.find((x) => name.startsWith(`${x.path}.`))!;
        const factors = f.factors(m);
        return name.includes('lora_A') ? factors.A : factors.B;
      });
      lora = temporary;
    }
    const controller = this.start(request.jobId);
    const samples: ContrastSampleView[] = Array.from({ length: request.samples }, () => ({ text: '', tokens: [], stopped: null }));
    const chosen: number[][] = samples.map(() => []);
    const view = (done: boolean): ContrastUpdate => ({ jobId: request.jobId, input, promptTokens: ids.length, samples: samples.map((s) => ({ ...s, tokens: [...s.tokens] })), done });
    try {
      const result = await withModel(loaded.generator, 'contrastive generation on the Adapters page', () =>
        generateContrastive(loaded.model, lora, ids, {
          ...options,
          signal: controller.signal,
          onToken: (s, choice) => {
            chosen[s].push(choice.token);
            samples[s].text = loaded.tokenizer.decode(chosen[s]);
            samples[s].tokens.push({ token: choice.token, text: loaded.tokenizer.decode([choice.token]), score: choice.score, logpExpert: choice.logpExpert, logpAmateur: choice.logpAmateur });
          },
          // Every sample's token of a step arrives together: one update per step, not one per sample.
          onStep: () => onUpdate?.(view(false)),
        }),
      );
      result.forEach((r, s) => (samples[s].stopped = r.stopped));
      return view(true);
    } finally {
      this.jobs.delete(request.jobId);
      temporary?.destroy();
    }
  }

  cancel(jobId: string): void {
    this.jobs.get(jobId)?.abort();
  }
}
