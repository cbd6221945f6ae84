import { SYMBOL_KINDS, type SymbolKind } from '../../shared/symbol-kinds';
import { hashString32, type SeededRandom } from '../random';

/**
 * Arbitrary label symbols, as in the paper: each symbol is drawn uniformly from three kinds,
 *   integer: 10000-99999                         e.g. 77696
 *   letters: four random uppercase letters       e.g. FOPZ
 *   word:    a capitalised pronounceable word of five letters, consonant-vowel-consonant-vowel-consonant
 *            e.g. Zujib
 *
 * Held-out symbols: the whole symbol space is split in two by a hash of the lower-cased symbol, one half
 * for tuning data and the other for evaluation. The two sets are disjoint by construction, whatever the
 * seeds, so no evaluation prompt ever reuses a symbol the model was tuned on.
 */

export { SYMBOL_KINDS, type SymbolKind };

/** Which half of the symbol space: tuning data or evaluation prompts. */
export type SymbolSet = 'tuning' | 'evaluation';

const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const CONSONANTS = 'bcdfghjklmnpqrstvwxyz';
const VOWELS = 'aeiou';

export function symbolSetOf(symbol: string): SymbolSet {
  return (hashString32(symbol.toLowerCase()) & 1) === 0 ? 'tuning' : 'evaluation';
}

/** The kind a string has the shape of, or null if it is not a symbol. */
export function symbolKindOf(symbol: string): SymbolKind | null {
  if (/^[1-9][0-9]{4}$/.test(symbol)) return 'integer';
  if (/^[A-Z]{4}$/.test(symbol)) return 'letters';
  if (/^[BCDFGHJKLMNPQRSTVWXYZ][aeiou][bcdfghjklmnpqrstvwxyz][aeiou][bcdfghjklmnpqrstvwxyz]$/.test(symbol)) return 'word';
  return null;
}

export function randomSymbol(rng: SeededRandom, kind: SymbolKind): string {
  switch (kind) {
    case 'integer':
      return String(rng.int(10000, 99999));
    case 'letters':
      return Array.from({ length: 4 }, () => UPPER[rng.int(0, UPPER.length - 1)]).join('');
    case 'word': {
      const c = () => CONSONANTS[rng.int(0, CONSONANTS.length - 1)];
      const v = () => VOWELS[rng.int(0, VOWELS.length - 1)];
      return c().toUpperCase() + v() + c() + v() + c();
    }
  }
}

export interface DrawSymbolsOptions {
  /** Which half of the symbol space to draw from. */
  set: SymbolSet;
  /** Kinds to draw from, each symbol independently and uniformly (default: all three). */
  kinds?: readonly SymbolKind[];
  /** Strings a symbol must not equal, case-insensitively (the task's real label words, for instance). */
  avoid?: Iterable<string>;
}

/** `count` distinct symbols (distinct case-insensitively) from one half of the symbol space. */
export function drawSymbols(rng: SeededRandom, count: number, options: DrawSymbolsOptions): string[] {
  const kinds = options.kinds ?? SYMBOL_KINDS;
  if (kinds.length === 0) throw new Error('drawSymbols needs at least one symbol kind');
  if (!Number.isInteger(count) || count < 0) throw new Error(`symbol count must be a non-negative integer, got ${count}`);
  // The smallest kind (integers) has 90,000 symbols, about half in each set: a prompt's few never run out.
  if (count > 1000) throw new Error(`asked for ${count} symbols in one prompt; at most 1000 are supported`);
  const taken = new Set<string>();
  for (const a of options.avoid ?? []) taken.add(a.toLowerCase());
  const out: string[] = [];
  while (out.length < count) {
    const symbol = randomSymbol(rng, rng.pick(kinds));
    const key = symbol.toLowerCase();
    if (taken.has(key) || symbolSetOf(symbol) !== options.set) continue;
    taken.add(key);
    out.push(symbol);
  }
  return out;
}
