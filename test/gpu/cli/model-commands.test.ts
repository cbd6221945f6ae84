import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeAdapter, ADAPTER_CONFIG, ADAPTER_WEIGHTS } from '../../../src/engine/adapters/files';
import { forwardCommand, loraGradCommand } from '../../../src/cli/model-commands';
import { trainCommand } from '../../../src/cli/train-command';
import { parseSafetensors } from '../../../src/engine/weights/safetensors';
import { compareTensors } from '../../support/compare';
import { goldenJson, goldenTensors, MODELS } from '../../support/fixtures';

// The CLI's model commands, run in-process against the goldens of transformers + PEFT.
const tmp = mkdtempSync(join(tmpdir(), 'phi2-cli-'));
const read = (path: string) => parseSafetensors(new Uint8Array(readFileSync(path)), path);

describe('npm run cli', () => {
  const golden = goldenJson(MODELS.golden);
  const ids = JSON.stringify(golden.input_ids);

  it('forward writes the logits [batch, seq, vocab] as `logits`, in both weight modes', async () => {
    for (const weights of ['int8', 'f16'] as const) {
      const out = join(tmp, `logits-${weights}.safetensors`);
      expect(await forwardCommand(['--model', MODELS.golden, '--input-ids', ids, '--out', out, '--weights', weights])).toBe(0);
      const file = read(out);
      expect(file.header.tensors[0]).toMatchObject({ name: 'logits', dtype: 'F32', shape: [2, 24, 512] });
      const ref = goldenTensors(MODELS.golden, 'forward.safetensors').float32(weights === 'int8' ? 'int8_logits' : 'logits');
      expect(compareTensors(`cli forward ${weights}`, file.float32('logits'), ref).relError).toBeLessThan(1e-4);
    }
  }, 600_000);

  it('lora-grad writes the loss and every LoRA gradient under its PEFT name', async () => {
    const out = join(tmp, 'grads.safetensors');
    const labels = JSON.stringify(golden.lora.labels);
    const code = await loraGradCommand(['--model', MODELS.golden, '--adapter', join(MODELS.golden, 'golden/adapter'), '--input-ids', ids, '--labels', labels, '--out', out, '--weights', 'f16']);
    expect(code).toBe(0);
    const file = read(out);
    expect(Math.abs(file.float32('loss')[0] - golden.lora.loss) / golden.lora.loss).toBeLessThan(1e-5);
    const ref = goldenTensors(MODELS.golden, 'lora_grads.safetensors');
    for (const t of ref.header.tensors) {
      expect(compareTensors(`cli ${t.name.slice(24)}`, file.float32(t.name), ref.float32(t.name), true).relError).toBeLessThan(1e-3);
    }
  }, 600_000);

  it('refuses bad arguments with the usage', async () => {
    expect(await forwardCommand(['--model', MODELS.golden, '--input-ids', '[[1,2],[3]]', '--out', 'x']).catch((e: Error) => e.message)).toMatch(/same length/);
    expect(await forwardCommand(['--modle', 'x']).catch((e: Error) => e.message)).toMatch(/unknown option --modle/);
  });

  it('train fits an adapter on a JSONL file and writes it as PEFT files', async () => {
    const data = join(tmp, 'data.jsonl');
    writeFileSync(data, ['{"question":"2+2?","response":"4"}', '{"question":"Capital of France?","response":"Paris"}', '{"question":"Sky colour?","response":"Blue"}'].join('\n'));
    const out = join(tmp, 'adapter');
    const code = await trainCommand(['--model', MODELS.tiny, '--data', data, '--out', out, '--steps', '2', '--r', '4', '--alpha', '8', '--lr', '1e-3', '--weights', 'f16', '--max-length', '32']);
    expect(code).toBe(0);
    const adapter = decodeAdapter(
      { [ADAPTER_CONFIG]: new Uint8Array(readFileSync(join(out, ADAPTER_CONFIG))), [ADAPTER_WEIGHTS]: new Uint8Array(readFileSync(join(out, ADAPTER_WEIGHTS))) },
      { hidden: 64, intermediate: 256, layers: 2 },
    );
    expect(adapter.settings).toMatchObject({ r: 4, alpha: 8 });
    // Two steps at lr 1e-3 move B off its zero initialisation.
    const b = adapter.tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')!.data;
    expect(b.some((x) => x !== 0)).toBe(true);
  }, 600_000);
});
