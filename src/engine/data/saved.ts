import type { Platform } from '../platform/types';
import { UserDataStore, type SavedDatasetInfo, type TrainingExample } from '../store/datasets';
import { type TrlJsonlKind, toTrlJsonl } from './export';
import type { InstructionExample } from '../../shared/template';

/**
 * The datasets saved on the Data page for the Train page, over the user-data database (store/datasets.ts),
 * which is opened once and opened again after a failed open.
 */

export interface TrainingDataset {
  info: SavedDatasetInfo;
  rows: TrainingExample[];
}

export class SavedDatasets {
  private userData: Promise<UserDataStore> | null = null;

  constructor(private readonly platform: Pick<Platform, 'indexedDB'>) {}

  store(): Promise<UserDataStore> {
    if (!this.userData) {
      const opening = UserDataStore.open(this.platform.indexedDB);
      this.userData = opening;
      opening.catch(() => {
        if (this.userData === opening) this.userData = null;
      });
    }
    return this.userData;
  }

  async save(info: SavedDatasetInfo, rows: readonly TrainingExample[]): Promise<SavedDatasetInfo> {
    return (await this.store()).save(info, rows);
  }

  async list(): Promise<SavedDatasetInfo[]> {
    return (await this.store()).list();
  }

  async get(id: string): Promise<TrainingDataset> {
    const store = await this.store();
    const info = await store.info(id);
    return { info, rows: await store.rows(id) };
  }

  async rename(id: string, name: string): Promise<SavedDatasetInfo> {
    return (await this.store()).rename(id, name);
  }

  async delete(id: string): Promise<void> {
    await (await this.store()).delete(id);
  }

  /** JSONL for TRL/PEFT: 'text' ({"text"}, loss on everything) or 'prompt-completion'. */
  async export(id: string, kind: TrlJsonlKind): Promise<{ fileName: string; blob: Blob }> {
    const { info, rows } = await this.get(id);
    // prompt + completion is the templated text, so the identity template reproduces it exactly.
    const examples: InstructionExample[] = rows.map((r) => ({ question: r.prompt, response: r.completion }));
    const jsonl = toTrlJsonl(examples, kind, '{question}{response}');
    const slug = info.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'dataset';
    return { fileName: `${slug}.${kind}.jsonl`, blob: new Blob([jsonl], { type: 'application/x-ndjson' }) };
  }
}
