import { Unzip, UnzipInflate } from 'fflate';
import { MAX_ADAPTER_CONFIG_BYTES, readAdapterConfigJson } from './config-json';
import { AdapterError } from './errors';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, type AdapterFiles } from './files';
import { readAdapterConfig, type PeftLoraConfig } from './peft';

/**
 * Adapter .zip archives, read as untrusted input. A zip's entries say how large they are, but a
 * deflate stream can expand a thousandfold (1 MB of zip to 1 GB of memory), so nothing is inflated
 * whole: the archive's directory is listed first without inflating anything, then only the two files
 * of one adapter are inflated, in small steps, each stopped as soon as it passes its limit:
 * adapter_config.json at MAX_ADAPTER_CONFIG_BYTES, the weights at the limit its config implies
 * (`weightsLimit`), and neither beyond MAX_EXPANSION times its compressed size. An archive holding
 * several adapters is refused, listing them, rather than pairing one's config with another's weights.
 */

/** Compressed bytes handed to the inflater at a time: one step inflates to at most ~1,000 times this. */
const PUSH_BYTES = 4096;
/** Entries listed before the archive counts as not an adapter. */
const MAX_ENTRIES = 10_000;
/** Inflated size allowed per compressed byte: far above what weights compress by, far below a zip bomb. */
export const MAX_EXPANSION = 64;

interface EntryInfo {
  name: string;
  /** Compressed size, where the archive's local header states it. */
  size: number | undefined;
}

function unreadable(err: unknown): AdapterError {
  return new AdapterError(`The file is not a readable .zip archive: ${(err as Error)?.message ?? String(err)}`);
}

/** Pushes the archive in small pieces until `stop()` says enough (a limit was passed). */
function pushAll(unzip: Unzip, zip: Uint8Array, stop: () => boolean): void {
  try {
    for (let at = 0; at < zip.length && !stop(); at += PUSH_BYTES) unzip.push(zip.subarray(at, at + PUSH_BYTES), at + PUSH_BYTES >= zip.length);
    if (zip.length === 0) unzip.push(zip, true);
  } catch (err) {
    if (err instanceof AdapterError) throw err;
    throw unreadable(err);
  }
}

/** Every entry of the archive, from its headers, with nothing inflated. */
function listEntries(zip: Uint8Array): EntryInfo[] {
  // Local file header, or the end record of an empty archive.
  const signature = zip.length >= 4 && zip[0] === 0x50 && zip[1] === 0x4b && ((zip[2] === 3 && zip[3] === 4) || (zip[2] === 5 && zip[3] === 6));
  if (!signature) throw unreadable(new Error('it does not start with a zip signature'));
  const entries: EntryInfo[] = [];
  const unzip = new Unzip();
  unzip.register(UnzipInflate);
  unzip.onfile = (f) => {
    if (entries.length >= MAX_ENTRIES) throw new AdapterError(`The archive holds more than ${MAX_ENTRIES} files; an adapter .zip holds two.`);
    entries.push({ name: f.name, size: f.size });
  };
  pushAll(unzip, zip, () => false);
  return entries;
}

/** One entry's bytes, inflated step by step and refused as soon as they pass `limit`. */
function extractEntry(zip: Uint8Array, entry: EntryInfo, limit: number, why: string): Uint8Array {
  const cap = Math.min(limit, Math.max(1 << 20, (entry.size ?? zip.length) * MAX_EXPANSION));
  const chunks: Uint8Array[] = [];
  let total = 0;
  let failure: Error | null = null;
  let done = false;
  const unzip = new Unzip();
  unzip.register(UnzipInflate);
  unzip.onfile = (f) => {
    if (f.name !== entry.name || done) return;
    f.ondata = (err, chunk, final) => {
      if (failure) return;
      if (err) {
        failure = unreadable(err);
        return;
      }
      total += chunk.length;
      if (total > cap) {
        failure = new AdapterError(
          `${entry.name} in the archive expands to more than ${cap.toLocaleString('en-US')} bytes ` +
            `(${cap === limit ? why : `${MAX_EXPANSION} times its ${(entry.size ?? zip.length).toLocaleString('en-US')} compressed bytes`}), so it was not unpacked.`,
        );
        f.terminate();
        return;
      }
      chunks.push(chunk);
      if (final) done = true;
    };
    f.start();
  };
  pushAll(unzip, zip, () => failure !== null || done);
  if (failure) throw failure;
  if (!done) throw new AdapterError(`${entry.name} in the archive is cut short: the .zip is incomplete.`);
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

const baseName = (path: string) => path.slice(path.lastIndexOf('/') + 1);
const folderOf = (path: string) => path.slice(0, path.lastIndexOf('/') + 1);

/**
 * The two files of the one adapter in a .zip (at its root or in a folder), inflated within limits:
 * `weightsLimit` gives the largest adapter_model.safetensors the config can have (see adapterWeightsLimit).
 */
export function unzipAdapter(zip: Uint8Array, weightsLimit: (config: PeftLoraConfig) => number): AdapterFiles {
  const entries = listEntries(zip).filter((e) => !e.name.startsWith('__MACOSX/') && !e.name.endsWith('/'));
  const configs = entries.filter((e) => baseName(e.name) === ADAPTER_CONFIG);
  const weights = entries.filter((e) => baseName(e.name) === ADAPTER_WEIGHTS);
  if (configs.length > 1 || weights.length > 1) {
    const folders = [...new Set([...configs, ...weights].map((e) => folderOf(e.name) || '(the top level)'))];
    throw new AdapterError(
      `The archive holds ${Math.max(configs.length, weights.length)} adapters (in ${folders.join(', ')}); import one at a time: ` +
        `unpack it and choose the two files of the one you want, or make a .zip of that folder alone.`,
    );
  }
  const config = configs[0];
  const weight = weights[0];
  if (!config || !weight) {
    const bin = entries.some((e) => baseName(e.name) === 'adapter_model.bin');
    throw new AdapterError(
      `The archive lacks ${[!config && ADAPTER_CONFIG, !weight && ADAPTER_WEIGHTS].filter(Boolean).join(' and ')}; ` +
        `a PEFT adapter has both (found: ${entries.slice(0, 10).map((e) => e.name).join(', ') || 'nothing'}${entries.length > 10 ? ', ...' : ''}).` +
        (bin ? ' adapter_model.bin (a PyTorch pickle) cannot be read here: save the adapter with safe_serialization=True.' : ''),
    );
  }
  if (folderOf(config.name) !== folderOf(weight.name)) {
    throw new AdapterError(`The archive's ${config.name} and ${weight.name} are in different folders, so they may not belong together; put both in one folder.`);
  }
  const configBytes = extractEntry(zip, config, MAX_ADAPTER_CONFIG_BYTES, `a PEFT adapter config is at most ${MAX_ADAPTER_CONFIG_BYTES / 1024} KiB`);
  const parsed = readAdapterConfig(readAdapterConfigJson(configBytes, ADAPTER_CONFIG), ADAPTER_CONFIG);
  const limit = weightsLimit(parsed);
  const weightsBytes = extractEntry(zip, weight, limit, `the most an adapter with r ${parsed.r} on these layers can take, in F32`);
  return { [ADAPTER_CONFIG]: configBytes, [ADAPTER_WEIGHTS]: weightsBytes };
}
