/** An adapter that cannot be used here: the message says what is wrong and, where it helps, what to do. */
export class AdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdapterError';
  }
}
