import type { SavedDatasetInfo, TrlJsonlKind } from '../../worker/data-api';
import { engine } from '../../worker/client';
import { messageOf } from '../errors';

/** The datasets kept in IndexedDB (through the worker), for the Train page and for export. */
export class SavedDatasetsState {
  items = $state<SavedDatasetInfo[]>([]);
  status = $state<'loading' | 'ready' | 'error'>('loading');
  error = $state<string | null>(null);
  /** Per dataset: an action's error, shown in its row. */
  rowErrors = $state<Record<string, string>>({});
  busy = $state<Record<string, boolean>>({});
  /** Per dataset: the last export, as a Blob URL ready to download. */
  exports = $state<Record<string, { url: string; fileName: string; bytes: number }>>({});

  async refresh(): Promise<void> {
    try {
      this.items = await engine().listDatasets();
      this.status = 'ready';
      this.error = null;
    } catch (err) {
      this.status = 'error';
      this.error = `Saved datasets could not be read: ${messageOf(err)}`;
    }
  }

  /** Runs one action on a dataset; returns whether it succeeded (its error is kept for the row). */
  private async act(id: string, action: () => Promise<void>): Promise<boolean> {
    this.busy = { ...this.busy, [id]: true };
    const { [id]: _old, ...rest } = this.rowErrors;
    this.rowErrors = rest;
    try {
      await action();
      return true;
    } catch (err) {
      this.rowErrors = { ...this.rowErrors, [id]: messageOf(err) };
      return false;
    } finally {
      this.busy = { ...this.busy, [id]: false };
    }
  }

  rename(id: string, name: string): Promise<boolean> {
    return this.act(id, async () => {
      const updated = await engine().renameDataset(id, name);
      this.items = this.items.map((d) => (d.id === id ? updated : d));
    });
  }

  remove(id: string): Promise<boolean> {
    return this.act(id, async () => {
      await engine().deleteDataset(id);
      this.items = this.items.filter((d) => d.id !== id);
      this.forgetExport(id);
    });
  }

  /** Builds the JSONL in the worker and keeps a Blob URL for the download link. */
  exportJsonl(id: string, kind: TrlJsonlKind): Promise<boolean> {
    return this.act(id, async () => {
      const { fileName, blob } = await engine().exportDataset(id, kind);
      this.forgetExport(id);
      this.exports = { ...this.exports, [id]: { url: URL.createObjectURL(blob), fileName, bytes: blob.size } };
    });
  }

  private forgetExport(id: string): void {
    const old = this.exports[id];
    if (!old) return;
    URL.revokeObjectURL(old.url);
    const { [id]: _gone, ...rest } = this.exports;
    this.exports = rest;
  }
}
