/**
 * A local import's files: what the user picked or dropped, narrowed to the checkpoint the importer
 * reads, with what is missing said before anything starts.
 */

/** Files of a checkpoint the importer reads; anything else in a chosen folder is left out. */
const MODEL_FILE = /^(config\.json|tokenizer\.json|tokenizer_config\.json|model\.safetensors\.index\.json|.+\.safetensors)$/;

/** A picked or dropped file with its path inside what was chosen ("phi-2/config.json", or just the name). */
export interface PickedFile {
  file: File;
  path: string;
}

export interface FileSelection {
  files: File[];
  /** The chosen folder's name (it names the stored model), or null for loose files. */
  folder: string | null;
  totalBytes: number;
  /** Paths left out: other files, and files below the model's own folder. */
  ignored: string[];
  /** What makes the selection unusable, or null. */
  problem: string | null;
  /** Present but optional: the tokenizer files missing (the model then cannot generate). */
  missingTokenizer: boolean;
}

/**
 * Picks a checkpoint's files out of what was chosen or dropped: the files the importer reads, from the
 * folder that holds config.json (a model folder often has subfolders with other .safetensors files).
 */
export function selectModelFiles(picked: PickedFile[]): FileSelection {
  const depth = (p: PickedFile) => p.path.split('/').length;
  const configs = picked.filter((p) => baseName(p.path) === 'config.json');
  const rootDepth = configs.length ? Math.min(...configs.map(depth)) : Math.min(...picked.map(depth));
  const rootDir = (p: PickedFile) => p.path.split('/').slice(0, -1).join('/');
  const root = configs.find((p) => depth(p) === rootDepth);
  const rootPath = root ? rootDir(root) : null;
  const kept: PickedFile[] = [];
  const ignored: string[] = [];
  for (const p of picked) {
    const inRoot = rootPath === null ? depth(p) === rootDepth : rootDir(p) === rootPath;
    if (inRoot && MODEL_FILE.test(baseName(p.path))) kept.push(p);
    else ignored.push(p.path);
  }
  const names = new Set(kept.map((p) => baseName(p.path)));
  const missing: string[] = [];
  if (!names.has('config.json')) missing.push('config.json');
  if (!names.has('model.safetensors.index.json') && !names.has('model.safetensors')) {
    missing.push('model.safetensors (or model.safetensors.index.json with its shards)');
  }
  const folder = rootPath ? (rootPath.split('/').pop() ?? null) : null;
  return {
    files: kept.map((p) => p.file),
    folder: folder || null,
    totalBytes: kept.reduce((a, p) => a + p.file.size, 0),
    ignored,
    problem: picked.length === 0 ? 'No files were chosen.' : missing.length ? `These are missing: ${missing.join(', ')}.` : null,
    missingTokenizer: !names.has('tokenizer.json'),
  };
}

function baseName(path: string): string {
  return path.split('/').pop() ?? path;
}
