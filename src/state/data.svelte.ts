import { DEFAULT_MAX_TOKENS, MAX_TRAIN_TOKENS } from '../shared/data-limits';
import { engine } from '../worker/client';
import { messageOf } from './errors';
import { HubState } from './data/hub.svelte';
import { PrepareState } from './data/prepare.svelte';
import { SavedDatasetsState } from './data/saved.svelte';
import { SourceState } from './data/source.svelte';

/**
 * The Data page's state: rune classes filled from the worker, which holds the rows themselves.
 *   source   the open upload or Hub rows, its column mapping and validation report
 *   hub      loading a public Hugging Face dataset into `source`
 *   prepare  instruction-tuning rows or symbol-tuning prompts from `source` or the bundled pools
 *   saved    the prepared datasets kept in IndexedDB
 */
export class DataState {
  readonly prepare: PrepareState;
  readonly source: SourceState;
  readonly hub: HubState;
  readonly saved = new SavedDatasetsState();

  /** Whose tokenizer counts lengths, or null (characters). */
  tokenizer = $state<string | null>(null);
  tokenizerStatus = $state<'unknown' | 'downloading' | 'ready' | 'error'>('unknown');
  tokenizerError = $state<string | null>(null);

  constructor() {
    // The source reads the training length from the prepare settings (the histogram is read against it);
    // while that field holds no valid length, the default stands in.
    let prepare: PrepareState | null = null;
    this.source = new SourceState(
      () => {
        const v = prepare?.maxTokens;
        return v != null && Number.isInteger(v) && v >= 2 && v <= MAX_TRAIN_TOKENS ? v : DEFAULT_MAX_TOKENS;
      },
      (info, report) => prepare?.followSource(info.id, report.mapping),
    );
    this.prepare = prepare = new PrepareState(this.source);
    this.hub = new HubState(this.source);
  }

  /** Each visit of the page: saved datasets (the Train page may use them) and the tokenizer at hand (a model may have come). */
  start(): void {
    void this.saved.refresh();
    void this.checkTokenizer();
  }

  async checkTokenizer(): Promise<void> {
    try {
      this.tokenizer = await engine().tokenizerName();
      this.tokenizerStatus = 'ready';
    } catch (err) {
      this.tokenizerStatus = 'error';
      this.tokenizerError = messageOf(err);
    }
  }

  /** Fetches Phi-2's tokenizer files alone, then measures the open source again in tokens. */
  async downloadTokenizer(): Promise<void> {
    this.tokenizerStatus = 'downloading';
    this.tokenizerError = null;
    try {
      this.tokenizer = await engine().downloadTokenizer();
      this.tokenizerStatus = 'ready';
      if (this.source.report) await this.source.applyMapping();
    } catch (err) {
      this.tokenizerStatus = 'error';
      this.tokenizerError = messageOf(err);
    }
  }
}

export const dataState = new DataState();
