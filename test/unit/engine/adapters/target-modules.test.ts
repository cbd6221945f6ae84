import { describe, expect, it } from 'vitest';
import { parseAdapterConfig } from '../../../../src/engine/adapters/peft';
import { MAX_PATTERN_CHARS, phiModules, selectModules } from '../../../../src/engine/adapters/target-modules';
import { adapterRefusal as refusal } from '../../../support/refusal';

const PHI2 = { hidden: 2560, intermediate: 10240, layers: 32 };
const TINY = { hidden: 64, intermediate: 256, layers: 2 };
const ALL = ['q_proj', 'k_proj', 'v_proj', 'dense', 'fc1', 'fc2'];

describe('target_modules with PEFT semantics', () => {
  it("lists PhiForCausalLM's modules as transformers names them", () => {
    const names = phiModules(2).map((m) => m.name);
    expect(names).toContain('model.layers.1.self_attn.dense');
    expect(names).toContain('model.layers.0.mlp.fc2');
    expect(names).toContain('lm_head');
    expect(names).toContain('model.embed_tokens');
    expect(phiModules(2).filter((m) => m.target).length).toBe(12);
  });

  it('matches a string with re.fullmatch, not a search', () => {
    // A search would find "q_proj" in every q_proj module; a full match of "q_proj" finds none (the names are dotted paths).
    expect(refusal(() => parseAdapterConfig({ r: 2, target_modules: 'q_proj' }, 'c.json', TINY))).toMatch(/selects none of the layers/);
    expect(parseAdapterConfig({ r: 2, target_modules: '.*(q_proj|fc2)' }, 'c.json', TINY)).toMatchObject({ targets: ['q_proj', 'fc2'], layers: 'all' });
    expect(parseAdapterConfig({ r: 2, target_modules: '.*\\.(q_proj|fc2)$' }, 'c.json', TINY).targets).toEqual(['q_proj', 'fc2']);
    // Anchored on one layer: only that layer.
    const one = parseAdapterConfig({ r: 2, target_modules: 'model\\.layers\\.1\\.self_attn\\.(q|v)_proj' }, 'c.json', TINY);
    expect(one).toMatchObject({ targets: ['q_proj', 'v_proj'], layers: [1] });
    // \d+ against the model's real layer count: every one of Phi-2's 32 layers.
    expect(parseAdapterConfig({ r: 8, target_modules: 'model\\.layers\\.\\d+\\.mlp\\.fc[12]' }, 'c.json', PHI2)).toMatchObject({ targets: ['fc1', 'fc2'], layers: 'all' });
    expect(parseAdapterConfig({ r: 8, target_modules: 'model\\.layers\\.([0-9]|1[0-5])\\.mlp\\.fc1' }, 'c.json', PHI2).layers).toEqual(Array.from({ length: 16 }, (_, i) => i));
  });

  it('takes Python spellings RE2 writes differently', () => {
    expect(parseAdapterConfig({ r: 2, target_modules: '.*q_proj\\Z' }, 'c.json', TINY).targets).toEqual(['q_proj']);
    expect(parseAdapterConfig({ r: 2, target_modules: 'model\\.layers\\.\\d{,1}\\.self_attn\\.k_proj' }, 'c.json', TINY).targets).toEqual(['k_proj']);
    expect(parseAdapterConfig({ r: 2, target_modules: '(?P<t>.*\\.v_proj)' }, 'c.json', TINY).targets).toEqual(['v_proj']);
  });

  it('matches a list by name or by "." + name suffix, as PEFT does', () => {
    expect(parseAdapterConfig({ r: 2, target_modules: ['self_attn.q_proj', 'fc1'] }, 'c.json', TINY).targets).toEqual(['q_proj', 'fc1']);
    // "dense" is a suffix of self_attn.dense only; a name matching nothing (o_proj) is ignored as PEFT ignores it.
    expect(parseAdapterConfig({ r: 2, target_modules: ['dense', 'o_proj'] }, 'c.json', TINY).targets).toEqual(['dense']);
    expect(parseAdapterConfig({ r: 2, target_modules: ['model.layers.0.mlp.fc2', 'model.layers.1.mlp.fc2'] }, 'c.json', TINY)).toMatchObject({ targets: ['fc2'], layers: 'all' });
    expect(refusal(() => parseAdapterConfig({ r: 8, target_modules: ['c_attn', 'c_proj'] }, 'c.json', TINY))).toMatch(/selects none of the layers.*another model architecture/);
  });

  it('applies layers_to_transform and layers_pattern to lists only, and exclude_modules to both', () => {
    expect(parseAdapterConfig({ r: 2, target_modules: ['q_proj'], layers_to_transform: [1] }, 'c.json', TINY).layers).toEqual([1]);
    expect(parseAdapterConfig({ r: 2, target_modules: ['q_proj'], layers_to_transform: 0, layers_pattern: 'layers' }, 'c.json', TINY).layers).toEqual([0]);
    expect(parseAdapterConfig({ r: 2, target_modules: ['q_proj', 'k_proj'], exclude_modules: ['k_proj'] }, 'c.json', TINY).targets).toEqual(['q_proj']);
    expect(parseAdapterConfig({ r: 2, target_modules: 'all-linear', exclude_modules: '.*mlp.*' }, 'c.json', TINY).targets).toEqual(['q_proj', 'k_proj', 'v_proj', 'dense']);
    expect(refusal(() => parseAdapterConfig({ r: 2, target_modules: '.*q_proj', layers_to_transform: [0] }, 'c.json', TINY))).toMatch(/cannot be used when target_modules is a regular expression/);
  });

  it('reads "all-linear" as every linear layer but lm_head, in any case', () => {
    expect(parseAdapterConfig({ r: 2, target_modules: 'all-linear' }, 'c.json', TINY)).toMatchObject({ targets: ALL, layers: 'all' });
    expect(parseAdapterConfig({ r: 2, target_modules: 'ALL-Linear' }, 'c.json', PHI2).targets).toEqual(ALL);
    expect(selectModules({ target: { kind: 'all-linear' }, exclude: null, layersToTransform: null, layersPattern: [] }, 2, 'c').map((m) => m.name)).not.toContain('lm_head');
  });

  it('refuses selections it cannot apply, naming them', () => {
    expect(refusal(() => parseAdapterConfig({ r: 2, target_modules: '.*' }, 'c.json', TINY))).toMatch(/selects model, model\.embed_tokens, model\.layers and \d+ more, which are not/);
    expect(refusal(() => parseAdapterConfig({ r: 2, target_modules: 'lm_head|.*q_proj' }, 'c.json', TINY))).toMatch(/selects lm_head, which is not one of the linear layers/);
    const uneven = 'model\\.layers\\.0\\.self_attn\\.q_proj|model\\.layers\\.1\\.mlp\\.fc1';
    expect(refusal(() => parseAdapterConfig({ r: 2, target_modules: uneven }, 'c.json', TINY))).toMatch(/different layers in different blocks \(for instance not model\.layers\.0\.mlp\.fc1\)/);
  });

  it('says clearly what is wrong with a pattern it does not run, instead of a raw SyntaxError', () => {
    expect(refusal(() => parseAdapterConfig({ r: 2, target_modules: '.*(q_proj' }))).toMatch(/target_modules is the pattern ".*\(q_proj", but it is not a valid regular expression \(missing closing \)/);
    expect(refusal(() => parseAdapterConfig({ r: 2, target_modules: '.*(?<!attn)\\.dense' }))).toMatch(/lookahead or lookbehind, which has no linear-time form/);
    expect(refusal(() => parseAdapterConfig({ r: 2, target_modules: '(.*)\\1' }))).toMatch(/backreference/);
    expect(refusal(() => parseAdapterConfig({ r: 2, target_modules: `(${'a'.repeat(MAX_PATTERN_CHARS)})` }))).toMatch(/characters long; at most 2000/);
    expect(refusal(() => parseAdapterConfig({ r: 2, target_modules: 42 }))).toMatch(/target_modules must be a list of module names or a regular expression/);
    expect(refusal(() => parseAdapterConfig({ r: 2, target_modules: ['q_proj', 7] }))).toMatch(/target_modules\[1\] is not a module name/);
  });

  it('runs catastrophic-backtracking patterns to the end (a backtracking engine never returns on these)', () => {
    // On Phi-2's module names each of these takes a backtracking engine 2^30 steps or more: the test would hang.
    const evil = ['^([\\w.]+)+#$', '(?:(?:.*)*)*#', '(.*a){20}', '^(([a-z_.0-9])+)+\\d\\d\\d\\d\\d$'];
    for (const pattern of evil) {
      expect(refusal(() => parseAdapterConfig({ r: 8, target_modules: pattern }, 'c.json', PHI2))).toMatch(/selects none of the layers/);
    }
  });
});
