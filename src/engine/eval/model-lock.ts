/** One GPU task at a time per model: evaluation, demo, training and adapter merges share a Generator. */

const holders = new WeakMap<object, string>();

export class ModelBusyError extends Error {
  override name = 'ModelBusyError';
}

/**
 * Runs `task` with exclusive use of a Generator (its workspace and KV cache are shared by every call,
 * so two generations must not interleave). A second caller is refused at once with what holds it,
 * rather than queued behind a long evaluation without a word.
 */
export async function withModel<T>(generator: object, what: string, task: () => Promise<T>): Promise<T> {
  const holder = holders.get(generator);
  if (holder !== undefined) throw new ModelBusyError(`The model is busy with ${holder}. Wait for it to finish or cancel it, then try again.`);
  holders.set(generator, what);
  try {
    return await task();
  } finally {
    holders.delete(generator);
  }
}

export function modelBusyWith(generator: object): string | null {
  return holders.get(generator) ?? null;
}
