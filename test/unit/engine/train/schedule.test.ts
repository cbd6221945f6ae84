import { describe, expect, it } from 'vitest';
import { learningRate, lrMultiplier, validateSchedule } from '../../../../src/engine/train/schedule';

describe('learning-rate schedules', () => {
  const base = { lr: 1e-3, warmupSteps: 10, totalSteps: 110 };
  it('warms up linearly from 0', () => {
    expect(lrMultiplier({ ...base, kind: 'cosine' }, 0)).toBe(0);
    expect(lrMultiplier({ ...base, kind: 'linear' }, 5)).toBe(0.5);
  });
  it('decays linearly or along a cosine to 0 at the last step', () => {
    expect(lrMultiplier({ ...base, kind: 'linear' }, 60)).toBeCloseTo(0.5);
    expect(lrMultiplier({ ...base, kind: 'cosine' }, 60)).toBeCloseTo(0.5);
    expect(lrMultiplier({ ...base, kind: 'cosine' }, 35)).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI / 4)));
    expect(learningRate({ ...base, kind: 'linear' }, 110)).toBe(0);
    expect(learningRate({ ...base, kind: 'constant' }, 100)).toBe(1e-3);
  });
  it('refuses warm-up longer than the run', () => {
    expect(validateSchedule({ ...base, kind: 'linear', warmupSteps: 200 })[0]).toMatch(/longer than the run/);
  });
});
