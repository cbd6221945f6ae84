import type { NamedTokenizer, TokenizerFinder } from '../tokenizer/finder';
import { lengthStats, type TokenLengthStats } from './summary';

/**
 * Lengths of rows for the Data page's histograms and counts: in tokens with the best tokenizer at hand
 * (tokenizer/finder.ts), else in characters, which is the documented fallback.
 */

export interface LengthReport {
  unit: 'tokens' | 'characters';
  /** Whose tokenizer counted (unit 'tokens'). */
  tokenizer: string | null;
  /** What was measured, for the caption. */
  measured: string;
  /** With unit 'characters', `limit` is Infinity and `overLimit` 0: characters cannot say what is cut. */
  stats: TokenLengthStats;
  /** Only the first `stats.count` rows were measured. */
  sampled: boolean;
}

export const HISTOGRAM_BINS = 24;

export class LengthMeter {
  constructor(readonly tokenizers: TokenizerFinder) {}

  /** The tokenizer lengths are counted with, or null (lengths are then in characters). */
  async tokenizer(): Promise<NamedTokenizer | null> {
    try {
      return await this.tokenizers.find();
    } catch {
      return null; // counting in characters is the documented fallback
    }
  }

  /** Lengths of the first `limit` texts, in tokens when a tokenizer is at hand, else in characters. */
  async measure(
    n: number,
    textOf: (i: number) => string,
    maxTokens: number,
    limit: number,
    measured: string,
    onProgress?: (done: number, total: number) => void,
  ): Promise<LengthReport> {
    const count = Math.min(n, limit);
    const tok = await this.tokenizer();
    const lengths = new Array<number>(count);
    for (let i = 0; i < count; i++) {
      lengths[i] = tok ? tok.tokenizer.encode(textOf(i)).length : textOf(i).length;
      if (onProgress && tok && (i + 1) % 500 === 0) onProgress(i + 1, count);
    }
    const stats = lengthStats(lengths, tok ? maxTokens : Number.POSITIVE_INFINITY, HISTOGRAM_BINS);
    return { unit: tok ? 'tokens' : 'characters', tokenizer: tok?.name ?? null, measured, stats, sampled: count < n };
  }
}
