import type { RetryStatus } from './retry';

/** Transfer rate over a sliding window, and the time left at that rate. */
export class RateMeter {
  private samples: Array<[number, number]> = [];

  constructor(
    private readonly now: () => number,
    /** Milliseconds of history the rate is measured over. */
    private readonly windowMs = 5000,
  ) {}

  /** Records the cumulative byte count reached now. */
  sample(totalBytes: number): void {
    const t = this.now();
    this.samples.push([t, totalBytes]);
    // Keep one sample older than the window so the rate spans the whole window.
    while (this.samples.length > 2 && t - this.samples[1][0] > this.windowMs) this.samples.shift();
  }

  /** Bytes per second over the window; 0 until two samples some time apart exist. */
  get rate(): number {
    if (this.samples.length < 2) return 0;
    const [t0, b0] = this.samples[0];
    const [t1, b1] = this.samples[this.samples.length - 1];
    return t1 > t0 ? ((b1 - b0) * 1000) / (t1 - t0) : 0;
  }

  /** Seconds to transfer `remaining` bytes at the current rate; null while the rate is unknown. */
  secondsFor(remaining: number): number | null {
    const r = this.rate;
    return r > 0 ? Math.max(0, remaining) / r : null;
  }

  reset(): void {
    this.samples = [];
  }
}

export interface TransferProgress {
  bytesDone: number;
  /** null while unknown (before a response says how large a file is). */
  bytesTotal: number | null;
  /** Bytes per second, recent. */
  rate: number;
  /** Seconds left at the recent rate; null while unknown. */
  etaSeconds: number | null;
}

export interface ImportProgress {
  /** 'verifying': every stored record read back and checked (before "complete", and when importing a stored model again); `overall` counts its bytes. */
  phase: 'metadata' | 'weights' | 'tokenizer' | 'verifying' | 'complete';
  /** The file being read, with its own progress; null outside the weights phase. */
  file: ({ name: string } & TransferProgress) | null;
  /** All weight files together; bytesTotal is an estimate until every file's size is known. */
  overall: TransferProgress;
  tensorsDone: number;
  tensorsTotal: number;
  /** A message worth showing: a retry, a restart after the file changed, a resume. */
  notice?: string;
  /** Set on the report of a wait before another try (its notice says the same in words). */
  retry?: RetryStatus;
}
