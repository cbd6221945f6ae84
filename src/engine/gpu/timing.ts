import type { DispatchTimer } from './encoder';
import { BufferUsage, MapMode } from './usage';

/**
 * GPU-side timing with timestamp queries: each timed dispatch gets its own compute pass whose
 * beginning and end are written to a query set. `collect` resolves the queries and returns the
 * nanoseconds per label. Used by the benchmarks, never on the training hot path.
 */
export class TimestampProfiler implements DispatchTimer {
  private querySet: GPUQuerySet;
  private resolveBuffer: GPUBuffer;
  private readBuffer: GPUBuffer;
  private labels: string[] = [];

  constructor(
    private readonly device: GPUDevice,
    private readonly capacity = 2048,
  ) {
    if (!device.features.has('timestamp-query')) throw new Error('timestamp-query is not enabled on this device');
    this.querySet = device.createQuerySet({ type: 'timestamp', count: capacity * 2 });
    this.resolveBuffer = device.createBuffer({ size: capacity * 16, usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC });
    this.readBuffer = device.createBuffer({ size: capacity * 16, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
  }

  passTimestamps(label: string): GPUComputePassTimestampWrites | undefined {
    if (this.labels.length >= this.capacity) return undefined;
    const i = this.labels.length;
    this.labels.push(label);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /** Resolves every timed pass since the last collect: [label, nanoseconds] in dispatch order. */
  async collect(): Promise<Array<[string, number]>> {
    const n = this.labels.length;
    if (!n) return [];
    const enc = this.device.createCommandEncoder();
    enc.resolveQuerySet(this.querySet, 0, 2 * n, this.resolveBuffer, 0);
    enc.copyBufferToBuffer(this.resolveBuffer, 0, this.readBuffer, 0, 16 * n);
    this.device.queue.submit([enc.finish()]);
    await this.readBuffer.mapAsync(MapMode.READ, 0, 16 * n);
    const stamps = new BigUint64Array(this.readBuffer.getMappedRange(0, 16 * n).slice(0));
    this.readBuffer.unmap();
    const out: Array<[string, number]> = this.labels.map((label, i) => [label, Number(stamps[2 * i + 1] - stamps[2 * i])]);
    this.labels = [];
    return out;
  }

  destroy(): void {
    this.querySet.destroy();
    this.resolveBuffer.destroy();
    this.readBuffer.destroy();
  }
}
