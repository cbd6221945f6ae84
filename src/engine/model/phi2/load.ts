import type { GpuRuntime } from '../../gpu/runtime';
import { parsePhiConfig, type PhiConfig } from '../../weights/config';
import { CheckpointError } from '../../weights/errors';
import { PhiLayout, type QuantScheme } from '../../weights/layout';
import { importModel, type ImportTarget } from '../../weights/import';
import type { ModelManifest, TensorEntry, TensorRecord } from '../../store/schema';
import { readSafetensorsStream, type ByteSource, type SafetensorsHeader } from '../../weights/safetensors';
import { checkShardAgainstIndex, INDEX_FILE, parseShardIndex, SINGLE_FILE, type ShardIndex } from '../../weights/sharded';
import type { CheckpointSource } from '../../weights/source';
import { PhiWeightsWriter } from '../../weights/gpu-weights';
import { phi2ParamsFromWeights } from './build';
import type { Phi2Params } from './params';

export interface DirectLoadProgress {
  file: string;
  bytesDone: number;
  bytesTotal: number | null;
}

/**
 * Streams a checkpoint from a source straight onto the GPU, without the IndexedDB store: for the
 * command line and tests. It is the app's importer (weights/import.ts: the same header checks, row
 * conversion and records) with the GPU as its target instead of the store; the app imports into the
 * store first (so a reload starts offline) and loads from there.
 */
export async function loadPhi2FromSource(
  gpu: GpuRuntime,
  source: CheckpointSource,
  scheme: QuantScheme,
  onProgress?: (p: DirectLoadProgress) => void,
): Promise<{ config: PhiConfig; params: Phi2Params }> {
  const configText = await source.readText('config.json');
  if (configText === null) throw new CheckpointError('files-incomplete', `${source.displayName} has no config.json`, 'config.json');
  const config = parsePhiConfig(configText);
  const indexText = await source.readText(INDEX_FILE);
  const index: ShardIndex | null = indexText === null ? null : parseShardIndex(indexText);
  const files = index ? [...index.shards] : [SINGLE_FILE];
  // Nothing is allocated from config.json until every header agrees with it: each file's tensors
  // named and shaped as the config implies, and present in the file's bytes.
  const layout = new PhiLayout(config);
  if (index) layout.checkNames(index.weightMap.keys(), INDEX_FILE, true);
  for (const file of files) {
    const opened = await source.open(file, 0);
    const header = await readHeaderOnly(opened.body, file, opened.size ?? undefined);
    if (index) checkShardAgainstIndex(index, file, header.tensors.map((t) => t.name));
    else layout.checkNames(header.tensors.map((t) => t.name), file, true);
    for (const t of header.tensors) layout.checkTensor(t, file);
  }
  const writer = new PhiWeightsWriter(gpu, config, scheme);
  try {
    await importModel({
      source,
      store: new GpuImportTarget(writer),
      scheme,
      checkQuota: false,
      onProgress: (p) => {
        if (p.file && p.file.bytesTotal !== null && p.file.bytesDone === p.file.bytesTotal) onProgress?.({ file: p.file.name, bytesDone: p.file.bytesDone, bytesTotal: p.file.bytesTotal });
      },
    });
    return { config, params: phi2ParamsFromWeights(await writer.finish()) };
  } catch (err) {
    writer.destroy();
    throw err;
  }
}

/**
 * The importer's target when the GPU is the destination: the manifest and tensor entries live in
 * memory for the one import, and each record goes straight into the weights writer's buffers.
 */
class GpuImportTarget implements ImportTarget {
  private manifest: ModelManifest | undefined;
  private readonly entries = new Map<string, TensorEntry>();

  constructor(private readonly writer: PhiWeightsWriter) {}

  async getModel(): Promise<ModelManifest | undefined> {
    return this.manifest;
  }
  async putModel(manifest: ModelManifest): Promise<void> {
    this.manifest = manifest;
  }
  async putModelWithTensors(manifest: ModelManifest, entries: TensorEntry[]): Promise<void> {
    this.manifest = manifest;
    for (const e of entries) this.entries.set(e.key, e);
  }
  async getTensors(): Promise<TensorEntry[]> {
    return [...this.entries.values()];
  }
  async writeRecord(entry: TensorEntry, record: TensorRecord): Promise<TensorEntry> {
    await this.writer.write(entry.key, record.rowStart, record.data, record.scales);
    const updated = { ...entry, recordsDone: record.index + 1, checksums: [...entry.checksums.slice(0, record.index), record.checksum], complete: record.index + 1 === entry.recordCount };
    this.entries.set(entry.key, updated);
    return updated;
  }
  async resetTensors(manifest: ModelManifest, _keys: string[], entries: TensorEntry[]): Promise<void> {
    // A source that changed mid-read starts its file over: the rows are written again, over the same buffers.
    await this.putModelWithTensors(manifest, entries);
  }
  async deleteModel(): Promise<void> {
    this.manifest = undefined;
    this.entries.clear();
  }
  async putTokenizer(): Promise<void> {}
  async requestPersistence(): Promise<boolean> {
    return false;
  }
  async checkSpace(): Promise<void> {}
}

/** A safetensors file's header (checked against the file's size when known), leaving the rest unread. */
async function readHeaderOnly(body: ByteSource, file: string, fileSize: number | undefined): Promise<SafetensorsHeader> {
  const events = readSafetensorsStream(body, { file, fileSize });
  try {
    const first = await events.next();
    if (first.done || first.value.kind !== 'header') throw new CheckpointError('files-incomplete', `${file} ended before its header`, file);
    return first.value.header;
  } finally {
    await events.return(undefined); // cancels the source
  }
}
