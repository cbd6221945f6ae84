import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeAdapter, ADAPTER_CONFIG, ADAPTER_WEIGHTS } from '../engine/adapters/files';
import { Engine } from '../engine/engine';
import type { GpuRuntime } from '../engine/gpu/runtime';
import { KvCache, Phi2Model, Phi2Workspace, type KvCacheDType } from '../engine/model/phi2/forward';
import { Generator } from '../engine/model/phi2/generate';
import { loadPhi2FromSource } from '../engine/model/phi2/load';
import { LoraState } from '../engine/model/phi2/lora-state';
import { Phi2TrainStep } from '../engine/model/phi2/train-step';
import { nodePlatform } from '../engine/platform/node';
import { loadTokenizer } from '../engine/tokenizer';
import type { QuantScheme } from '../engine/weights/layout';
import { serializeSafetensors } from '../engine/weights/safetensors-write';
import { CliUsageError, idMatrix, intFlag, numberFlag, parseFlags, required } from './args';
import { directorySource } from './node-files';

/** The model commands of the CLI: forward, generate, lora-grad (train is in train-command.ts). Each loads a Hub-style checkpoint directory. */

export async function openModel(dir: string, weights: string | undefined, lmHead?: string, compute?: string, kvCache?: string): Promise<{ gpu: GpuRuntime; model: Phi2Model; scheme: QuantScheme }> {
  const scheme = (weights ?? 'int8') as QuantScheme;
  if (scheme !== 'int8' && scheme !== 'f16') throw new CliUsageError(`--weights must be int8 or f16, got "${weights}"`);
  if (lmHead !== undefined && lmHead !== 'int8' && lmHead !== 'f16') throw new CliUsageError(`--lm-head must be f16 or int8, got "${lmHead}"`);
  if (compute !== undefined && compute !== 'int8' && compute !== 'f32') throw new CliUsageError(`--compute must be f32 or int8, got "${compute}"`);
  if (kvCache !== undefined && kvCache !== 'f32' && kvCache !== 'f16') throw new CliUsageError(`--kv-cache must be f32 or f16, got "${kvCache}"`);
  if (compute === 'int8' && scheme !== 'int8') throw new CliUsageError('--compute int8 needs --weights int8 (the F16 mode is the exact one)');
  const engine = new Engine(await nodePlatform());
  const gpu = await engine.runtime();
  const { params } = await loadPhi2FromSource(gpu, await directorySource(dir), scheme);
  return { gpu, model: new Phi2Model(gpu, params, { lmHead: lmHead as 'f16' | 'int8' | undefined, compute: compute as 'f32' | 'int8' | undefined, kvCache: kvCache as KvCacheDType | undefined }), scheme };
}

export async function openTokenizer(dir: string) {
  const read = (name: string) => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch {
      throw new Error(`${dir} has no ${name}; the text commands need the model's tokenizer files beside its weights`);
    }
  };
  return loadTokenizer({ 'tokenizer.json': read('tokenizer.json'), 'tokenizer_config.json': read('tokenizer_config.json') });
}

export const FORWARD_USAGE = "usage: forward --model DIR --input-ids '[[1,2,3],[4,5,6]]' --out FILE.safetensors [--weights int8|f16] [--lm-head f16|int8] [--compute f32|int8] [--kv-cache f32|f16]";

export async function forwardCommand(args: string[]): Promise<number> {
  const f = parseFlags(args, ['model', 'input-ids', 'out', 'weights', 'lm-head', 'compute', 'kv-cache'], FORWARD_USAGE);
  const ids = idMatrix(required(f, 'input-ids', FORWARD_USAGE), 'input-ids');
  const out = required(f, 'out', FORWARD_USAGE);
  const { gpu, model } = await openModel(required(f, 'model', FORWARD_USAGE), f.get('weights'), f.get('lm-head'), f.get('compute'), f.get('kv-cache'));
  const B = ids.length;
  const T = ids[0].length;
  const ws = new Phi2Workspace(gpu, model.dims, B * T);
  const cache = new KvCache(gpu, model.dims, B, T, model.kvCache);
  const logits = model.forward(ws, cache, { ids: Uint32Array.from(ids.flat()), batch: B, seq: T, logits: 'all' })!;
  const data = await gpu.readF32(logits);
  writeFileSync(out, serializeSafetensors([{ name: 'logits', dtype: 'F32', shape: [B, T, model.dims.vocab], data }]));
  console.error(`wrote logits [${B}, ${T}, ${model.dims.vocab}] to ${out}`);
  return 0;
}

export const GENERATE_USAGE =
  'usage: generate --model DIR --prompt TEXT [--max-new-tokens N] [--weights int8|f16] [--lm-head f16|int8] [--compute f32|int8] [--kv-cache f32|f16] [--temperature T --top-k K --top-p P --seed S] [--adapter DIR]';

export async function generateCommand(args: string[]): Promise<number> {
  const f = parseFlags(args, ['model', 'prompt', 'max-new-tokens', 'weights', 'lm-head', 'compute', 'kv-cache', 'temperature', 'top-k', 'top-p', 'seed', 'adapter'], GENERATE_USAGE);
  const dir = required(f, 'model', GENERATE_USAGE);
  const prompt = required(f, 'prompt', GENERATE_USAGE);
  const tokenizer = await openTokenizer(dir);
  const { model } = await openModel(dir, f.get('weights'), f.get('lm-head'), f.get('compute'), f.get('kv-cache'));
  const adapter = f.has('adapter') ? loadAdapterDir(model, f.get('adapter')!) : null;
  const ids = tokenizer.encode(prompt);
  const generator = new Generator(model, { decodableVocab: Math.min(tokenizer.vocabSize, model.dims.vocab), endOfText: tokenizer.eosTokenId });
  const tokens: number[] = [];
  let printed = '';
  const result = await generator.generate(ids, {
    maxNewTokens: intFlag(f, 'max-new-tokens', 50, 1),
    sampling: { temperature: numberFlag(f, 'temperature', 0), topK: intFlag(f, 'top-k', 0), topP: numberFlag(f, 'top-p', 1) },
    seed: intFlag(f, 'seed', 0),
    ...(adapter ? { adapter } : {}),
    onToken: (t) => {
      // Stream whole characters: decode everything so far and print what is new.
      tokens.push(t);
      const text = tokenizer.decode(tokens);
      if (!text.endsWith('\uFFFD')) {
        process.stdout.write(text.slice(printed.length));
        printed = text;
      }
    },
  });
  const text = tokenizer.decode(result.tokens);
  process.stdout.write(text.slice(printed.length) + '\n');
  console.error(`(${result.tokens.length} tokens, stopped: ${result.stopped})`);
  return 0;
}

/** An adapter folder's PEFT files, decoded and checked against the model's shapes. */
export function readAdapterDir(model: Phi2Model, dir: string): ReturnType<typeof decodeAdapter> {
  const read = (name: string) => {
    try {
      return new Uint8Array(readFileSync(join(dir, name)));
    } catch {
      throw new CliUsageError(`${dir} has no ${name}: an adapter folder holds ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS}`);
    }
  };
  const d = model.dims;
  return decodeAdapter({ [ADAPTER_CONFIG]: read(ADAPTER_CONFIG), [ADAPTER_WEIGHTS]: read(ADAPTER_WEIGHTS) }, { hidden: d.hidden, intermediate: d.intermediate, layers: d.layers });
}

function loadAdapterDir(model: Phi2Model, dir: string): LoraState {
  const a = readAdapterDir(model, dir);
  const state = new LoraState(model.gpu, model.dims, a.settings);
  state.setWeights((name) => a.tensors.get(name)!.data);
  return state;
}

export const LORA_GRAD_USAGE =
  "usage: lora-grad --model DIR --adapter DIR --input-ids '[[...]]' --labels '[[...]]' --out FILE.safetensors [--weights int8|f16]";

export async function loraGradCommand(args: string[]): Promise<number> {
  const f = parseFlags(args, ['model', 'adapter', 'input-ids', 'labels', 'out', 'weights'], LORA_GRAD_USAGE);
  const ids = idMatrix(required(f, 'input-ids', LORA_GRAD_USAGE), 'input-ids');
  const labels = idMatrix(required(f, 'labels', LORA_GRAD_USAGE), 'labels');
  if (labels.length !== ids.length || labels[0].length !== ids[0].length) throw new CliUsageError('--labels must have the shape of --input-ids');
  const out = required(f, 'out', LORA_GRAD_USAGE);
  const { gpu, model } = await openModel(required(f, 'model', LORA_GRAD_USAGE), f.get('weights'));
  const lora = loadAdapterDir(model, required(f, 'adapter', LORA_GRAD_USAGE));
  const batch = { ids: Uint32Array.from(ids.flat()), labels: Int32Array.from(labels.flat()), batch: ids.length, seq: ids[0].length };
  const step = new Phi2TrainStep(model, lora, batch.batch, batch.seq);
  // Dropout off: the gradient of the loss as PEFT's model.eval() computes it.
  step.microStep(batch, { residDropout: 0, loraDropout: 0, seed: 0, labelCount: step.countLabels(batch) });
  const loss = await gpu.readF32(step.loss);
  const grads = lora.unflatten(await lora.readFlat('grads'));
  writeFileSync(
    out,
    serializeSafetensors([
      { name: 'loss', dtype: 'F32', shape: [1], data: loss },
      ...[...grads].map(([name, g]) => ({ name, dtype: 'F32' as const, shape: g.shape, data: g.data })),
    ]),
  );
  console.error(`loss ${loss[0]}; wrote it and ${grads.size} LoRA gradients to ${out}`);
  return 0;
}
