/** The three kinds of arbitrary label symbols (engine/data/symbols.ts draws them): 77696, FOPZ, Zujib. */
export type SymbolKind = 'integer' | 'letters' | 'word';
export const SYMBOL_KINDS: readonly SymbolKind[] = ['integer', 'letters', 'word'];

/** Exemplars per class in a symbol-tuning prompt unless the user chooses otherwise: the paper's "four shots". */
export const SYMBOL_TUNING_PER_CLASS = 4;
