import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeAdapter, encodeAdapter, zipAdapter, ADAPTER_CONFIG, ADAPTER_WEIGHTS } from '../../../../src/engine/adapters/files';
import { unzipAdapter } from '../../../../src/engine/adapters/zip';
import { FIXTURES } from '../../../support/fixtures';

const dir = join(FIXTURES, 'tiny-phi/golden/adapter');
const TINY = { hidden: 64, intermediate: 256, layers: 2 };
const files = () => ({
  [ADAPTER_CONFIG]: new Uint8Array(readFileSync(join(dir, ADAPTER_CONFIG))),
  [ADAPTER_WEIGHTS]: new Uint8Array(readFileSync(join(dir, ADAPTER_WEIGHTS))),
});

describe('adapter files', () => {
  it('decodes the real PEFT adapter and re-encodes byte-identical weights', () => {
    const a = decodeAdapter(files(), TINY);
    expect(a.settings.r).toBe(4);
    expect(a.tensors.size).toBe(24);
    const again = encodeAdapter(a.settings, a.baseModel, a.tensors);
    expect(Buffer.from(again[ADAPTER_WEIGHTS]).equals(Buffer.from(files()[ADAPTER_WEIGHTS]))).toBe(true);
    const config = JSON.parse(new TextDecoder().decode(again[ADAPTER_CONFIG]));
    expect(config).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8, bias: 'none', use_rslora: false });
  });

  it('round-trips through a .zip and refuses archives without both files', () => {
    const back = unzipAdapter(zipAdapter(files()), () => 1 << 20);
    expect(decodeAdapter(back, TINY).tensors.size).toBe(24);
    expect(() => unzipAdapter(new Uint8Array([1, 2, 3]), () => 1 << 20)).toThrow(/not a readable .zip/);
  });

  it('refuses an adapter for a model of another size', () => {
    expect(() => decodeAdapter(files(), { hidden: 2560, intermediate: 10240, layers: 32 })).toThrow(/trained for a model of another size/);
  });
});
