import { briefJson, describeExcessNesting, findExcessNesting } from '../untrusted-json';
import { SafetensorsError } from './errors';
import { readSafetensorsStream, type ByteSource, type SafetensorsEvent, type StreamReadOptions } from './safetensors';

/**
 * Sharded checkpoints: model.safetensors.index.json maps every tensor name to the shard file that
 * holds it. Each shard's header must list exactly the tensors the index assigns to it, so that once
 * every shard's header has been checked, every indexed tensor is known to be present where the index
 * says and no shard carries a tensor the index does not mention.
 */

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export interface ShardIndex {
  readonly file: string;
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Tensor name to shard file. */
  readonly weightMap: ReadonlyMap<string, string>;
  /** The shard files, in the order of their first appearance (sorted by name, as the Hub names them). */
  readonly shards: readonly string[];
}

export function parseShardIndex(json: string | unknown, file = INDEX_FILE): ShardIndex {
  let parsed: unknown = json;
  if (typeof json === 'string') {
    const deep = findExcessNesting(json);
    if (deep) throw new SafetensorsError('index-json', file, `the index is JSON ${describeExcessNesting(deep)}`);
    try {
      parsed = JSON.parse(json);
    } catch (err) {
      throw new SafetensorsError('index-json', file, `not valid JSON: ${(err as Error).message}`);
    }
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new SafetensorsError('index-json', file, 'not a JSON object');
  }
  const { weight_map: map, metadata } = parsed as Record<string, unknown>;
  if (!map || typeof map !== 'object' || Array.isArray(map)) {
    throw new SafetensorsError('index-json', file, 'has no "weight_map" object');
  }
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string' || !shard) {
      throw new SafetensorsError('index-json', file, `weight_map entry is not a file name (found ${briefJson(shard)})`, name);
    }
    if (shard.includes('/') || shard.includes('\\') || shard === '.' || shard === '..') {
      // Shards live beside the index; a path would let an index point the download anywhere.
      throw new SafetensorsError('index-json', file, `shard ${briefJson(shard)} is not a plain file name`, name);
    }
    weightMap.set(name, shard);
  }
  if (weightMap.size === 0) throw new SafetensorsError('index-json', file, 'weight_map is empty');
  const shards = [...new Set(weightMap.values())].sort();
  const meta = metadata && typeof metadata === 'object' && !Array.isArray(metadata) ? (metadata as Record<string, unknown>) : {};
  return { file, metadata: meta, weightMap, shards };
}

/** Checks that a shard's header holds exactly the tensors the index assigns to it. */
export function checkShardAgainstIndex(index: ShardIndex, shard: string, tensorNames: Iterable<string>): void {
  const present = new Set<string>();
  for (const name of tensorNames) {
    present.add(name);
    const listed = index.weightMap.get(name);
    if (listed === undefined) {
      throw new SafetensorsError('index-mismatch', shard, `the shard holds a tensor that ${index.file} does not list`, name);
    }
    if (listed !== shard) {
      throw new SafetensorsError('index-mismatch', shard, `${index.file} places this tensor in ${listed}, not in this shard`, name);
    }
  }
  for (const [name, listed] of index.weightMap) {
    if (listed === shard && !present.has(name)) {
      throw new SafetensorsError('index-mismatch', shard, `${index.file} places this tensor in this shard but its header lacks it`, name);
    }
  }
}

export type ShardedEvent = SafetensorsEvent & { shard: string };

/**
 * Streams every shard of an indexed checkpoint in turn (each through readSafetensorsStream), checking
 * each header against the index before its data is read. `open` supplies a shard's bytes (and size,
 * when known).
 */
export async function* readShardedStream(
  index: ShardIndex,
  open: (shard: string) => Promise<{ source: ByteSource; size?: number }>,
  options: Pick<StreamReadOptions, 'pieceBytes'> = {},
): AsyncGenerator<ShardedEvent, void, undefined> {
  for (const shard of index.shards) {
    const { source, size } = await open(shard);
    for await (const event of readSafetensorsStream(source, { file: shard, fileSize: size, pieceBytes: options.pieceBytes })) {
      if (event.kind === 'header') checkShardAgainstIndex(index, shard, event.header.tensors.map((t) => t.name));
      yield { ...event, shard };
    }
  }
}
