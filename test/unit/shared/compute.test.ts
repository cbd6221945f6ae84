import { describe, expect, it } from 'vitest';
import {
  computePathProblem,
  DEFAULT_INFERENCE,
  INFERENCE_SWITCHES,
  inferenceProblems,
  lmHeadProblem,
  parseInference,
  runnableInference,
  sameInference,
  describeInference,
} from '../../../src/shared/compute';
import { trainConfigOf } from '../../../src/engine/train/plan';
import { planMemory } from '../../../src/shared/train-memory';
import { paperPlan, planProblems } from '../../../src/shared/train-plan';

const INT8 = { weightMode: 'int8', hidden: 2560, hasInt8Dot: true } as const;

describe('precision settings: when each can run', () => {
  it('int8 compute needs int8 weights and the packed int8 dot product; f32 always runs', () => {
    expect(computePathProblem('f32', 'f16', false)).toBeNull();
    expect(computePathProblem('int8', 'int8', true)).toBeNull();
    expect(computePathProblem('int8', 'f16', true)).toMatch(/int8 weights/);
    expect(computePathProblem('int8', 'int8', false)).toMatch(/packed 4 x 8-bit integer dot product.*Chrome and Edge have it since version 123/);
    // No model loaded yet: only the browser decides.
    expect(computePathProblem('int8', null, true)).toBeNull();
    expect(computePathProblem('int8', null, false)).toMatch(/dot product/);
  });

  it('an int8 lm_head needs a hidden size divisible by 4 and the packed int8 dot product', () => {
    expect(lmHeadProblem('f16', 2, false)).toBeNull();
    expect(lmHeadProblem('int8', 2560, true)).toBeNull();
    expect(lmHeadProblem('int8', 2562, true)).toMatch(/divisible by 4.*2562/);
    expect(lmHeadProblem('int8', 2560, false)).toMatch(/dot product/);
  });

  it('every switch leaves the exact default and says what it trades', () => {
    for (const s of INFERENCE_SWITCHES) {
      expect(s.on).not.toBe(DEFAULT_INFERENCE[s.key]);
      expect(s.trades.length).toBeGreaterThan(20);
    }
    expect(DEFAULT_INFERENCE).toEqual({ compute: 'f32', lmHead: 'f16', kvCache: 'f32' });
  });
});

describe('inference settings from outside', () => {
  it('takes known values only, the default for the rest', () => {
    expect(parseInference({ compute: 'int8', lmHead: 'int8', kvCache: 'f16' })).toEqual({ compute: 'int8', lmHead: 'int8', kvCache: 'f16' });
    expect(parseInference({ kvCache: 'f8' })).toEqual(DEFAULT_INFERENCE);
    expect(parseInference({ compute: 'int4', lmHead: 8, extra: 1 })).toEqual(DEFAULT_INFERENCE);
    for (const junk of [null, undefined, 'int8', 3, [], { __proto__: { compute: 'int8' } }]) expect(parseInference(junk)).toEqual(DEFAULT_INFERENCE);
  });

  it('a model is made with the settings it can run; the others go back to their defaults, with the reasons', () => {
    const both = { compute: 'int8', lmHead: 'int8', kvCache: 'f16' } as const;
    expect(runnableInference(both, INT8)).toEqual(both);
    expect(inferenceProblems(both, INT8)).toEqual([]);
    const f16 = { ...INT8, weightMode: 'f16' } as const;
    expect(runnableInference(both, f16)).toEqual({ compute: 'f32', lmHead: 'int8', kvCache: 'f16' });
    expect(inferenceProblems(both, f16)).toEqual([expect.stringMatching(/int8 weights/)]);
    // The f16 KV cache runs everywhere (shader-f16 or not).
    const old = { ...INT8, hasInt8Dot: false };
    expect(runnableInference(both, old)).toEqual({ ...DEFAULT_INFERENCE, kvCache: 'f16' });
    expect(inferenceProblems(both, old)).toHaveLength(2);
    expect(sameInference(runnableInference({ ...both, kvCache: 'f32' }, old), DEFAULT_INFERENCE)).toBe(true);
  });

  it('are said in words where they leave the exact model (the Demo shows it beside a generation)', () => {
    expect(describeInference(DEFAULT_INFERENCE)).toBeNull();
    expect(describeInference({ compute: 'int8', lmHead: 'f16', kvCache: 'f32' })).toBe('int8 compute');
    expect(describeInference({ compute: 'int8', lmHead: 'int8', kvCache: 'f32' })).toBe('int8 compute, int8 lm_head');
    expect(describeInference({ compute: 'f32', lmHead: 'f16', kvCache: 'f16' })).toBe('f16 KV cache');
  });
});

describe('the Train page plan carries the compute path', () => {
  it('to the run configuration and the memory estimate; absent (older plans) means f32', () => {
    const plan = paperPlan('instruction', { kind: 'demo' });
    expect(trainConfigOf(plan, 10, 0.1).compute).toBe('f32');
    expect(trainConfigOf({ ...plan, compute: 'int8' }, 10, 0.1).compute).toBe('int8');
    const model = { shape: { hidden: 2560, intermediate: 10240, layers: 32, heads: 32, vocab: 51200 }, weightMode: 'int8' as const };
    const f32 = planMemory(plan, model).estimate;
    const int8 = planMemory({ ...plan, compute: 'int8' }, model).estimate;
    expect(int8.items.some((i) => i.name.startsWith('int8 compute'))).toBe(true);
    expect(int8.total).toBeGreaterThan(f32.total);
    expect(planProblems({ ...plan, compute: 'int4' as never }, null)).toContainEqual(expect.stringMatching(/Unknown compute path "int4"/));
    expect(planProblems({ ...plan, compute: 'int8' }, null)).toEqual([]);
  });
});
