import { CHUNK_BYTES, chunkKey, prefixRange, readChunks, storeFailure, writeChunks, writeTransaction, type AppDatabase, type ChunkRecord, type StoredValue } from '../store/chunks';
import { crc32 } from '../store/crc32';
import { StoreError } from '../store/errors';
import { STORES } from '../store/schema';
import { parseSafetensors } from '../weights/safetensors';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, readAdapterConfigBytes, type AdapterFiles } from './files';
import type { LinearShapes, LoraSettings } from '../../shared/lora';
import { AdapterError, resolveAdapterConfig } from './peft';

/**
 * LoRA adapters kept between visits, in the app database's `adapters` object store (reserved by
 * store/schema.ts, keyPath `id`, string keys). Three kinds of value share it, told apart by key prefix
 * so that listing reads only the small ones:
 *
 * | key                              | value                                                          |
 * |----------------------------------|----------------------------------------------------------------|
 * | `adapter/{id}`                   | {@link AdapterInfo}: name, base model, settings, origin, size, |
 * |                                  | adapter_config.json's text, the weight chunks' CRC-32s          |
 * | `adapter-bytes/{id}/{i}`         | chunk i of adapter_model.safetensors (store/chunks.ts, 32 MB each)   |
 * | `download/{key}` and             | a download in progress (hub.ts), so that it resumes after a     |
 * | `download-bytes/{key}/{i}`       | reload: which URL and ETag, and the chunks received so far     |
 *
 * Phi-2's paper adapter is 377 MB of f32: one value that large makes browsers copy it whole on every
 * read and write, so the file is stored in chunks, each in its own transaction, and the info record,
 * written last, is what makes an adapter exist. A crash mid-write leaves chunks nobody points to; the
 * next write under the same id removes them.
 */

/** How a run here trained, kept with its adapter for its model card. */
export interface TrainingRecord {
  /** The base weights it trained on (the stored model's name). */
  model: string;
  lr: number;
  schedule: 'constant' | 'linear' | 'cosine';
  warmupSteps: number;
  totalSteps: number;
  batchSize: number;
  gradAccumulation: number;
  maxLength: number;
  lossOn: 'all' | 'response';
  weightDecay: number;
  maxGradNorm: number;
  seed: number;
  examples: number;
  tokens: number;
}

export type AdapterOrigin =
  | { kind: 'training'; runId: string; dataset: string; steps: number; training?: TrainingRecord }
  | { kind: 'upload'; files: string[] }
  | { kind: 'hub'; repo: string; revision: string; url: string }
  | { kind: 'url'; url: string };

export interface AdapterInfo {
  id: string;
  name: string;
  /** base_model_name_or_path from adapter_config.json (null when it does not say). */
  baseModel: string | null;
  settings: LoraSettings;
  /** LoRA parameters (every lora_A and lora_B element). */
  parameterCount: number;
  /** Size of adapter_model.safetensors. */
  bytes: number;
  /** Float type of the stored tensors (F32, F16 or BF16). */
  dtype: string;
  origin: AdapterOrigin;
  createdAt: number;
  /** adapter_config.json as stored (small; kept in the info record). */
  config: string;
  checksums: number[];
}

/**
 * What the info says about an adapter, from its two files: settings resolved on `model` when one is at
 * hand (else on NOMINAL_LAYERS layers, for display), parameters, dtype.
 */
export function describeAdapterFiles(
  files: AdapterFiles,
  model: LinearShapes | null = null,
): { settings: LoraSettings; baseModel: string | null; parameterCount: number; dtype: string } {
  const config = readAdapterConfigBytes(files[ADAPTER_CONFIG]);
  const settings = resolveAdapterConfig(config, model, ADAPTER_CONFIG);
  const header = parseSafetensors(files[ADAPTER_WEIGHTS], ADAPTER_WEIGHTS).header;
  const parameterCount = header.tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  const dtypes = [...new Set(header.tensors.map((t) => t.dtype))];
  return { settings, baseModel: config.baseModel, parameterCount, dtype: dtypes.join('+') || 'none' };
}

const INFO = 'adapter/';
const BYTES = 'adapter-bytes/';

/** The stored value: keyPath `id` is the prefixed key; the adapter's own id is inside. */
interface InfoRecord {
  id: string;
  info: AdapterInfo;
}

function infoRecord(info: AdapterInfo): StoredValue {
  return { id: INFO + info.id, info } satisfies InfoRecord as unknown as StoredValue;
}

export class AdapterStore {
  constructor(
    private readonly db: AppDatabase,
    /** Bytes per stored chunk (smaller in tests, to exercise many chunks cheaply). */
    private readonly chunkBytes = CHUNK_BYTES,
  ) {}

  /** The store over WeightStore.db (the app database). */
  static over(weightStore: { db: unknown }): AdapterStore {
    return new AdapterStore(weightStore.db as AppDatabase);
  }

  /**
   * A new id from a name: lower-case letters, digits, '.', '_' and '-' (never '/', which would make one
   * id's chunk prefix cover another's), unique among stored adapters and `taken` (ids in use elsewhere).
   */
  async newId(name: string, taken: Iterable<string> = []): Promise<string> {
    const used = new Set([...(await this.list()).map((a) => a.id), ...taken]);
    const slug =
      name
        .toLowerCase()
        .replace(/[^a-z0-9._-]+/g, '-')
        .replace(/^[-.]+|[-.]+$/g, '')
        .slice(0, 60) || 'adapter';
    let id = slug;
    for (let n = 2; used.has(id); n++) id = `${slug}-${n}`;
    return id;
  }

  /** Newest first. */
  async list(): Promise<AdapterInfo[]> {
    let all: AdapterInfo[];
    try {
      all = ((await this.db.getAll(STORES.adapters, prefixRange(INFO))) as unknown as InfoRecord[]).map((r) => r.info);
    } catch (err) {
      throw storeFailure(err, 'listing adapters', 0);
    }
    return all.sort((a, b) => b.createdAt - a.createdAt || a.name.localeCompare(b.name));
  }

  async get(id: string): Promise<AdapterInfo> {
    let info: AdapterInfo | undefined;
    try {
      info = ((await this.db.get(STORES.adapters, INFO + id)) as unknown as InfoRecord | undefined)?.info;
    } catch (err) {
      throw storeFailure(err, `reading adapter ${id}`, 0);
    }
    if (!info) throw new StoreError('missing', `No stored adapter "${id}": it may have been deleted in another tab.`);
    return info;
  }

  /**
   * Stores an adapter's two files (checked: a valid config and a readable safetensors file) under a
   * new id. The info is written after every chunk, so a failure leaves no adapter behind.
   */
  async put(files: AdapterFiles, init: { name: string; origin: AdapterOrigin; id?: string; now?: number }): Promise<AdapterInfo> {
    const name = checkAdapterName(init.name);
    const described = describeAdapterFiles(files);
    const id = init.id ?? (await this.newId(name));
    if (id.includes('/')) throw new AdapterError(`An adapter id may not contain '/' (got "${id}").`);
    const weights = files[ADAPTER_WEIGHTS];
    const what = `adapter "${name}"`;
    await this.deleteBytes(id);
    let checksums: number[];
    try {
      checksums = await writeChunks(this.db, STORES.adapters, `${BYTES}${id}/`, weights, `saving ${what}`, this.chunkBytes);
    } catch (err) {
      await this.deleteBytes(id).catch(() => undefined);
      throw err;
    }
    const info: AdapterInfo = {
      id,
      name,
      baseModel: described.baseModel,
      settings: described.settings,
      parameterCount: described.parameterCount,
      bytes: weights.length,
      dtype: described.dtype,
      origin: init.origin,
      createdAt: init.now ?? Date.now(),
      config: new TextDecoder().decode(files[ADAPTER_CONFIG]),
      checksums,
    };
    try {
      await writeTransaction(this.db, STORES.adapters, `saving ${what}`, info.config.length, (s) => [s.put(infoRecord(info))]);
    } catch (err) {
      await this.deleteBytes(id).catch(() => undefined);
      throw err;
    }
    return info;
  }

  /** The adapter's two files, as they were stored. */
  async files(id: string): Promise<AdapterFiles> {
    const info = await this.get(id);
    const weights = await readChunks(this.db, STORES.adapters, `${BYTES}${id}/`, info.bytes, info.checksums, `adapter "${info.name}"`);
    return { [ADAPTER_CONFIG]: new TextEncoder().encode(info.config), [ADAPTER_WEIGHTS]: weights };
  }

  async rename(id: string, name: string): Promise<AdapterInfo> {
    const info = { ...(await this.get(id)), name: checkAdapterName(name) };
    await writeTransaction(this.db, STORES.adapters, `renaming adapter "${info.name}"`, 0, (s) => [s.put(infoRecord(info))]);
    return info;
  }

  /** Deletes the info and every chunk in one transaction. */
  async delete(id: string): Promise<void> {
    await writeTransaction(this.db, STORES.adapters, `deleting adapter ${id}`, 0, (s) => [s.delete(INFO + id), s.delete(prefixRange(`${BYTES}${id}/`))]);
  }

  private async deleteBytes(id: string): Promise<void> {
    await writeTransaction(this.db, STORES.adapters, `clearing adapter ${id}`, 0, (s) => [s.delete(prefixRange(`${BYTES}${id}/`))]);
  }
}

export const MAX_ADAPTER_NAME = 120;

export function checkAdapterName(name: string): string {
  const trimmed = name.trim();
  if (!trimmed) throw new AdapterError('Give the adapter a name.');
  if (trimmed.length > MAX_ADAPTER_NAME) throw new AdapterError(`The name is ${trimmed.length} characters; keep it to ${MAX_ADAPTER_NAME}.`);
  return trimmed;
}

/** A download in progress, as DownloadCache keeps it. */
export interface PartialDownload {
  id: string;
  url: string;
  /** The server's ETag when the download began: a resume must see the same one. */
  etag: string | null;
  /** Total bytes, when the server said. */
  size: number | null;
  /** Bytes stored so far: CHUNK_BYTES per chunk. */
  received: number;
  checksums: number[];
  updatedAt: number;
}

const DOWNLOAD = 'download/';
const DOWNLOAD_BYTES = 'download-bytes/';

/**
 * The received part of large downloads (adapter_model.safetensors, adapter zips), kept in whole chunks
 * of chunkBytes so that a download cut by a reload or a closed tab resumes with an HTTP Range request
 * instead of starting over. A chunk and the record that counts it are written in one transaction.
 */
export class DownloadCache {
  constructor(
    private readonly db: AppDatabase,
    /** Bytes per stored chunk: what a download resumed after a reload may have to fetch again at most. */
    readonly chunkBytes = CHUNK_BYTES,
  ) {}

  static over(weightStore: { db: unknown }): DownloadCache {
    return new DownloadCache(weightStore.db as AppDatabase);
  }

  /** What was received of `url`, or null. A damaged or torn record counts as nothing received. */
  async load(url: string): Promise<{ etag: string | null; size: number | null; bytes: Uint8Array; checksums: number[] } | null> {
    const info = (await this.db.get(STORES.adapters, DOWNLOAD + url).catch(() => undefined)) as unknown as PartialDownload | undefined;
    if (!info || info.received === 0) return null;
    try {
      const bytes = await readChunks(this.db, STORES.adapters, `${DOWNLOAD_BYTES}${url}/`, info.received, info.checksums, `the partial download of ${url}`);
      return { etag: info.etag, size: info.size, bytes, checksums: info.checksums };
    } catch {
      await this.clear(url);
      return null;
    }
  }

  /** Stores chunk `index` (chunkBytes, or the file's last bytes) and the count that includes it. */
  async append(url: string, meta: { etag: string | null; size: number | null }, index: number, piece: Uint8Array, previous: readonly number[]): Promise<number[]> {
    const checksums = [...previous.slice(0, index), crc32(piece)];
    const info: PartialDownload = {
      id: DOWNLOAD + url,
      url,
      etag: meta.etag,
      size: meta.size,
      received: index * this.chunkBytes + piece.length,
      checksums,
      updatedAt: Date.now(),
    };
    const record: ChunkRecord = { id: chunkKey(`${DOWNLOAD_BYTES}${url}/`, index), data: piece.slice().buffer };
    await writeTransaction(this.db, STORES.adapters, `keeping the download of ${url}`, piece.length, (s) => [
      s.put(record as unknown as StoredValue),
      s.put(info as unknown as StoredValue),
    ]);
    return checksums;
  }

  /** Every download kept unfinished (cut by a reload, a closed tab or a dropped connection), newest first. */
  async list(): Promise<PartialDownload[]> {
    let all: PartialDownload[];
    try {
      all = (await this.db.getAll(STORES.adapters, prefixRange(DOWNLOAD))) as unknown as PartialDownload[];
    } catch (err) {
      throw storeFailure(err, 'listing unfinished downloads', 0);
    }
    return all.sort((a, b) => b.updatedAt - a.updatedAt);
  }

  /** Forgets every unfinished download and its bytes. */
  async clearAll(): Promise<void> {
    await writeTransaction(this.db, STORES.adapters, 'forgetting unfinished downloads', 0, (s) => [s.delete(prefixRange(DOWNLOAD)), s.delete(prefixRange(DOWNLOAD_BYTES))]);
  }

  async clear(url: string): Promise<void> {
    await writeTransaction(this.db, STORES.adapters, `forgetting the download of ${url}`, 0, (s) => [
      s.delete(DOWNLOAD + url),
      s.delete(prefixRange(`${DOWNLOAD_BYTES}${url}/`)),
    ]);
  }
}
