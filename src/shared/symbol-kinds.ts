/** The three kinds of arbitrary label symbols (engine/data/symbols.ts draws them): 77696, FOPZ, Zujib. */
export type SymbolKind = 'integer' | 'letters' | 'word';
export const SYMBOL_KINDS: readonly SymbolKind[] = ['integer', 'letters', 'word'];
