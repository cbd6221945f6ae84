import type { Platform } from '../platform/types';
import { TokenizerFinder } from '../tokenizer/finder';
import { LengthMeter } from './lengths';
import { DataPreparation } from './preparation';
import { SavedDatasets } from './saved';
import { DataSources } from './sources';

/**
 * Everything the Data page asks of the engine, over one platform: the open source and its validation
 * (sources.ts), preparing training data from it or from the bundled pools (preparation.ts), the saved
 * datasets (saved.ts), and lengths in tokens with whichever tokenizer is at hand (lengths.ts).
 *
 * Flow: a *source* (an uploaded file or Hub rows) is mapped to input/output/label columns, which gives a
 * validation report; a *prepared* dataset (instruction-tuning rows or symbol-tuning prompts, with the
 * template applied) is built from a source or from the bundled pools; a prepared dataset is *saved* under
 * a name, for the Train page and for export. A saved dataset's rows are {prompt, completion} pairs whose
 * concatenation is exactly the templated text (TRL's prompt-completion form, tokenizer-free); the Train
 * page tokenises them with train/examples.ts.
 */
export class DataWorkspace {
  readonly saved: SavedDatasets;
  readonly lengths: LengthMeter;
  readonly sources: DataSources;
  readonly preparation: DataPreparation;

  constructor(platform: Pick<Platform, 'fetch' | 'indexedDB' | 'storage'>) {
    this.saved = new SavedDatasets(platform);
    this.lengths = new LengthMeter(new TokenizerFinder(platform, () => this.saved.store()));
    this.sources = new DataSources(platform, this.lengths);
    this.preparation = new DataPreparation(platform, this.sources, this.lengths, this.saved);
  }
}
