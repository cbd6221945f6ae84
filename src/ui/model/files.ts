import type { PickedFile } from '../../state/model/files';

/** The id of the local import's folder button, which the download offers when the Hub cannot be reached. */
export const IMPORT_FOLDER_BUTTON = 'import-model-folder';

/**
 * Files from a file input (a folder picker gives each file its path inside the folder) and from a
 * drop, where folders arrive as directory entries to walk.
 */

export function filesFromInput(list: FileList | null | undefined): PickedFile[] {
  return Array.from(list ?? [], (file) => ({ file, path: file.webkitRelativePath || file.name }));
}

/** Everything dropped: loose files, and the files of dropped folders (recursively) with their paths. */
export async function filesFromDrop(data: DataTransfer): Promise<PickedFile[]> {
  // Entries must be taken synchronously, while the drop event is being dispatched.
  const entries = Array.from(data.items ?? [])
    .filter((item) => item.kind === 'file')
    .map((item) => item.webkitGetAsEntry?.() ?? null);
  if (entries.length === 0 || entries.some((e) => e === null)) return filesFromInput(data.files);
  const out: PickedFile[] = [];
  for (const entry of entries as FileSystemEntry[]) await walk(entry, entry.name, out);
  return out;
}

async function walk(entry: FileSystemEntry, path: string, out: PickedFile[]): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
    out.push({ file, path });
    return;
  }
  if (!entry.isDirectory) return;
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  // readEntries hands out a directory in batches (100 in Chromium) until it returns an empty one.
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) break;
    for (const child of batch) await walk(child, `${path}/${child.name}`, out);
  }
}
