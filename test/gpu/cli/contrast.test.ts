import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { contrastCommand } from '../../../src/cli/contrast';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, decodeAdapter } from '../../../src/engine/adapters/files';
import { generateContrastive } from '../../../src/engine/inspect/contrastive';
import { Phi2Model } from '../../../src/engine/model/phi2/forward';
import { loadPhi2FromSource } from '../../../src/engine/model/phi2/load';
import { LoraState } from '../../../src/engine/model/phi2/lora-state';
import { loadTokenizer } from '../../../src/engine/tokenizer';
import { directorySource, MODELS } from '../../support/fixtures';
import { testGpu } from '../../support/gpu';

// `npm run cli -- contrast`, run in-process on tiny-phi with its golden adapter.
const ADAPTER = join(MODELS.tiny, 'golden/adapter');

describe('npm run cli -- contrast', () => {
  it('prints the contrastive continuation the engine generates, with its scores', async () => {
    const lines: string[] = [];
    const code = await contrastCommand(
      ['--model', MODELS.tiny, '--adapter', ADAPTER, '--prompt', 'Instruct: Name a colour.\nOutput:', '--max-new-tokens', '3', '--weights', 'f16', '--json', 'true'],
      (t) => lines.push(t),
    );
    expect(code).toBe(0);
    expect(lines).toHaveLength(1);
    const row = JSON.parse(lines[0]) as { text: string; tokens: number[]; scores: number[]; stopped: string };
    expect(row.tokens).toHaveLength(3);
    expect(row.scores.every((s) => s > 0)).toBe(true);

    // The same through the engine directly.
    const gpu = await testGpu();
    const model = new Phi2Model(gpu, (await loadPhi2FromSource(gpu, await directorySource(MODELS.tiny), 'f16')).params);
    const d = model.dims;
    const read = (name: string) => new Uint8Array(readFileSync(join(ADAPTER, name)));
    const a = decodeAdapter({ [ADAPTER_CONFIG]: read(ADAPTER_CONFIG), [ADAPTER_WEIGHTS]: read(ADAPTER_WEIGHTS) }, { hidden: d.hidden, intermediate: d.intermediate, layers: d.layers });
    const lora = new LoraState(gpu, d, a.settings);
    lora.setWeights((name) => a.tensors.get(name)!.data);
    const tokenizer = await loadTokenizer({ 'tokenizer.json': readFileSync(join(MODELS.tiny, 'tokenizer.json'), 'utf8'), 'tokenizer_config.json': readFileSync(join(MODELS.tiny, 'tokenizer_config.json'), 'utf8') });
    const [sample] = await generateContrastive(model, lora, tokenizer.encode('Instruct: Name a colour.\nOutput:'), { maxNewTokens: 3, samples: 1, direction: 'adapter-over-base', plausibility: 0.1, temperature: 0, seed: 0 });
    expect(row.tokens).toEqual(sample.tokens);
    expect(row.text).toBe(tokenizer.decode(sample.tokens));
  }, 900_000);

  it('refuses bad arguments with the usage', async () => {
    await expect(contrastCommand(['--model', MODELS.tiny])).rejects.toThrow(/missing --adapter/);
    await expect(contrastCommand(['--modle', 'x'])).rejects.toThrow(/unknown option --modle/);
    await expect(contrastCommand(['--model', MODELS.tiny, '--adapter', '/nonexistent', '--prompt', 'x'])).rejects.toThrow(/has no adapter_config.json/);
  });
});
