import type { GpuRuntime } from '../../gpu/runtime';
import { parsePhiConfig, type PhiConfig } from '../../weights/config';
import { isFloatSource } from '../../weights/dtypes';
import { CheckpointError } from '../../weights/errors';
import { PhiLayout, storedDType, type QuantScheme } from '../../weights/layout';
import { RowCodec } from '../../weights/quantize';
import { readSafetensorsStream, type ByteSource, type SafetensorsHeader } from '../../weights/safetensors';
import { checkShardAgainstIndex, INDEX_FILE, parseShardIndex, SINGLE_FILE, type ShardIndex } from '../../weights/sharded';
import type { CheckpointSource } from '../../weights/source';
import { PhiWeightsWriter } from '../../weights/gpu-weights';
import { phi2ParamsFromWeights } from './build';
import type { Phi2Params } from './params';

/** Source rows are converted in pieces of about this many bytes: bounded memory, few GPU writes. */
const PIECE_BYTES = 4 << 20;

export interface DirectLoadProgress {
  file: string;
  bytesDone: number;
  bytesTotal: number | null;
}

/**
 * Streams a checkpoint from a source straight onto the GPU, quantising as it goes, without the
 * IndexedDB store: for the command line and tests. The app imports into the store first (so a reload
 * starts offline) and loads from there; both convert rows with the same RowCodec.
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

    for (const file of files) {
      const opened = await source.open(file, 0);
      let codec: RowCodec | null = null;
      let done = 0;
      for await (const event of readSafetensorsStream(opened.body, {
        file,
        fileSize: opened.size ?? undefined,
        pieceBytes: (t) => {
          const rowBytes = t.shape.length ? ((t.end - t.begin) / (t.shape.length === 1 ? 1 : t.shape[0])) : t.end - t.begin;
          return Math.max(rowBytes, Math.floor(PIECE_BYTES / rowBytes) * rowBytes) || 1;
        },
      })) {
        if (event.kind === 'header') continue; // checked above
        const { tensor, offset, bytes, last } = event;
        const spec = writer.layout.checkTensor(tensor, file);
        if (!spec) continue;
        if (offset === 0) {
          if (!isFloatSource(tensor.dtype)) throw new CheckpointError('tensor-dtype', `${tensor.name} is ${tensor.dtype}; weights must be F16, BF16, F32 or F64`, file, tensor.name);
          codec = new RowCodec({ file, tensor: tensor.name, source: tensor.dtype, stored: storedDType(spec, scheme), cols: spec.shape[spec.shape.length - 1] });
        }
        const rowStart = offset / codec!.sourceRowBytes;
        const encoded = codec!.encode(bytes, rowStart);
        await writer.write(spec.key, rowStart, encoded.data, encoded.scales);
        done += bytes.length;
        if (last) onProgress?.({ file, bytesDone: done, bytesTotal: opened.size });
      }
    }
    return { config, params: phi2ParamsFromWeights(await writer.finish()) };
  } catch (err) {
    writer.destroy();
    throw err;
  }
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
