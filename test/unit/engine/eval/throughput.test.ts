import { describe, expect, it } from 'vitest';
import { ThroughputMeter } from '../../../../src/engine/eval/throughput';

// The first batch of a run compiles the GPU kernels: its time says little of the speed. The meter's rates
// leave it out once a later batch is measured, and use it alone until then.
describe('ThroughputMeter', () => {
  it('rates the first generation batch alone until a second is measured, then leaves it out', () => {
    const meter = new ThroughputMeter();
    expect(meter.prefillTokensPerSecond).toBeNull();
    expect(meter.decodeMsPerToken).toBeNull();
    // 400 prompt tokens in 20 s, 10 decode steps in 30 s: mostly compiling.
    meter.recordGeneration(400, 20_000, 10, 30_000, 4);
    expect(meter.prefillTokensPerSecond).toBeCloseTo(20, 10);
    expect(meter.decodeMsPerToken).toBeCloseTo(3000, 10);
    // Then 300 tokens in 0.5 s and 12 steps in 0.6 s, and 500 tokens in 0.5 s and 8 steps in 0.4 s.
    meter.recordGeneration(300, 500, 12, 600, 4);
    meter.recordGeneration(500, 500, 8, 400, 2);
    expect(meter.prefillTokensPerSecond).toBeCloseTo(800, 10);
    expect(meter.decodeMsPerToken).toBeCloseTo(50, 10);
    // The mean decode steps per item still counts every generation (it is no rate).
    expect(meter.meanDecodeSteps).toBeCloseTo(30 / 10, 10);
    expect(meter.rates()).toEqual({ prefillTokensPerSecond: meter.prefillTokensPerSecond, decodeMsPerToken: meter.decodeMsPerToken });
  });

  it('keeps the first batch where the later ones measured no time of that kind', () => {
    const meter = new ThroughputMeter();
    meter.recordGeneration(100, 1_000, 5, 2_000);
    // Answered at the first token: no decode steps after the first batch.
    meter.recordGeneration(100, 250, 0, 0);
    expect(meter.prefillTokensPerSecond).toBeCloseTo(400, 10);
    expect(meter.decodeMsPerToken).toBeCloseTo(400, 10);
  });

  it('leaves out the first candidate batch the same way', () => {
    const meter = new ThroughputMeter();
    meter.recordRank(1_000, 10_000);
    expect(meter.rankTokensPerSecond).toBeCloseTo(100, 10);
    meter.recordRank(2_000, 1_000);
    meter.recordRank(1_000, 1_000);
    expect(meter.rankTokensPerSecond).toBeCloseTo(1_500, 10);
  });
});
