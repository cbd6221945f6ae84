import { describe, expect, it } from 'vitest';
import { inferenceMismatch, runModelLabel } from '../../../../src/engine/session/evaluation-run';
import { DEFAULT_INFERENCE } from '../../../../src/shared/compute';

// A saved evaluation says which inference settings produced it, and a resumed one goes on only with the
// same settings: otherwise one run's accuracy would mix the exact model's answers with int8 compute's.

const EXACT = { ...DEFAULT_INFERENCE };
const INT8 = { ...DEFAULT_INFERENCE, compute: 'int8' as const };
const INT8_HEAD = { ...DEFAULT_INFERENCE, compute: 'int8' as const, lmHead: 'int8' as const };

describe('the inference settings of an evaluation', () => {
  it('name the model of its runs when they leave the exact model, and only then', () => {
    expect(runModelLabel('microsoft/phi-2', 'int8', EXACT)).toBe('microsoft/phi-2 (int8)');
    expect(runModelLabel('microsoft/phi-2', 'int8', INT8)).toBe('microsoft/phi-2 (int8, int8 compute)');
    expect(runModelLabel('microsoft/phi-2', 'int8', INT8_HEAD)).toBe('microsoft/phi-2 (int8, int8 compute, int8 lm_head)');
    expect(runModelLabel('tiny', 'f16', { ...DEFAULT_INFERENCE, kvCache: 'f16' })).toMatch(/^tiny \(f16, .*KV cache.*\)$/i);
  });

  it('let a job resume with the settings it started with and refuse any other, saying what to set', () => {
    expect(inferenceMismatch({ inference: INT8 }, { ...INT8 })).toBeNull();
    expect(inferenceMismatch({ inference: EXACT }, EXACT)).toBeNull();
    // Jobs saved before the settings existed ran exact.
    expect(inferenceMismatch({}, EXACT)).toBeNull();
    expect(inferenceMismatch({}, INT8)).toBe(
      'This evaluation ran with the exact settings; the model now runs with int8 compute. Set the same inference settings on the Model page, then resume.',
    );
    expect(inferenceMismatch({ inference: INT8_HEAD }, INT8)).toBe(
      'This evaluation ran with int8 compute, int8 lm_head; the model now runs with int8 compute. Set the same inference settings on the Model page, then resume.',
    );
  });
});
