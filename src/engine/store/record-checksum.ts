import { createXXHash64, type IHasher } from 'hash-wasm';
import { crc32 } from './crc32';
import { StoreError } from './errors';

/**
 * The checksum a stored record carries, which also says how it was made: a string is XXH64 as 16 hex
 * digits (every record written now); a number is CRC-32 (records of the app's first version, still
 * read and still resumable). Both sit on the critical path of a load, since every byte of the model
 * is checked on its way to the GPU. Measured in V8 on 4 MB records: XXH64 through hash-wasm's
 * WebAssembly runs at 7-9 GB/s, the hand-written slicing-by-8 CRC-32 at 1.1-1.2 GB/s, which cost
 * 2.6 s of a 10.5 s Phi-2 load. Either detects a torn, swapped or bit-rotted record.
 */
export type RecordChecksum = number | string;

/** Computes and checks record checksums; synchronous once loaded (hash-wasm compiles its module asynchronously). */
export class RecordChecksums {
  private constructor(private readonly xxh64: IHasher) {}

  private static loading: Promise<RecordChecksums> | null = null;

  /**
   * The shared instance (one WebAssembly module per thread; safe because every digest is synchronous).
   * Where WebAssembly is refused (a page whose Content-Security-Policy lacks 'wasm-unsafe-eval'), the
   * StoreError says so; a later call tries again.
   */
  static load(): Promise<RecordChecksums> {
    RecordChecksums.loading ??= createXXHash64().then(
      (h) => new RecordChecksums(h),
      (err: unknown) => {
        RecordChecksums.loading = null;
        throw new StoreError(
          'unavailable',
          `Stored weights are checksummed with WebAssembly, which this page could not start (${err instanceof Error ? err.message : String(err)}). ` +
            "Use a browser with WebAssembly enabled, and if the app is served with a Content-Security-Policy, allow 'wasm-unsafe-eval'.",
        );
      },
    );
    return RecordChecksums.loading;
  }

  /** The checksum a new record gets: XXH64 over its data, then its scales. */
  of(data: ArrayBuffer | ArrayBufferView, scales: ArrayBuffer | ArrayBufferView | null): string {
    const h = this.xxh64;
    h.init();
    h.update(bytesOf(data));
    if (scales) h.update(bytesOf(scales));
    return h.digest('hex');
  }

  /** The checksum of these bytes made the way `expected` was made, to compare with it. */
  recompute(expected: RecordChecksum, data: ArrayBuffer | ArrayBufferView, scales: ArrayBuffer | ArrayBufferView | null): RecordChecksum {
    if (typeof expected === 'string') return this.of(data, scales);
    const c = crc32(bytesOf(data));
    return scales ? crc32(bytesOf(scales), c) : c;
  }

  /** Whether the bytes match `expected`. */
  matches(expected: RecordChecksum, data: ArrayBuffer | ArrayBufferView, scales: ArrayBuffer | ArrayBufferView | null): boolean {
    return this.recompute(expected, data, scales) === expected;
  }
}

/** For messages: "XXH64 0123456789abcdef" or "CRC-32 0x89abcdef". */
export function describeChecksum(checksum: RecordChecksum | undefined): string {
  if (checksum === undefined) return 'none';
  return typeof checksum === 'string' ? `XXH64 ${checksum}` : `CRC-32 0x${(checksum >>> 0).toString(16).padStart(8, '0')}`;
}

function bytesOf(b: ArrayBuffer | ArrayBufferView): Uint8Array {
  return b instanceof Uint8Array ? b : b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}
