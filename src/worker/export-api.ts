import { encodeGgufAdapter, ggufFileName, type GgufAdapterType } from '../engine/adapters/gguf';
import { AdapterStore } from '../engine/adapters/store';
import type { Engine } from '../engine/engine';
import type { Session } from '../engine/session';
import type { ExportedFile } from './adapters-api';

/**
 * Getting adapters out of the browser, in the formats other tools read: a GGUF LoRA adapter for
 * llama.cpp and Ollama. Errors are thrown with messages that say what to do; comlink carries them.
 */
export interface ExportApi {
  /** A stored adapter as one GGUF LoRA adapter file (F32 or F16 tensors). */
  exportAdapterGguf(id: string, type: GgufAdapterType): Promise<ExportedFile & { tensors: number; alpha: number }>;
}

class ExportWorkspace {
  constructor(
    private readonly engine: Pick<Engine, 'platform'>,
    private readonly session: Session,
  ) {}

  private async adapters(): Promise<AdapterStore> {
    return AdapterStore.over(await this.session.store());
  }

  async gguf(id: string, type: GgufAdapterType): Promise<ExportedFile & { tensors: number; alpha: number }> {
    const store = await this.adapters();
    const info = await store.get(id);
    const { bytes, summary } = encodeGgufAdapter(await store.files(id), { type, name: info.name });
    return { fileName: ggufFileName(info.id, type), blob: new Blob([bytes as BlobPart], { type: 'application/octet-stream' }), tensors: summary.tensors.length, alpha: summary.alpha };
  }
}

export function exportApi(engine: Pick<Engine, 'platform'>, session: Session): ExportApi {
  const w = new ExportWorkspace(engine, session);
  return {
    exportAdapterGguf: (id, type) => w.gguf(id, type),
  };
}
