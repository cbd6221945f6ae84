import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PAPER_LORA } from '../../../../src/shared/lora';
import { AdapterError, exportAdapterConfig, parseAdapterConfig, planAdapterTensors } from '../../../../src/engine/adapters/peft';

const FIXTURES = `${import.meta.dirname}/../../../../../shared/fixtures`;
const TINY = { hidden: 64, intermediate: 256, layers: 2 };

function safetensorsHeader(path: string): Map<string, { shape: number[]; dtype: string }> {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  delete header.__metadata__;
  return new Map(Object.entries(header));
}

describe('PEFT adapter config', () => {
  it('reads the real PEFT adapters of the fixtures', () => {
    const s = parseAdapterConfig(JSON.parse(readFileSync(`${FIXTURES}/tiny-phi/golden/adapter/adapter_config.json`, 'utf8')));
    expect(s).toMatchObject({ r: 4, alpha: 8, dropout: 0, useRslora: false, layers: 'all' });
    expect(s.targets).toEqual(['q_proj', 'k_proj', 'v_proj', 'dense', 'fc1', 'fc2']);
    const plan = planAdapterTensors(s, TINY, safetensorsHeader(`${FIXTURES}/tiny-phi/golden/adapter/adapter_model.safetensors`));
    expect(plan).toHaveLength(12);
    expect(plan[0].a).toBe('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight');
  });

  it('round-trips its own export, with the keys PEFT writes', () => {
    const json = exportAdapterConfig(PAPER_LORA, 'microsoft/phi-2');
    expect(json).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 64, lora_alpha: 64, lora_dropout: 0.05, bias: 'none' });
    expect(json.base_model_name_or_path).toBe('microsoft/phi-2');
    const back = parseAdapterConfig(JSON.parse(JSON.stringify(json)));
    expect(back).toMatchObject({ ...PAPER_LORA, baseModel: 'microsoft/phi-2' });
  });

  it('tolerates the fewer keys of older PEFT versions', () => {
    const s = parseAdapterConfig({ r: 16, lora_alpha: 32, target_modules: ['q_proj', 'v_proj'] });
    expect(s).toMatchObject({ r: 16, alpha: 32, dropout: 0, useRslora: false, targets: ['q_proj', 'v_proj'], layers: 'all' });
  });

  it('resolves a regular-expression target_modules against Phi layers', () => {
    expect(parseAdapterConfig({ r: 2, target_modules: '.*(q_proj|fc2)$' }).targets).toEqual(['q_proj', 'fc2']);
  });

  it("refuses adapters for other architectures and features it can't apply", () => {
    expect(() => parseAdapterConfig({ r: 8, target_modules: ['c_attn', 'c_proj'] })).toThrow(/selects none of the layers of this Phi model.*another model architecture/);
    expect(() => parseAdapterConfig({ peft_type: 'IA3', r: 8, target_modules: ['q_proj'] })).toThrow(/only LoRA/);
    expect(() => parseAdapterConfig({ r: 8, target_modules: ['q_proj'], use_dora: true })).toThrow(/DoRA/);
    expect(() => parseAdapterConfig({ r: 8, target_modules: ['q_proj'], task_type: 'SEQ_CLS' })).toThrow(/CAUSAL_LM/);
    expect(() => parseAdapterConfig({ r: 0, target_modules: ['q_proj'] })).toThrow(/r must be a positive integer of at most 1024/);
  });

  it('refuses tensors of the wrong shape, naming the tensor and the sizes', () => {
    const s = parseAdapterConfig({ r: 4, lora_alpha: 8, target_modules: ['q_proj'] });
    const tensors = new Map([
      ['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', { shape: [4, 2560], dtype: 'F32' }],
      ['base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', { shape: [2560, 4], dtype: 'F32' }],
      ['base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight', { shape: [4, 2560], dtype: 'F32' }],
      ['base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight', { shape: [2560, 4], dtype: 'F32' }],
    ]);
    expect(() => planAdapterTensors(s, TINY, tensors)).toThrow(AdapterError);
    expect(() => planAdapterTensors(s, TINY, tensors)).toThrow(/q_proj.lora_A.weight has shape \[4,2560\] but this model needs \[4,64\].*another size/);
  });

  it('refuses missing and unexpected tensors', () => {
    const s = parseAdapterConfig({ r: 4, target_modules: ['q_proj'] });
    const q = (l: number, ab: string, shape: number[]) => [`base_model.model.model.layers.${l}.self_attn.q_proj.lora_${ab}.weight`, { shape, dtype: 'F32' }] as const;
    const missing = new Map([q(0, 'A', [4, 64]), q(0, 'B', [64, 4]), q(1, 'A', [4, 64])]);
    expect(() => planAdapterTensors(s, TINY, missing)).toThrow(/lacks lora_B for base_model.model.model.layers.1.self_attn.q_proj/);
    const extra = new Map([q(0, 'A', [4, 64]), q(0, 'B', [64, 4]), q(1, 'A', [4, 64]), q(1, 'B', [64, 4]), q(5, 'A', [4, 64]), q(5, 'B', [64, 4])]);
    expect(() => planAdapterTensors(s, TINY, extra)).toThrow(/model has only 2 layers/);
    const stray = new Map<string, { shape: number[]; dtype: string }>([...extra.entries()].slice(0, 4));
    stray.set('base_model.model.lm_head.weight', { shape: [1, 1], dtype: 'F32' });
    expect(() => planAdapterTensors(s, TINY, stray)).toThrow(/not LoRA weights of a Phi model/);
  });
});
