import type { ModelManifest } from '../store/schema';
import type { RetryStatus } from './retry';
import type { ByteSource } from './safetensors';

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

/** Passes chunks through, reporting each chunk's size. */
export async function* countBytes(source: ByteSource, onBytes: (n: number) => void): AsyncGenerator<Uint8Array, void, undefined> {
  if (typeof (source as ReadableStream<Uint8Array>).getReader === 'function') {
    const reader = (source as ReadableStream<Uint8Array>).getReader();
    let finished = false;
    try {
      for (;;) {
        const r = await reader.read();
        if (r.done) {
          finished = true;
          return;
        }
        onBytes(r.value.length);
        yield r.value;
      }
    } finally {
      if (!finished) await reader.cancel().catch(() => undefined);
    }
  } else {
    for await (const chunk of source as AsyncIterable<Uint8Array>) {
      onBytes(chunk.length);
      yield chunk;
    }
  }
}

/** Keeps the numbers behind ImportProgress and reports them, at most every 100 ms between events. */
export class ProgressTracker {
  private fileName: string | null = null;
  private fileTotal: number | null = null;
  private filePos = 0;
  private finishedBytes = 0;
  private expectedTotal = 0;
  private tensorsDoneCount = 0;
  private tensorsTotal = 0;
  private sessionBytes = 0;
  private currentPhase: ImportProgress['phase'] = 'metadata';
  private readonly fileRate: RateMeter;
  private readonly overallRate: RateMeter;
  private lastEmit = -Infinity;
  private verified = { done: 0, total: 0 };

  constructor(
    private readonly now: () => number,
    private readonly onProgress?: (p: ImportProgress) => void,
  ) {
    this.fileRate = new RateMeter(now);
    this.overallRate = new RateMeter(now);
  }

  setTotals(expectedBytes: number, tensorsTotal: number, tensorsDone: number): void {
    this.expectedTotal = expectedBytes;
    this.tensorsTotal = tensorsTotal;
    this.tensorsDoneCount = tensorsDone;
  }

  phase(p: ImportProgress['phase']): void {
    this.currentPhase = p;
    this.emit(true);
  }

  notice(message: string): void {
    this.emit(true, message);
  }

  /** A wait before another try: the notice for logs, the status for a page that shows one line with a count. */
  retrying(status: RetryStatus, message: string): void {
    this.emit(true, message, status);
  }

  startFile(name: string, expectedSize: number): void {
    this.fileName = name;
    this.fileTotal = expectedSize;
    this.filePos = 0;
    this.fileRate.reset();
    this.emit(true);
  }

  filePosition(offset: number): void {
    this.filePos = offset;
    this.fileRate.reset();
    this.fileRate.sample(0);
  }

  fileSize(size: number): void {
    this.fileTotal = size;
  }

  received(n: number): void {
    this.filePos += n;
    this.sessionBytes += n;
    this.fileRate.sample(this.filePos);
    this.overallRate.sample(this.sessionBytes);
    this.emit(false);
  }

  tensorDone(): void {
    this.tensorsDoneCount++;
  }

  /** Bytes read back and checked so far ('verifying'), reported in place of the transfer. */
  verifying(_what: string, done: number, total: number): void {
    this.currentPhase = 'verifying';
    this.verified = { done, total };
    this.emit(false);
  }

  fileSkipped(size: number): void {
    this.finishedBytes += size;
  }

  endFile(size: number): void {
    this.finishedBytes += size;
    this.fileName = null;
    this.filePos = 0;
    this.emit(true);
  }

  complete(manifest: ModelManifest, tensors: number): void {
    const total = manifest.files.reduce((a, f) => a + (f.size ?? 0), 0);
    this.finishedBytes = total;
    this.expectedTotal = total;
    this.tensorsDoneCount = tensors;
    this.tensorsTotal = tensors;
    this.currentPhase = 'complete';
    this.emit(true);
  }

  private transfer(done: number, total: number | null, meter: RateMeter): TransferProgress {
    return { bytesDone: done, bytesTotal: total, rate: meter.rate, etaSeconds: total === null ? null : meter.secondsFor(total - done) };
  }

  private emit(force: boolean, notice?: string, retry?: RetryStatus): void {
    if (!this.onProgress) return;
    const t = this.now();
    if (!force && t - this.lastEmit < 100) return;
    this.lastEmit = t;
    if (this.currentPhase === 'verifying') {
      const { done, total } = this.verified;
      this.onProgress({
        phase: 'verifying',
        file: null,
        overall: { bytesDone: done, bytesTotal: total, rate: 0, etaSeconds: null },
        tensorsDone: this.tensorsDoneCount,
        tensorsTotal: this.tensorsTotal,
        ...(notice ? { notice } : {}),
      });
      return;
    }
    const overallDone = this.finishedBytes + (this.fileName ? this.filePos : 0);
    const overallTotal = Math.max(this.expectedTotal, overallDone);
    this.onProgress({
      phase: this.currentPhase,
      file: this.fileName ? { name: this.fileName, ...this.transfer(this.filePos, this.fileTotal, this.fileRate) } : null,
      overall: this.transfer(overallDone, overallTotal, this.overallRate),
      tensorsDone: this.tensorsDoneCount,
      tensorsTotal: this.tensorsTotal,
      ...(notice ? { notice } : {}),
      ...(retry ? { retry } : {}),
    });
  }
}
