import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, decodeAdapter } from '../engine/adapters/files';
import { Engine } from '../engine/engine';
import { generateContrastive, MAX_CONTRAST_SAMPLES, type ContrastDirection } from '../engine/inspect/contrastive';
import { Phi2Model } from '../engine/model/phi2/forward';
import { loadPhi2FromSource } from '../engine/model/phi2/load';
import { LoraState } from '../engine/model/phi2/lora-state';
import { nodePlatform } from '../engine/platform/node';
import { loadTokenizer } from '../engine/tokenizer';
import type { QuantScheme } from '../engine/weights/layout';
import { CliUsageError, intFlag, numberFlag, parseFlags, required } from './args';
import { directorySource } from './node-files';

/**
 * `contrast`: contrastive generation between a model with an adapter and without it (see
 * src/engine/inspect/contrastive.ts): what the adapter made likely, or with --reverse what it made
 * unlikely. Prints each sample's text, then its tokens with their scores (log p_adapter − log p_base).
 */

export const CONTRAST_USAGE = [
  'usage: contrast --model DIR --adapter DIR --prompt TEXT [--max-new-tokens N (40)] [--samples N (1)]',
  `  [--temperature T (0: greedy, one sample; > 0 for up to ${MAX_CONTRAST_SAMPLES} diverse samples)] [--plausibility A (0.1)] [--seed S (0)]`,
  '  [--reverse true] [--weights int8|f16] [--json true]',
].join('\n');

export async function contrastCommand(args: string[], out: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  const known = ['model', 'adapter', 'prompt', 'max-new-tokens', 'samples', 'temperature', 'plausibility', 'seed', 'reverse', 'weights', 'json'];
  const f = parseFlags(args, known, CONTRAST_USAGE);
  const dir = required(f, 'model', CONTRAST_USAGE);
  const adapterDir = required(f, 'adapter', CONTRAST_USAGE);
  const prompt = required(f, 'prompt', CONTRAST_USAGE);
  const scheme = (f.get('weights') ?? 'int8') as QuantScheme;
  if (scheme !== 'int8' && scheme !== 'f16') throw new CliUsageError(`--weights must be int8 or f16, got "${scheme}"`);
  const read = (folder: string, name: string) => {
    try {
      return new Uint8Array(readFileSync(join(folder, name)));
    } catch {
      throw new CliUsageError(`${folder} has no ${name}`);
    }
  };
  const tokenizer = await loadTokenizer({
    'tokenizer.json': new TextDecoder().decode(read(dir, 'tokenizer.json')),
    'tokenizer_config.json': new TextDecoder().decode(read(dir, 'tokenizer_config.json')),
  });
  const adapterFiles = { [ADAPTER_CONFIG]: read(adapterDir, ADAPTER_CONFIG), [ADAPTER_WEIGHTS]: read(adapterDir, ADAPTER_WEIGHTS) };
  const direction: ContrastDirection = f.get('reverse') === 'true' ? 'base-over-adapter' : 'adapter-over-base';
  const gpu = await new Engine(await nodePlatform()).runtime();
  const model = new Phi2Model(gpu, (await loadPhi2FromSource(gpu, await directorySource(dir), scheme)).params);
  const d = model.dims;
  const adapter = decodeAdapter(adapterFiles, { hidden: d.hidden, intermediate: d.intermediate, layers: d.layers });
  const lora = new LoraState(gpu, d, adapter.settings);
  lora.setWeights((name) => adapter.tensors.get(name)!.data);
  const ids = tokenizer.encode(prompt);
  const samples = await generateContrastive(model, lora, ids, {
    maxNewTokens: intFlag(f, 'max-new-tokens', 40, 1),
    samples: intFlag(f, 'samples', 1, 1),
    direction,
    plausibility: numberFlag(f, 'plausibility', 0.1),
    temperature: numberFlag(f, 'temperature', 0),
    seed: intFlag(f, 'seed', 0),
    decodableVocab: Math.min(tokenizer.vocabSize, d.vocab),
    endOfText: tokenizer.eosTokenId,
  });
  if (f.get('json') === 'true') {
    for (const s of samples) {
      out(JSON.stringify({ text: tokenizer.decode(s.tokens), tokens: s.tokens, scores: s.choices.map((c) => c.score), stopped: s.stopped }) + '\n');
    }
    return 0;
  }
  const what = direction === 'adapter-over-base' ? 'log p_adapter − log p_base' : 'log p_base − log p_adapter';
  samples.forEach((s, i) => {
    out(`--- sample ${i + 1} (${s.tokens.length} tokens, stopped: ${s.stopped})\n${prompt}${tokenizer.decode(s.tokens)}\n`);
    out(`${s.tokens.map((t, j) => `${JSON.stringify(tokenizer.decode([t]))} ${s.choices[j].score.toFixed(2)}`).join('  ')}\n`);
  });
  out(`(scores: ${what} per chosen token)\n`);
  return 0;
}
