import { openAsBlob, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FilesSource, type FileLike } from '../engine/weights/files';

/** A directory's files as Blob-backed FileLikes (streamed from disk, never read whole). */
export async function directoryFiles(dir: string): Promise<FileLike[]> {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => statSync(join(dir, n)).isFile());
  } catch (err) {
    throw new Error(`cannot read the model directory ${dir}: ${(err as Error).message}`);
  }
  return Promise.all(
    names.map(async (name) => {
      const blob = await openAsBlob(join(dir, name));
      return {
        name,
        size: blob.size,
        stream: () => blob.stream() as ReadableStream<Uint8Array>,
        slice: (start?: number, end?: number) => blob.slice(start, end) as unknown as { stream(): ReadableStream<Uint8Array> },
        text: () => blob.text(),
      };
    }),
  );
}

/** A checkpoint directory laid out like the Hub's, as the engine's file source. */
export async function directorySource(dir: string): Promise<FilesSource> {
  return new FilesSource(await directoryFiles(dir), dir);
}
