/**
 * Bounds on what the Data page may ask for, shared by the page (input ranges, messages) and the engine
 * (validation), in a module with no imports so the page can use them without pulling engine code.
 * The upload limits keep one tab's memory bounded (a 200 MB file becomes about 400 MB of UTF-16 string
 * plus the parsed rows) and are stated in the UI next to the file picker.
 */

/** Largest file the uploader reads. */
export const MAX_UPLOAD_BYTES = 200 * 1024 * 1024;

/** Most data rows read from one file; rows past this are not parsed and a file-level problem says so. */
export const MAX_ROWS = 1_000_000;

/** Longest mapped text field (input, output), in UTF-16 code units. Longer rows are reported as bad. */
export const MAX_FIELD_CHARS = 100_000;

/** How much of a bad line is kept in its problem report, so the user can see what went wrong. */
export const PROBLEM_EXCERPT_CHARS = 200;

/** Default sequence length for training rows: the paper's (PAPER_TRAINING.maxLength; test/unit/engine/train/paper.test.ts holds them equal). */
export const DEFAULT_MAX_TOKENS = 512;

/** Phi-2's context length: the longest training row worth asking for. */
export const MAX_TRAIN_TOKENS = 2048;
/** Rows one Hub load keeps (100 per request: 1,000 requests at most). */
export const MAX_HUB_ROWS = 100_000;
export const MAX_SYMBOL_PROMPTS = 100_000;
export const MAX_PER_CLASS = 32;
