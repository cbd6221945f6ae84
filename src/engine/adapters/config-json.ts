import { describeExcessNesting, findExcessNesting } from '../untrusted-json';
import { AdapterError } from './errors';

/**
 * adapter_config.json is a few hundred bytes to a few kilobytes (PEFT writes one key per option); a
 * larger one is not a PEFT config, so it is refused before it is decoded or parsed, wherever it comes
 * from (a file, a .zip, a URL).
 */
export const MAX_ADAPTER_CONFIG_BYTES = 64 * 1024;

/** The parsed JSON of adapter_config.json, refused with a message naming `source` if it is too large, not text or too deep. */
export function readAdapterConfigJson(bytes: Uint8Array, source: string): unknown {
  if (bytes.length > MAX_ADAPTER_CONFIG_BYTES) {
    throw new AdapterError(`${source} is ${bytes.length.toLocaleString('en-US')} bytes; a PEFT adapter config is a few kilobytes (at most ${MAX_ADAPTER_CONFIG_BYTES / 1024} KiB accepted).`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new AdapterError(`${source} is not UTF-8 text, so it is not a PEFT adapter config.`);
  }
  const deep = findExcessNesting(text);
  if (deep) throw new AdapterError(`${source} is JSON ${describeExcessNesting(deep)}; a PEFT adapter config is flat.`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new AdapterError(`${source} is not valid JSON: ${(err as Error).message}`);
  }
}
