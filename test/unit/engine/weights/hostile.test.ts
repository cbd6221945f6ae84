import { describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import { loadPhi2FromSource } from '../../../../src/engine/model/phi2/load';
import { CONFIG_BOUNDS, parsePhiConfig } from '../../../../src/engine/weights/config';
import { PHI2_CONFIG_JSON } from '../../../../src/shared/presets';
import { CheckpointError, SafetensorsError } from '../../../../src/engine/weights/errors';
import { FilesSource } from '../../../../src/engine/weights/files';
import { parseSafetensors } from '../../../../src/engine/weights/safetensors';
import { parseShardIndex } from '../../../../src/engine/weights/sharded';
import { refusal } from '../../../support/refusal';
import { fileLike, fixtureBytes, rawSafetensors } from '../../../support/safetensors-fixtures';

const DEEP = 200_000;

describe('configs are bounded before anything is sized from them', () => {
  it('refuses each size beyond what the engine supports, naming the key and the limit', () => {
    const cases: Array<[string, number]> = [
      ['vocab_size', 2 ** 40],
      ['hidden_size', 2 ** 20],
      ['intermediate_size', 2 ** 24],
      ['num_hidden_layers', 100_000],
      ['num_attention_heads', 4096],
      ['max_position_embeddings', 2 ** 31],
    ];
    for (const [key, value] of cases) {
      const err = refusal(() => parsePhiConfig({ ...PHI2_CONFIG_JSON, [key]: value }));
      expect(err).toBeInstanceOf(CheckpointError);
      expect(err.message).toMatch(new RegExp(`"${key}" is [\\d,]+, more than this engine supports \\(at most ${CONFIG_BOUNDS[key as keyof typeof CONFIG_BOUNDS].toLocaleString('en-US')}\\)`));
    }
    const heads = refusal(() => parsePhiConfig({ ...PHI2_CONFIG_JSON, hidden_size: 2048, num_attention_heads: 4, num_key_value_heads: 4, intermediate_size: 8192 }));
    expect(heads.message).toMatch(/head dimension hidden_size \/ num_attention_heads = 512 is more than the attention kernels support \(256\)/);
    expect(parsePhiConfig({ ...PHI2_CONFIG_JSON, vocab_size: CONFIG_BOUNDS.vocab_size }).vocabSize).toBe(2 ** 20);
  });

  it('checks every header against config.json before a GPU buffer is made from it', async () => {
    let allocations = 0;
    const gpu = {
      device: { limits: { maxStorageBufferBindingSize: 2 ** 31, maxBufferSize: 2 ** 31 } },
      tensor: () => {
        allocations++;
        throw new Error('a GPU buffer was made');
      },
    } as unknown as GpuRuntime;
    const config = { ...JSON.parse(new TextDecoder().decode(fixtureBytes('tiny-phi', 'config.json'))), vocab_size: CONFIG_BOUNDS.vocab_size };
    const files = [
      fileLike('config.json', new TextEncoder().encode(JSON.stringify(config))),
      ...['model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'].map((n) => fileLike(n, fixtureBytes('tiny-phi', n))),
    ];
    const err = (await loadPhi2FromSource(gpu, new FilesSource(files, 'tiny'), 'int8').catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toMatch(/(embed_tokens|lm_head)\.weight has shape \[51200, 64\] but config\.json implies \[1048576, 64\]/);
    expect(allocations).toBe(0);
  });
});

describe('JSON nested past any real file is refused, naming the file', () => {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);

  it('a safetensors __metadata__ nested 200,000 deep', () => {
    const text = `{"__metadata__":{"format":${deep(DEEP)}},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`;
    const file = rawSafetensors([{ name: 'w', dtype: 'F32', shape: [1] }], { headerText: text });
    const err = refusal(() => parseSafetensors(file, 'adapter_model.safetensors'));
    expect(err).toBeInstanceOf(SafetensorsError);
    expect(err.message).toMatch(/^adapter_model\.safetensors: the header is JSON nested more than 8 levels deep/);
  });

  it('metadata that is not a string is described briefly, never serialised whole', () => {
    const text = `{"__metadata__":{"format":[[[1]]]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`;
    const file = rawSafetensors([{ name: 'w', dtype: 'F32', shape: [1] }], { headerText: text });
    expect(refusal(() => parseSafetensors(file, 'x.safetensors')).message).toMatch(/__metadata__\.format is not a string \(found a list of 1\)/);
  });

  it('a config.json and a shard index nested 200,000 deep', () => {
    const config = JSON.stringify(PHI2_CONFIG_JSON).replace(/}$/, `,"extra":${deep(DEEP)}}`);
    const err = refusal(() => parsePhiConfig(config));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toMatch(/^config\.json is JSON nested more than 64 levels deep/);
    const index = `{"metadata":${deep(DEEP)},"weight_map":{"a":"model-00001-of-00001.safetensors"}}`;
    expect(refusal(() => parseShardIndex(index)).message).toMatch(/model\.safetensors\.index\.json: the index is JSON nested more than 64 levels deep/);
  });
});
