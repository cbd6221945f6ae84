import { PAPER_TRAINING } from '../train/paper';

/**
 * Hard limits on what an upload may hold. They keep one tab's memory bounded (a 200 MB file becomes about
 * 400 MB of UTF-16 string plus the parsed rows) and are stated in the UI next to the file picker.
 */

/** Largest file the uploader reads. */
export const MAX_UPLOAD_BYTES = 200 * 1024 * 1024;

/** Most data rows read from one file; rows past this are not parsed and a file-level problem says so. */
export const MAX_ROWS = 1_000_000;

/** Longest mapped text field (input, output), in UTF-16 code units. Longer rows are reported as bad. */
export const MAX_FIELD_CHARS = 100_000;

/** How much of a bad line is kept in its problem report, so the user can see what went wrong. */
export const PROBLEM_EXCERPT_CHARS = 200;

/** Default sequence length for training rows: the paper's. */
export const DEFAULT_MAX_TOKENS = PAPER_TRAINING.maxLength;
