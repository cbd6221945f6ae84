import { describe, expect, it } from 'vitest';
import { InferenceSettings } from '../../../../src/engine/session/inference';
import { Session, withModel } from '../../../../src/engine/session/session';
import { importFromFiles } from '../../../../src/engine/weights';
import { TestEngine } from '../../../support/engine';
import { directoryFiles, MODELS } from '../../../support/fixtures';
import { testGpu } from '../../../support/gpu';
import { testPlatform } from '../../../support/platform';

// The loaded model's inference settings as the Model page changes them: asked for before a load (the
// load uses them), applied to the loaded model, refused while the model is busy, and kept within what
// the loaded weights can run.

async function session(): Promise<{ session: Session; ids: Record<'int8' | 'f16', string> }> {
  await testGpu();
  const platform = testPlatform();
  const s = new Session(new TestEngine(platform));
  const ids = {} as Record<'int8' | 'f16', string>;
  for (const scheme of ['int8', 'f16'] as const) {
    ids[scheme] = (await importFromFiles(platform, await s.store(), await directoryFiles(MODELS.tiny), { scheme, displayName: `tiny-phi ${scheme}` })).id;
  }
  return { session: s, ids };
}

describe('inference settings of the session', () => {
  it('are asked for before a load, used by the load, changed on the loaded model, refused while it is busy', async () => {
    const { session: s, ids } = await session();
    const settings = new InferenceSettings({ runtime: () => testGpu() }, s);
    const gpu = await testGpu();
    expect(gpu.ctx.hasInt8Dot).toBe(true); // Dawn's Tint has the packed int8 dot product here

    const before = await settings.set({ compute: 'int8', lmHead: 'f16' });
    expect(before).toMatchObject({ status: 'applied', state: { chosen: { compute: 'int8', lmHead: 'f16', kvCache: 'f32' }, applied: null } });

    const loaded = await s.load(ids.int8);
    expect(loaded.model.options).toEqual({ compute: 'int8', lmHead: 'f16', kvCache: 'f32' });
    const prompt = [1, 2, 3, 4, 5];
    const int8Tokens = (await loaded.generator.generate(prompt, { maxNewTokens: 2, stopTokens: [] })).tokens;
    expect(int8Tokens).toHaveLength(2);

    // The same generator and model objects, switched in place: nothing else holds a stale model.
    const both = await settings.set({ compute: 'int8', lmHead: 'int8' });
    expect(both.status).toBe('applied');
    expect(both.state.applied).toEqual({ compute: 'int8', lmHead: 'int8', kvCache: 'f32' });
    expect(s.loaded!.model).toBe(loaded.model);
    expect(s.loaded!.generator).toBe(loaded.generator);
    expect((await loaded.generator.generate(prompt, { maxNewTokens: 2, stopTokens: [] })).tokens).toHaveLength(2);

    // While a task holds the model, a change is refused and changes nothing.
    let release!: () => void;
    const held = withModel(loaded.generator, 'a long evaluation', () => new Promise<void>((r) => (release = r)));
    const refused = await settings.set({ compute: 'f32', lmHead: 'f16' });
    expect(refused.status).toBe('refused');
    expect(refused.status === 'refused' && refused.message).toMatch(/busy with a long evaluation.*stay as they were/);
    expect(refused.state.chosen).toEqual({ compute: 'int8', lmHead: 'int8', kvCache: 'f32' });
    expect(loaded.model.options).toEqual({ compute: 'int8', lmHead: 'int8', kvCache: 'f32' });
    release();
    await held;

    // Back to exact: the f32 path's greedy tokens (see test/gpu/engine/model/phi2/forward.test.ts).
    expect((await settings.set({})).state.applied).toEqual({ compute: 'f32', lmHead: 'f16', kvCache: 'f32' });
    const exactTokens = (await loaded.generator.generate(prompt, { maxNewTokens: 2, stopTokens: [] })).tokens;
    console.log(`tiny-phi greedy tokens: int8 compute ${int8Tokens.join(' ')}, f32 ${exactTokens.join(' ')}`);

    // F16 weights cannot run int8 compute: the load makes the model with what it can run, and says why.
    // The f16 KV cache runs with either weights (its generation: test/gpu/engine/model/phi2/forward.test.ts).
    await settings.set({ compute: 'int8', lmHead: 'int8', kvCache: 'f16' });
    const f16 = await s.load(ids.f16);
    expect(f16.model.options).toEqual({ compute: 'f32', lmHead: 'int8', kvCache: 'f16' });
    const state = await settings.state();
    expect(state.chosen).toEqual({ compute: 'int8', lmHead: 'int8', kvCache: 'f16' });
    expect(state.unavailable.compute).toMatch(/int8 weights/);
    expect(state.unavailable.lmHead).toBeUndefined();
    s.unload();
    expect((await settings.state()).applied).toBeNull();
  }, 600_000);
});
