import { SYMBOL_KINDS, type SymbolKind } from '../shared/symbol-kinds';
import type { ClassificationFormat } from '../engine/data/prompts';
import { Comlink, engine } from '../worker/client';
import type { DemoDataset, DemoPrompt, DemoResult, DemoUpdate } from '../worker/demo-api';
import type { EvaluationTargets } from '../worker/eval-api';
import { messageOf } from './errors';

/**
 * The Demo page's state: one live few-shot prompt (built from a bundled pool, then freely edited), the
 * sampling settings, and one or two output columns (the base model and an adapter side by side) that
 * fill token by token. The columns run one after the other: the model serves one generation at a time.
 */

export const DEMO_FORMATS: ReadonlyArray<{ id: ClassificationFormat; label: string }> = [
  { id: 'instruction_label', label: 'Instruction + label' },
  { id: 'instruction_symbol', label: 'Instruction + symbol' },
  { id: 'no_instruction_symbol', label: 'No instruction + symbol' },
  { id: 'flipped', label: 'Flipped labels' },
];

export interface DemoColumn {
  /** null: the base model; otherwise a loaded adapter's id. */
  adapter: string | null;
  status: 'idle' | 'waiting' | 'running' | 'done' | 'cancelled' | 'failed';
  text: string;
  update: DemoUpdate | null;
  result: DemoResult | null;
  error: string | null;
  /** performance.now() when this column started generating: the page counts the wait for the first token from it. */
  startedAt: number | null;
}

function dataUrl(): string {
  return new URL('data/', globalThis.location?.href ?? 'http://localhost/').href;
}

const idle = (adapter: string | null): DemoColumn => ({ adapter, status: 'idle', text: '', update: null, result: null, error: null, startedAt: null });

export class DemoState {
  datasets = $state.raw<DemoDataset[]>([]);
  datasetsError = $state<string | null>(null);
  targets = $state.raw<EvaluationTargets | null>(null);

  dataset = $state('teh');
  format = $state<ClassificationFormat>('instruction_symbol');
  /** Chooses the query, the exemplars and their order. */
  seed = $state<number | null>(0);
  perClass = $state<number | null>(4);
  symbolMode = $state<'random' | 'manual'>('random');
  symbolKinds = $state<SymbolKind[]>([...SYMBOL_KINDS]);
  symbolSeed = $state<number | null>(0);
  manualSymbols = $state<string[]>(['', '']);

  /** The prompt as built, and as it stands in the editor (the user may change it). */
  built = $state.raw<DemoPrompt | null>(null);
  prompt = $state('');
  buildError = $state<string | null>(null);
  building = $state(false);
  tokenCount = $state<number | null>(null);

  wrapper = $state<'paper' | 'none'>('paper');
  maxNewTokens = $state<number | null>(50);
  sampling = $state<'greedy' | 'sample'>('greedy');
  temperature = $state<number | null>(0.7);
  topK = $state<number | null>(40);
  topP = $state<number | null>(0.95);
  samplingSeed = $state<number | null>(0);

  /** Left column: base model or adapter; right column: another (or none). */
  left = $state<string | null>(null);
  right = $state<string | null | 'none'>('none');
  columns = $state<DemoColumn[]>([]);
  running = $state(false);
  runError = $state<string | null>(null);
  private jobId: string | null = null;
  private stopRequested = false;
  private started = false;
  private countTimer: ReturnType<typeof setTimeout> | null = null;

  start(): void {
    if (!this.started) {
      this.started = true;
      void this.loadDatasets();
    }
    void this.refreshTargets();
  }

  async loadDatasets(): Promise<void> {
    try {
      this.datasets = await engine().demoDatasets(dataUrl());
      this.datasetsError = null;
      if (!this.built) await this.build();
    } catch (err) {
      this.datasetsError = `The bundled datasets could not be loaded: ${messageOf(err)}`;
    }
  }

  async refreshTargets(): Promise<void> {
    try {
      const t = await engine().evaluationTargets();
      this.targets = t;
      if (this.left !== null && !t.adapters.includes(this.left)) this.left = null;
      if (this.right !== 'none' && this.right !== null && !t.adapters.includes(this.right)) this.right = 'none';
      this.scheduleCount();
    } catch (err) {
      this.runError = messageOf(err);
    }
  }

  get usesSymbols(): boolean {
    return this.format === 'instruction_symbol' || this.format === 'no_instruction_symbol';
  }

  get classCount(): number {
    const d = this.datasets.find((x) => x.id === this.dataset);
    return d ? Object.keys(d.labels).length : 2;
  }

  /** Builds the prompt from the pool; replaces whatever is in the editor. */
  async build(): Promise<void> {
    const seed = this.seed;
    const symbolSeed = this.symbolSeed;
    if (seed === null || !Number.isSafeInteger(seed) || seed < 0) {
      this.buildError = 'The seed must be a whole number of 0 or more.';
      return;
    }
    if (this.usesSymbols && this.symbolMode === 'random' && (symbolSeed === null || !Number.isSafeInteger(symbolSeed) || symbolSeed < 0)) {
      this.buildError = 'The symbol seed must be a whole number of 0 or more.';
      return;
    }
    this.building = true;
    try {
      const built = await engine().buildDemoPrompt({
        dataUrl: dataUrl(),
        dataset: this.dataset,
        format: this.format,
        seed,
        perClass: this.perClass ?? 4,
        symbols:
          this.symbolMode === 'manual'
            ? { mode: 'manual', symbols: this.manualSymbols.slice(0, this.classCount) }
            : { mode: 'random', kinds: [...this.symbolKinds], seed: symbolSeed ?? 0 },
      });
      this.built = built;
      this.prompt = built.prompt;
      this.buildError = null;
      this.scheduleCount();
    } catch (err) {
      this.buildError = messageOf(err);
    } finally {
      this.building = false;
    }
  }

  /** "labels Hate / No Hate", or what each symbol stands for: "4823 = Hate, FOPZ = No Hate". */
  get labelLegend(): string {
    const b = this.built;
    if (!b) return '';
    return b.labels.every((l, k) => l === b.classWords[k]) ? `labels ${b.labels.join(' / ')}` : b.labels.map((l, k) => `${l} = ${b.classWords[k]}`).join(', ');
  }

  get edited(): boolean {
    return this.built !== null && this.prompt !== this.built.prompt;
  }

  /** The target to score against: only while the prompt is the one built (an edited prompt may ask something else). */
  get target(): string | null {
    return this.built && !this.edited ? this.built.target : null;
  }

  scheduleCount(): void {
    if (this.countTimer) clearTimeout(this.countTimer);
    this.countTimer = setTimeout(async () => {
      try {
        this.tokenCount = await engine().demoTokenCount(this.prompt, this.wrapper);
      } catch {
        this.tokenCount = null;
      }
    }, 250);
  }

  /** Why Run is not possible now, or null. */
  get problem(): string | null {
    if (!this.targets?.model) return 'No model is on the GPU: load one on the Model page.';
    if (this.prompt.trim() === '') return 'The prompt is empty.';
    const m = this.maxNewTokens;
    if (m === null || !Number.isInteger(m) || m < 1 || m > 512) return 'Max new tokens must be a whole number from 1 to 512.';
    if (this.sampling === 'sample') {
      const t = this.temperature;
      if (t === null || !(t > 0) || t > 5) return 'Temperature must be above 0 and at most 5 (greedy decoding is the other choice).';
      if (this.topK === null || !Number.isInteger(this.topK) || this.topK < 0) return 'Top-k must be a whole number; 0 keeps every token.';
      if (this.topP === null || !(this.topP > 0) || this.topP > 1) return 'Top-p must be above 0 and at most 1.';
      if (this.samplingSeed === null || !Number.isSafeInteger(this.samplingSeed) || this.samplingSeed < 0) return 'The sampling seed must be a whole number of 0 or more.';
    }
    if (this.right !== 'none' && this.right === this.left) return 'The two columns show the same model: choose another for one of them.';
    return null;
  }

  async run(): Promise<void> {
    if (this.running || this.problem) return;
    this.running = true;
    this.stopRequested = false;
    this.runError = null;
    const models: Array<string | null> = this.right === 'none' ? [this.left] : [this.left, this.right];
    this.columns = models.map((m) => ({ ...idle(m), status: 'waiting' }));
    const sampling =
      this.sampling === 'greedy'
        ? { temperature: 0, topK: 0, topP: 1 }
        : { temperature: this.temperature!, topK: this.topK!, topP: this.topP! };
    try {
      for (let k = 0; k < models.length; k++) {
        if (this.stopRequested) {
          this.columns[k] = { ...this.columns[k], status: 'cancelled' };
          continue;
        }
        const jobId = crypto.randomUUID();
        this.jobId = jobId;
        this.columns[k] = { ...this.columns[k], status: 'running', startedAt: performance.now() };
        try {
          const result = await engine().runDemo(
            {
              jobId,
              prompt: this.prompt,
              wrapper: this.wrapper,
              adapter: models[k],
              maxNewTokens: this.maxNewTokens!,
              sampling,
              seed: this.sampling === 'greedy' ? 0 : this.samplingSeed!,
              target: this.target,
            },
            Comlink.proxy((u: DemoUpdate) => {
              if (u.jobId === this.jobId) this.columns[k] = { ...this.columns[k], text: u.text, update: u };
            }),
          );
          this.columns[k] = { ...this.columns[k], status: result.stopped === 'cancelled' ? 'cancelled' : 'done', text: result.text, update: result, result };
        } catch (err) {
          this.columns[k] = { ...this.columns[k], status: 'failed', error: messageOf(err) };
        }
      }
    } finally {
      this.jobId = null;
      this.running = false;
    }
  }

  async cancel(): Promise<void> {
    this.stopRequested = true;
    if (this.jobId) await engine().cancelDemo(this.jobId);
  }
}

export const demoState = new DemoState();
