import { describe, expect, it, vi } from 'vitest';

// WebAssembly refused once (as under a Content-Security-Policy without 'wasm-unsafe-eval'), then allowed.
const attempts = vi.hoisted(() => ({ count: 0 }));
vi.mock('hash-wasm', async (original) => {
  const real = await original<typeof import('hash-wasm')>();
  return {
    ...real,
    createXXHash64: () => {
      attempts.count++;
      if (attempts.count === 1) return Promise.reject(new Error("WebAssembly.instantiate(): Refused to compile: 'wasm-unsafe-eval' is not allowed"));
      return real.createXXHash64();
    },
  };
});

const { RecordChecksums } = await import('../../../../src/engine/store/record-checksum');
const { StoreError } = await import('../../../../src/engine/store/errors');

describe('record checksums without WebAssembly', () => {
  it('say what is missing and what to do, and load on a later try', async () => {
    const err = await RecordChecksums.load().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as InstanceType<typeof StoreError>).code).toBe('unavailable');
    expect((err as Error).message).toMatch(/checksummed with WebAssembly, which this page could not start \(.*wasm-unsafe-eval.*\)\. Use a browser with WebAssembly enabled/);
    const checksums = await RecordChecksums.load();
    expect(checksums.of(new Uint8Array(0), null)).toBe('ef46db3751d8e999');
    expect(attempts.count).toBe(2);
  });
});
