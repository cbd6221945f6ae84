import type { PreTrainedTokenizer } from '@huggingface/transformers';

/**
 * Phi-2's tokenizer (CodeGen/GPT-2 byte-level BPE plus 38 added whitespace tokens; no BOS), built by
 * @huggingface/transformers from the tokenizer.json and tokenizer_config.json objects we hold: no
 * network, no hand-written BPE. The library is imported on first use, so that it lands in its own
 * chunk of the app and costs nothing until a tokenizer is needed.
 */

export const TOKENIZER_JSON = 'tokenizer.json';
export const TOKENIZER_CONFIG_JSON = 'tokenizer_config.json';

export class TokenizerError extends Error {
  constructor(
    readonly code: 'missing' | 'invalid' | 'bad-ids',
    message: string,
  ) {
    super(message);
    this.name = 'TokenizerError';
  }
}

export interface DecodeOptions {
  /**
   * Apply the tokenizer config's "clean up tokenization spaces" (drops the space before punctuation,
   * as " ?" → "?"). Off by default: byte-level BPE decoding is exact without it, and the clean-up
   * loses information.
   */
  cleanUpSpaces?: boolean;
  /** Drop special tokens (<|endoftext|>) from the text. */
  skipSpecialTokens?: boolean;
}

export class PhiTokenizer {
  /** Ids of the vocabulary plus added tokens: ids at or past this are not tokens. */
  readonly vocabSize: number;
  readonly eosTokenId: number | null;
  readonly bosTokenId: number | null;

  constructor(private readonly tokenizer: PreTrainedTokenizer) {
    const vocab = tokenizer.get_vocab();
    let max = -1;
    for (const id of vocab.values()) if (id > max) max = id;
    this.vocabSize = max + 1;
    this.eosTokenId = tokenizer.eos_token_id ?? null;
    this.bosTokenId = tokenizer.bos_token_id ?? null;
  }

  /** Token ids of a text, exactly as transformers' tokenizer.encode (Phi-2 adds no special tokens). */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new TokenizerError('invalid', `encode needs a string, got ${typeof text}`);
    return this.tokenizer.encode(text);
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new TokenizerError('bad-ids', `token id ${id} at position ${i} is not in the vocabulary (0..${this.vocabSize - 1})`);
      }
    }
    if (ids.length === 0) return '';
    return this.tokenizer.decode([...ids], {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: options.cleanUpSpaces ?? false,
    });
  }

  /** The id of one token string, or null when it is not a single token. */
  tokenId(token: string): number | null {
    return this.tokenizer.get_vocab().get(token) ?? null;
  }
}

function asObject(value: string | object | undefined, file: string): Record<string, unknown> {
  if (value === undefined) throw new TokenizerError('missing', `${file} is missing; the tokenizer needs tokenizer.json and tokenizer_config.json.`);
  let parsed: unknown = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch (err) {
      throw new TokenizerError('invalid', `${file} is not valid JSON: ${(err as Error).message}`);
    }
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new TokenizerError('invalid', `${file} is not a JSON object`);
  return parsed as Record<string, unknown>;
}

/**
 * Builds the tokenizer from the two files' texts (or parsed objects), keyed by file name as the
 * store keeps them.
 */
export async function loadTokenizer(files: Record<string, string | object | undefined>): Promise<PhiTokenizer> {
  const json = asObject(files[TOKENIZER_JSON], TOKENIZER_JSON);
  const config = asObject(files[TOKENIZER_CONFIG_JSON], TOKENIZER_CONFIG_JSON);
  const model = json.model as Record<string, unknown> | undefined;
  if (!model || model.type !== 'BPE' || !model.vocab || !model.merges) {
    throw new TokenizerError('invalid', `${TOKENIZER_JSON} does not hold a BPE model with a vocabulary and merges (found model type ${JSON.stringify(model?.type ?? null)}).`);
  }
  const { PreTrainedTokenizer } = await import('@huggingface/transformers');
  let tokenizer: PreTrainedTokenizer;
  try {
    tokenizer = new PreTrainedTokenizer(json, config);
  } catch (err) {
    throw new TokenizerError('invalid', `The tokenizer files could not be loaded: ${(err as Error).message}`);
  }
  return new PhiTokenizer(tokenizer);
}

/** The tokenizer stored with a model (see store.putTokenizer). */
export async function loadStoredTokenizer(
  store: { getTokenizer(modelId: string): Promise<Record<string, string> | undefined> },
  modelId: string,
): Promise<PhiTokenizer> {
  const files = await store.getTokenizer(modelId);
  if (!files) throw new TokenizerError('missing', `No tokenizer is stored with model ${modelId}; import its tokenizer.json and tokenizer_config.json.`);
  return loadTokenizer(files);
}
