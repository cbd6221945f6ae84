import { describe, expect, it } from 'vitest';
import { parsePhiConfig } from '../../../../src/engine/weights/config';
import { PHI2_CONFIG_JSON } from '../../../../src/shared/presets';
import { CheckpointError, type CheckpointErrorCode } from '../../../../src/engine/weights/errors';
import { PhiLayout, phiParamSpecs, storedBytes, storedDType } from '../../../../src/engine/weights/layout';
import { parseSafetensors } from '../../../../src/engine/weights/safetensors';
import { parseShardIndex } from '../../../../src/engine/weights/sharded';
import { fixtureBytes } from '../../../support/safetensors-fixtures';

const text = (...path: string[]) => new TextDecoder().decode(fixtureBytes(...path));
const golden = () => JSON.parse(text('golden', 'config.json')) as Record<string, unknown>;

function expectRefused(json: unknown, code: CheckpointErrorCode, ...fragments: RegExp[]) {
  let caught: unknown;
  try {
    parsePhiConfig(json);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(CheckpointError);
  expect((caught as CheckpointError).code).toBe(code);
  for (const f of fragments) expect((caught as Error).message).toMatch(f);
}

/** microsoft/phi-2's config.json before it moved into transformers (remote code, MixFormer layout). */
const PHI2_MSFT_CONFIG = {
  _name_or_path: 'microsoft/phi-2',
  activation_function: 'gelu_new',
  architectures: ['PhiForCausalLM'],
  auto_map: { AutoConfig: 'configuration_phi.PhiConfig', AutoModelForCausalLM: 'modeling_phi.PhiForCausalLM' },
  model_type: 'phi-msft',
  n_embd: 2560,
  n_head: 32,
  n_layer: 32,
  n_positions: 2048,
  rotary_dim: 32,
  vocab_size: 51200,
};

describe('Phi config', () => {
  it('parses the fixtures and Phi-2, deriving head and rotary dimensions', () => {
    const g = parsePhiConfig(text('golden', 'config.json'));
    expect(g).toMatchObject({ vocabSize: 512, hiddenSize: 160, intermediateSize: 640, numLayers: 2, numHeads: 2, headDim: 80, rotaryDim: 32 });
    expect(g).toMatchObject({ ropeTheta: 10000, layerNormEps: 1e-5, residPdrop: 0.1, eosTokenId: 50256, torchDtype: 'float16' });
    const t = parsePhiConfig(text('tiny-phi', 'config.json'));
    expect(t).toMatchObject({ vocabSize: 51200, hiddenSize: 64, headDim: 32, rotaryDim: 12 });
    const p = parsePhiConfig(PHI2_CONFIG_JSON);
    expect(p).toMatchObject({ vocabSize: 51200, hiddenSize: 2560, intermediateSize: 10240, numLayers: 32, numHeads: 32, headDim: 80, rotaryDim: 32 });
  });

  it('takes rope settings from rope_parameters as newer transformers write them', () => {
    const c = golden();
    delete c.rope_theta;
    delete c.partial_rotary_factor;
    c.rope_parameters = { rope_type: 'default', rope_theta: 500000, partial_rotary_factor: 0.5 };
    expect(parsePhiConfig(c)).toMatchObject({ ropeTheta: 500000, rotaryDim: 40 });
    c.rope_parameters = { rope_type: 'yarn', rope_theta: 1 };
    expectRefused(c, 'config-invalid', /rope_type "yarn"/);
  });

  it('refuses the old MixFormer (phi-msft) layout, saying what was found and what is supported', () => {
    expectRefused(PHI2_MSFT_CONFIG, 'unsupported-model', /MixFormer/, /model_type "phi-msft"/, /n_embd/, /transformer\.h\.N\.mixer\.Wqkv/, /Supported: PhiForCausalLM/);
    // the MixFormer keys alone give it away, whatever model_type says
    expectRefused({ ...golden(), n_embd: 160 }, 'unsupported-model', /MixFormer/);
  });

  it('refuses other model types and heads', () => {
    expectRefused({ ...golden(), model_type: 'phi3', architectures: ['Phi3ForCausalLM'] }, 'unsupported-model', /found model_type "phi3", architectures \["Phi3ForCausalLM"\]/, /Supported/);
    expectRefused({ ...golden(), model_type: undefined }, 'unsupported-model', /model_type null/);
    expectRefused({ ...golden(), architectures: ['PhiForSequenceClassification'] }, 'unsupported-model', /only the PhiForCausalLM head/);
  });

  it('refuses settings the engine does not implement', () => {
    expectRefused({ ...golden(), num_key_value_heads: 1 }, 'config-invalid', /num_key_value_heads 1 differs from num_attention_heads 2/);
    expectRefused({ ...golden(), tie_word_embeddings: true }, 'config-invalid', /tie_word_embeddings/);
    expectRefused({ ...golden(), qk_layernorm: true }, 'config-invalid', /qk_layernorm/);
    expectRefused({ ...golden(), rope_scaling: { type: 'linear', factor: 2 } }, 'config-invalid', /rope_scaling/);
    expectRefused({ ...golden(), hidden_act: 'gelu' }, 'config-invalid', /hidden_act "gelu"/);
  });

  it('refuses missing, malformed and inconsistent sizes', () => {
    const { vocab_size: _, ...noVocab } = golden();
    expectRefused(noVocab, 'config-invalid', /"vocab_size" is missing/);
    expectRefused({ ...golden(), hidden_size: '160' }, 'config-invalid', /"hidden_size" must be a positive integer, found "160"/);
    expectRefused({ ...golden(), num_hidden_layers: 0 }, 'config-invalid', /num_hidden_layers/);
    expectRefused({ ...golden(), num_attention_heads: 3, num_key_value_heads: 3 }, 'config-invalid', /hidden_size 160 is not a multiple of num_attention_heads 3/);
    expectRefused({ ...golden(), hidden_size: 162 }, 'config-invalid', /multiple of 4/);
    expectRefused({ ...golden(), intermediate_size: 642 }, 'config-invalid', /intermediate_size 642 must be a multiple of 4/);
    expectRefused({ ...golden(), partial_rotary_factor: 0.01 }, 'config-invalid', /rotary dimension/);
    expectRefused({ ...golden(), layer_norm_eps: -1 }, 'config-invalid', /layer_norm_eps/);
    expectRefused({ ...golden(), resid_pdrop: 1.5 }, 'config-invalid', /resid_pdrop/);
    expectRefused({ ...golden(), eos_token_id: -1 }, 'config-invalid', /"eos_token_id" -1 is not a token id/);
    expectRefused('{"model_type": "phi",', 'config-invalid', /not valid JSON/);
    expectRefused([], 'config-invalid', /not a JSON object/);
  });
});

describe('Phi name map and shapes', () => {
  it('maps every tensor of the fixtures\u2019 checkpoints, with the shapes in their headers', () => {
    for (const model of ['golden', 'tiny-phi']) {
      const layout = new PhiLayout(parsePhiConfig(text(model, 'config.json')));
      const index = parseShardIndex(text(model, 'model.safetensors.index.json'));
      layout.checkNames(index.weightMap.keys(), 'index', true);
      expect(layout.specs.length).toBe(index.weightMap.size);
      for (const shard of index.shards) {
        for (const t of parseSafetensors(fixtureBytes(model, shard)).header.tensors) {
          const spec = layout.checkTensor(t, shard)!;
          expect(spec.hfName).toBe(t.name);
          expect(spec.shape).toEqual(t.shape);
        }
      }
    }
  });

  it('gives engine keys and Phi-2\u2019s 2,779,683,840 parameters, about 3.05 GB in int8', () => {
    const specs = phiParamSpecs(parsePhiConfig(PHI2_CONFIG_JSON));
    const byKey = new Map(specs.map((s) => [s.key, s]));
    expect(byKey.get('layers.31.fc1.weight')).toMatchObject({ hfName: 'model.layers.31.mlp.fc1.weight', shape: [10240, 2560], layer: 31, module: 'fc1' });
    expect(byKey.get('layers.0.q.bias')).toMatchObject({ hfName: 'model.layers.0.self_attn.q_proj.bias', shape: [2560] });
    expect(byKey.get('layers.7.dense.weight')!.hfName).toBe('model.layers.7.self_attn.dense.weight');
    expect(byKey.get('layers.7.ln.weight')!.hfName).toBe('model.layers.7.input_layernorm.weight');
    expect(byKey.get('final_ln.bias')!.hfName).toBe('model.final_layernorm.bias');
    expect(byKey.get('embed.weight')!.shape).toEqual([51200, 2560]);
    expect(byKey.get('lm_head.bias')!.shape).toEqual([51200]);
    expect(specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0)).toBe(2_779_683_840);
    const int8 = specs.reduce((a, s) => a + storedBytes(s, storedDType(s, 'int8')), 0);
    const f16 = specs.reduce((a, s) => a + storedBytes(s, storedDType(s, 'f16')), 0);
    expect(int8 / 1e9).toBeCloseTo(3.05, 1);
    expect(f16 / 1e9).toBeCloseTo(5.56, 1);
  });

  it('stores linear weights as int8 or F16, embedding and head as F16, the rest as f32', () => {
    const layout = new PhiLayout(parsePhiConfig(text('golden', 'config.json')));
    const dtype = (key: string, scheme: 'int8' | 'f16') => storedDType(layout.specByKey(key)!, scheme);
    expect(dtype('layers.0.fc2.weight', 'int8')).toBe('i8');
    expect(dtype('layers.0.fc2.weight', 'f16')).toBe('f16');
    expect(dtype('embed.weight', 'int8')).toBe('f16');
    expect(dtype('lm_head.weight', 'int8')).toBe('f16');
    expect(dtype('lm_head.bias', 'int8')).toBe('f32');
    expect(dtype('layers.1.ln.weight', 'f16')).toBe('f32');
    expect(dtype('layers.1.k.bias', 'f16')).toBe('f32');
  });

  it('reports unexpected, missing, MixFormer-named, mis-shaped and mis-typed tensors clearly', () => {
    const layout = new PhiLayout(parsePhiConfig(text('golden', 'config.json')));
    const names = layout.specs.map((s) => s.hfName);
    const err = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return e as CheckpointError;
      }
      throw new Error('expected an error');
    };
    const unexpected = err(() => layout.checkNames([...names, 'model.layers.2.mlp.fc1.weight'], 'index.json', true));
    expect(unexpected.code).toBe('tensor-unexpected');
    expect(unexpected.message).toMatch(/model\.layers\.2\.mlp\.fc1\.weight/);
    expect(unexpected.message).toMatch(/with 2 layers/);
    const missing = err(() => layout.checkNames(names.filter((n) => n !== 'lm_head.bias'), 'index.json', true));
    expect(missing.code).toBe('tensor-missing');
    expect(missing.tensor).toBe('lm_head.bias');
    const mix = err(() => layout.checkNames(['transformer.h.0.mixer.Wqkv.weight'], 'model.safetensors', false));
    expect(mix.code).toBe('unsupported-model');
    expect(mix.message).toMatch(/MixFormer/);
    // derived buffers some exports include are skipped, not refused
    expect(() => layout.checkNames([...names, 'model.layers.0.self_attn.rotary_emb.inv_freq'], 'x', true)).not.toThrow();
    expect(layout.checkTensor({ name: 'model.layers.0.self_attn.rotary_emb.inv_freq', dtype: 'F32', shape: [16] }, 'x')).toBeNull();

    const shape = err(() => layout.checkTensor({ name: 'model.layers.1.mlp.fc2.weight', dtype: 'F16', shape: [640, 160] }, 'shard.safetensors'));
    expect(shape.code).toBe('tensor-shape');
    expect(shape.message).toMatch(/shard\.safetensors: model\.layers\.1\.mlp\.fc2\.weight has shape \[640, 160\] but config\.json implies \[160, 640\] \(\[hidden_size, intermediate_size\]\)/);
    const dtype = err(() => layout.checkTensor({ name: 'model.embed_tokens.weight', dtype: 'I8', shape: [512, 160] }, 'shard.safetensors'));
    expect(dtype.code).toBe('tensor-dtype');
    expect(dtype.message).toMatch(/I8/);
  });
});
