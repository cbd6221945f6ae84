import { expect } from 'vitest';
import { AdapterError } from '../../src/engine/adapters/peft';

/** The error `fn` throws; the test fails if it returns instead. */
export function refusal(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a refusal');
}

/** The message of the AdapterError `fn` throws; the test fails on any other error, or none. */
export function adapterRefusal(fn: () => unknown): string {
  const err = refusal(fn);
  expect(err).toBeInstanceOf(AdapterError);
  return err.message;
}
