/**
 * Bounds on what the Data page asks of the worker, shared by the page (input ranges, messages) and the
 * worker (validation), in a module with no imports so the page can use them without pulling worker code.
 */

/** Phi-2's context length: the longest training row worth asking for. */
export const MAX_TRAIN_TOKENS = 2048;
/** Rows one Hub load keeps (100 per request: 1,000 requests at most). */
export const MAX_HUB_ROWS = 100_000;
export const MAX_SYMBOL_PROMPTS = 100_000;
export const MAX_PER_CLASS = 32;
