import type { ModelSource } from '../store/schema';
import { CheckpointError } from './errors';
import { INDEX_FILE, SINGLE_FILE } from './sharded';
import type { CheckpointSource, OpenedFile } from './source';

/**
 * Local files (a file picker, a dropped folder) as a checkpoint source. Anything Blob-like works:
 * a File, a Blob with a name, or a test's stand-in. Paths ("phi-2/config.json" from a dropped folder)
 * are reduced to their file names, which must then be unique.
 */
export interface FileLike {
  readonly name: string;
  readonly size: number;
  stream(): ReadableStream<Uint8Array>;
  /** Blob.slice: lets a resumed import start mid-file without reading what came before. */
  slice?(start?: number, end?: number): { stream(): ReadableStream<Uint8Array> };
  text?(): Promise<string>;
  readonly lastModified?: number;
  readonly webkitRelativePath?: string;
}

export function baseName(path: string): string {
  const parts = path.split(/[\\/]/);
  return parts[parts.length - 1];
}

export class FilesSource implements CheckpointSource {
  readonly description: ModelSource;
  readonly displayName: string;
  readonly remote = false;
  private readonly byName = new Map<string, FileLike>();

  constructor(files: Iterable<FileLike>, displayName?: string) {
    for (const f of files) {
      const name = baseName(f.name);
      if (this.byName.has(name)) {
        throw new CheckpointError('files-incomplete', `Two of the chosen files are named ${name}; choose one checkpoint's files at a time.`, name);
      }
      this.byName.set(name, f);
    }
    const names = [...this.byName.keys()].sort();
    this.description = { kind: 'files', names };
    const folder = [...this.byName.values()].map((f) => f.webkitRelativePath?.split('/')[0]).find((p) => p);
    this.displayName = displayName ?? folder ?? 'local files';
    const missing: string[] = [];
    if (!this.byName.has('config.json')) missing.push('config.json');
    if (!this.byName.has(INDEX_FILE) && !this.byName.has(SINGLE_FILE)) missing.push(`${INDEX_FILE} (with its shards) or ${SINGLE_FILE}`);
    if (missing.length) {
      throw new CheckpointError(
        'files-incomplete',
        `The chosen files lack ${missing.join(' and ')}. Choose the model's folder: config.json and its .safetensors files ` +
          `(found: ${names.join(', ') || 'nothing'}).`,
      );
    }
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  async readText(file: string): Promise<string | null> {
    const f = this.byName.get(file);
    if (!f) return null;
    if (f.text) return f.text();
    return new Response(f.stream()).text();
  }

  async open(file: string, offset: number): Promise<OpenedFile> {
    const f = this.byName.get(file);
    if (!f) {
      throw new CheckpointError('files-incomplete', `${file} is needed but was not among the chosen files; choose the whole model folder.`, file);
    }
    // Size and modification time tell a re-picked file from a different one when an import resumes.
    const etag = `${f.size}-${f.lastModified ?? 0}`;
    if (offset > 0 && f.slice) return { body: f.slice(offset).stream(), offset, size: f.size, etag };
    return { body: f.stream(), offset: 0, size: f.size, etag };
  }
}
