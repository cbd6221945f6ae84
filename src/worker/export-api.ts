import type { Engine } from '../engine/engine';
import type { GgufAdapterType } from '../engine/adapters/gguf';
import type { PublishProgress, PublishResult } from '../engine/adapters/publish';
import type { ExportedFile } from '../engine/session/adapters';
import { Exports, type PublishRequest } from '../engine/session/exports';
import type { Session } from '../engine/session/session';
import type { TrainPlan } from '../shared/train-plan';

export type { PublishProgress, PublishResult } from '../engine/adapters/publish';
export type { PublishRequest } from '../engine/session/exports';

/**
 * Getting work out of the browser: comlink's face of the engine's Exports (engine/session/exports.ts),
 * a GGUF LoRA adapter for llama.cpp and Ollama, a model repository on the Hugging Face Hub, and a
 * training run as a folder that runs on a cluster. Errors are thrown with messages that say what to do;
 * comlink carries them.
 */
export interface ExportApi {
  /** A stored adapter as one GGUF LoRA adapter file (F32 or F16 tensors). */
  exportAdapterGguf(id: string, type: GgufAdapterType): Promise<ExportedFile & { tensors: number; alpha: number }>;
  /** The model card a publication would carry (to show before publishing). */
  adapterModelCard(id: string, request: Pick<PublishRequest, 'repo' | 'baseModel'>): Promise<string>;
  /**
   * Publishes a stored adapter as a Hub model repository (card + PEFT files). The token is used for this
   * call only: neither the worker nor the store keeps it.
   */
  publishAdapter(id: string, request: PublishRequest, onProgress?: (p: PublishProgress) => void): Promise<PublishResult>;
  cancelPublish(): Promise<void>;
  /**
   * The Train page's run as a folder for TRL + PEFT under accelerate (one GPU, DDP, DeepSpeed ZeRO-2,
   * FSDP), zipped: the prepared rows, train.py with the run's settings, the configs and a README.
   */
  exportClusterRun(plan: TrainPlan): Promise<ExportedFile & { rows: number; baseModel: string }>;
}

export function exportApi(engine: Pick<Engine, 'platform'>, session: Session): ExportApi {
  const w = new Exports(engine, session);
  return {
    exportAdapterGguf: (id, type) => w.gguf(id, type),
    adapterModelCard: (id, request) => w.card(id, request),
    publishAdapter: (id, request, onProgress) => w.publish(id, request, onProgress),
    cancelPublish: async () => w.cancelPublish(),
    exportClusterRun: (plan) => w.clusterRun(plan),
  };
}
