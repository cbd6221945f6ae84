import { describe, expect, it } from 'vitest';
import { parsePhiConfig } from '../../../../src/engine/weights/config';
import { phiParamSpecs } from '../../../../src/engine/weights/layout';
import { hubIdOf } from '../../../../src/engine/weights/presets';
import { PHI_PRESETS, presetOf } from '../../../../src/shared/presets';
import { estimateFor } from '../../../../src/engine/session/model-estimates';

/** The Model page's presets: their configs parse to the published geometry, and their sizes follow from it. */
describe('Phi model presets', () => {
  const byId = Object.fromEntries(PHI_PRESETS.map((p) => [p.id, p]));
  const parameters = (id: string) => phiParamSpecs(parsePhiConfig(byId[id].config)).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);

  it('parse to the geometry of each model', () => {
    expect(parsePhiConfig(byId['phi-2'].config)).toMatchObject({ hiddenSize: 2560, numLayers: 32, headDim: 80, rotaryDim: 32, residPdrop: 0.1, eosTokenId: 50256 });
    for (const id of ['phi-1_5', 'phi-1']) {
      expect(parsePhiConfig(byId[id].config)).toMatchObject({ hiddenSize: 2048, intermediateSize: 8192, numLayers: 24, numHeads: 32, headDim: 64, rotaryDim: 32, residPdrop: 0, eosTokenId: null, vocabSize: 51200 });
    }
    // The parameter counts the model cards round to 2.7B and 1.3B (1.42B with the 51,200-row embedding and head).
    expect(parameters('phi-2')).toBe(2_779_683_840);
    expect(parameters('phi-1_5')).toBe(1_418_270_720);
  });

  it('size the download in the published dtype: F16 for Phi-2 and Phi-1.5, F32 for Phi-1', () => {
    expect(estimateFor(parsePhiConfig(byId['phi-2'].config), 'int8')).toMatchObject({ sourceDtype: 'F16', downloadBytes: 2 * parameters('phi-2') });
    expect(estimateFor(parsePhiConfig(byId['phi-1_5'].config), 'f16')).toMatchObject({ sourceDtype: 'F16', downloadBytes: 2 * parameters('phi-1_5') });
    const phi1 = estimateFor(parsePhiConfig(byId['phi-1'].config), 'int8');
    expect(phi1).toMatchObject({ sourceDtype: 'F32', downloadBytes: 4 * parameters('phi-1') });
    // Stored and on the GPU Phi-1 is Phi-1.5's size: the same shapes, converted as they arrive.
    expect(phi1.storedBytes).toBe(estimateFor(parsePhiConfig(byId['phi-1_5'].config), 'int8').storedBytes);
    expect(phi1.gpuWeights.total).toBeLessThan(0.55 * estimateFor(parsePhiConfig(byId['phi-2'].config), 'int8').gpuWeights.total);
  });

  it('are found by repository and revision', () => {
    expect(presetOf('microsoft/phi-1_5', 'main')?.id).toBe('phi-1_5');
    expect(presetOf(' microsoft/phi-2 ', byId['phi-2'].revision)?.id).toBe('phi-2');
    expect(presetOf('microsoft/phi-2', 'main')).toBeNull();
    expect(presetOf('someone/phi-1_5', 'main')).toBeNull();
  });

  it("name a stored model's Hub id: its repository, its config's _name_or_path, its folder, or its one preset shape", () => {
    const files = { kind: 'files' as const, names: ['config.json'] };
    const phi2 = byId['phi-2'].config;
    expect(hubIdOf({ source: { kind: 'hub', repo: 'me/phi-2-copy', revision: 'main', baseUrl: 'https://huggingface.co' }, name: 'me/phi-2-copy', config: phi2 })).toBe('me/phi-2-copy');
    // Phi-2 from disk, as its folder holds it: config.json names it.
    expect(hubIdOf({ source: files, name: 'phi-2', config: phi2 })).toBe('microsoft/phi-2');
    // Its config without the name, in a folder of any name: Phi-2's shape is its own.
    const { _name_or_path: _drop, ...bare } = phi2 as Record<string, unknown>;
    expect(hubIdOf({ source: files, name: 'my-weights', config: bare })).toBe('microsoft/phi-2');
    // Phi-1 and Phi-1.5 share a shape: only the folder's name tells them apart.
    const { _name_or_path: _drop15, ...bare15 } = byId['phi-1_5'].config as Record<string, unknown>;
    expect(hubIdOf({ source: files, name: 'phi-1_5', config: bare15 })).toBe('microsoft/phi-1_5');
    expect(hubIdOf({ source: files, name: 'Phi-1', config: bare15 })).toBe('microsoft/phi-1');
    expect(hubIdOf({ source: files, name: 'weights', config: bare15 })).toBeNull();
    // A name that is not a Hub id says nothing.
    expect(hubIdOf({ source: files, name: 'tiny-phi', config: { ...bare15, hidden_size: 64, _name_or_path: 'tiny-random-phi' } })).toBeNull();
  });
});
