import { describe, expect, it } from 'vitest';
import { testPlatform } from '../../../support/idb';
import { WeightStore } from '../../../../src/engine/store/store';
import { TokenizerError, loadStoredTokenizer, loadTokenizer } from '../../../../src/engine/tokenizer/index';
import { fixtureBytes } from '../../../support/safetensors-fixtures';

const text = (...path: string[]) => new TextDecoder().decode(fixtureBytes(...path));
const files = () => ({ 'tokenizer.json': text('phi2-tokenizer', 'tokenizer.json'), 'tokenizer_config.json': text('phi2-tokenizer', 'tokenizer_config.json') });
const vectors = JSON.parse(text('phi2-tokenizer', 'vectors.json')).vectors as Array<{ text: string; ids: number[] }>;

async function tokenizerError(p: Promise<unknown>): Promise<TokenizerError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(TokenizerError);
    return err as TokenizerError;
  }
  throw new Error('expected a TokenizerError');
}

describe('Phi-2 tokenizer', () => {
  it('tokenises every reference vector to exactly its ids and decodes them back', async () => {
    const tok = await loadTokenizer(files());
    expect(vectors.length).toBe(51);
    for (const v of vectors) {
      expect(tok.encode(v.text), JSON.stringify(v.text)).toEqual(v.ids);
      expect(tok.decode(v.ids), JSON.stringify(v.text)).toBe(v.text);
    }
  });

  it('knows its special tokens and size: GPT-2\u2019s 50257 plus 38 whitespace tokens, no BOS added', async () => {
    const tok = await loadTokenizer(files());
    expect(tok.vocabSize).toBe(50295);
    expect(tok.eosTokenId).toBe(50256);
    expect(tok.tokenId('<|endoftext|>')).toBe(50256);
    expect(tok.encode('<|endoftext|>Hi')).toEqual([50256, 17250]);
    expect(tok.decode([50256, 17250], { skipSpecialTokens: true })).toBe('Hi');
    expect(tok.encode('Hello world')[0]).toBe(15496); // nothing prepended
  });

  it('applies the config\u2019s space clean-up only when asked', async () => {
    const tok = await loadTokenizer(files());
    const ids = tok.encode('Are you sure ?');
    expect(tok.decode(ids)).toBe('Are you sure ?');
    expect(tok.decode(ids, { cleanUpSpaces: true })).toBe('Are you sure?');
  });

  it('reproduces the tiny-phi golden prompt and generated text', async () => {
    const golden = JSON.parse(text('tiny-phi', 'golden', 'golden.json')).text_greedy;
    const tok = await loadTokenizer({ 'tokenizer.json': JSON.parse(text('tiny-phi', 'tokenizer.json')), 'tokenizer_config.json': text('tiny-phi', 'tokenizer_config.json') });
    expect(tok.encode(golden.prompt)).toEqual(golden.prompt_ids);
    expect(tok.decode(golden.generated)).toBe(golden.generated_text);
  });

  it('refuses missing or malformed files and ids outside the vocabulary', async () => {
    expect((await tokenizerError(loadTokenizer({ 'tokenizer.json': files()['tokenizer.json'] }))).code).toBe('missing');
    expect((await tokenizerError(loadTokenizer({ ...files(), 'tokenizer.json': '{"model": ' }))).message).toMatch(/tokenizer\.json is not valid JSON/);
    const wordLevel = await tokenizerError(loadTokenizer({ ...files(), 'tokenizer.json': { model: { type: 'WordLevel', vocab: {} } } }));
    expect(wordLevel.message).toMatch(/found model type "WordLevel"/);
    const tok = await loadTokenizer(files());
    expect(() => tok.decode([15496, 50295])).toThrow(/token id 50295 at position 1 is not in the vocabulary/);
    expect(() => tok.decode([1.5])).toThrow(TokenizerError);
    expect(tok.decode([])).toBe('');
  });

  it('is stored with the model in IndexedDB and loads from there', async () => {
    const store = await WeightStore.open(testPlatform());
    await expect(loadStoredTokenizer(store, 'm')).rejects.toThrow(/No tokenizer is stored with model m/);
    await store.putTokenizer('m', files());
    const tok = await loadStoredTokenizer(store, 'm');
    expect(tok.encode(vectors[11].text)).toEqual(vectors[11].ids);
  });
});
