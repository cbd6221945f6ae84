/**
 * Weights: safetensors reading and writing, the Phi config and name map, int8/F16 conversion, import
 * from the Hub or local files into the store, and upload from the store to the GPU.
 */
export { parsePhiConfig, type PhiConfig } from './config';
export { crc32 } from '../store/crc32';
export {
  F16_TO_NUMBER,
  SAFETENSORS_DTYPE_BITS,
  bf16BitsToNumber,
  numberToF16Bits,
  type FloatSourceDType,
  type SafetensorsDType,
} from './dtypes';
export {
  CheckpointError,
  HubError,
  SafetensorsError,
  WeightsError,
  type CheckpointErrorCode,
  type HubErrorCode,
  type SafetensorsErrorCode,
} from './errors';
export { FilesSource, type FileLike } from './files';
export { HubSource, checkHubSettings, hubFileUrl } from './hub';
export {
  RECORD_BYTES,
  TOKENIZER_FILES,
  defaultModelId,
  importModel,
  modelWriteLock,
  planTensorEntry,
  type ImportOptions,
  type ImportTarget,
} from './import';
export {
  LINEAR_NAMES,
  PhiLayout,
  QUANT_SCHEMES,
  phiParamSpecs,
  storedBytes,
  storedDType,
  type LinearName,
  type ParamSpec,
  type QuantScheme,
  type StoredDType,
} from './layout';
export { RateMeter, type ImportProgress, type TransferProgress } from './progress';
export { RowCodec, type EncodedRows } from './quantize';
export { DEFAULT_RETRY, type RetryPolicy } from './retry';
export {
  MAX_HEADER_BYTES,
  decodeFloats,
  parseSafetensors,
  parseSafetensorsHeader,
  readHeaderLength,
  readSafetensorsStream,
  type ByteSource,
  type SafetensorsEvent,
  type SafetensorsFile,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
} from './safetensors';
export { serializeSafetensors, type TensorToWrite } from './safetensors-write';
export { INDEX_FILE, SINGLE_FILE, checkShardAgainstIndex, parseShardIndex, readShardedStream, type ShardIndex } from './sharded';
export type { CheckpointSource, OpenedFile } from './source';
export { loadModelToGpu, type LoadOptions, type LoadProgress } from './upload';
export {
  PhiWeightsWriter,
  rowChunks,
  type LayerNormWeights,
  type LinearWeights,
  type PhiBlockWeights,
  type PhiWeights,
  type RowChunk,
  type WeightsWriterOptions,
} from './gpu-weights';

import type { Platform } from '../platform/types';
import type { WeightStore } from '../store/store';
import { FilesSource, type FileLike } from './files';
import { HubSource } from './hub';
import { DEFAULT_HUB_SETTINGS, type HubSettings } from '../../shared/hub';
import { importModel, type ImportOptions } from './import';

type ImportExtras = Omit<ImportOptions, 'source' | 'store' | 'now'>;

/** Downloads a model from the Hub (microsoft/phi-2 at the pinned revision by default) into the store, resuming where a previous download stopped. */
export async function importFromHub(platform: Pick<Platform, 'fetch' | 'now'>, store: WeightStore, settings: HubSettings = DEFAULT_HUB_SETTINGS, options: ImportExtras = {}) {
  return importModel({ ...options, source: new HubSource(platform, settings), store, now: () => platform.now() });
}

/** Imports a model from local files (file picker, dropped folder): config.json, the safetensors files and, if present, the tokenizer files. */
export async function importFromFiles(platform: Pick<Platform, 'now'>, store: WeightStore, files: Iterable<FileLike>, options: ImportExtras & { displayName?: string } = {}) {
  const { displayName, ...rest } = options;
  return importModel({ ...rest, source: new FilesSource(files, displayName), store, now: () => platform.now() });
}
