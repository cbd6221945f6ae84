/**
 * Failures as the pages show them. Every call into the worker can fail; comlink rebuilds a thrown Error
 * with its message and name only, so this is all a page can say about one, and every state class says it
 * the same way.
 */

/** The sentence to show for a failure. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === 'string') return err;
  return 'Something went wrong in the worker; the browser console has details.';
}

/** Whether the failure is a cancellation the user asked for (an AbortError). */
export function isCancel(err: unknown): boolean {
  return (err as { name?: unknown } | null)?.name === 'AbortError';
}
