import type { ModelSource } from '../store/schema';
import type { ByteSource } from './safetensors';

/** A file's bytes from some offset on, as a source delivered them. */
export interface OpenedFile {
  body: ByteSource;
  /** Where `body` starts in the file: the offset asked for, or 0 when the source could not seek (a server that ignored Range). */
  offset: number;
  /** The whole file's size when the source said. */
  size: number | null;
  /** What identifies this version of the file (an HTTP ETag, a local file's size and date); null when unknown. */
  etag: string | null;
}

/**
 * Where a checkpoint's files come from: the Hub over HTTP, or files the user picked. The importer
 * reads everything through this, so both take the same path.
 */
export interface CheckpointSource {
  /** Recorded in the model's manifest. */
  readonly description: ModelSource;
  /** A name to show: "microsoft/phi-2", a folder's name. */
  readonly displayName: string;
  /** Whether bytes travel over a network (then a short or dropped body is worth retrying). */
  readonly remote: boolean;
  /** A small file's text, or null when the source has no such file. */
  readText(file: string, signal?: AbortSignal): Promise<string | null>;
  /** A file's bytes from `offset` to its end. */
  open(file: string, offset: number, signal?: AbortSignal): Promise<OpenedFile>;
}
