/** The sentence to show for a failure that crossed the worker boundary (comlink rebuilds Errors with their message). */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === 'string') return err;
  return 'Something went wrong in the worker; see the console for details.';
}

export function isCancel(err: unknown): boolean {
  return (err as { name?: unknown } | null)?.name === 'AbortError';
}
