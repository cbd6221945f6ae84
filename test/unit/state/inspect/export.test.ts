import { describe, expect, it } from 'vitest';
import { contrastCsv, intrudersCsv, singularValuesCsv, spectraCsv, toCsv } from '../../../../src/state/inspect/export';
import type { UpdateCell } from '../../../../src/worker/inspect-api';

const spectrum = (norm: number, values: number[]) => ({ layer: 0, target: 'q_proj' as const, norm, singularValues: values, effectiveRank: 1.5 });

describe('Inspect CSV exports', () => {
  it('quotes what needs quoting and leaves missing numbers empty', () => {
    expect(toCsv(['a', 'b'], [['x,y', 'say "hi"'], [null, NaN], ['line\nbreak', 2.5]])).toBe('a,b\r\n"x,y","say ""hi"""\r\n,\r\n"line\nbreak",2.5\r\n');
  });

  it('writes one row per module, the second adapter and the cosine only when compared', () => {
    const cells: UpdateCell[] = [
      { layer: 0, target: 'q_proj', first: spectrum(2, [1.5, 0.5]), second: spectrum(1, [1, 0]), cosine: 0.25 },
      { layer: 1, target: 'fc1', first: null, second: spectrum(3, [3]), cosine: null },
    ];
    expect(spectraCsv(cells, ['A', 'B']).split('\r\n')).toEqual([
      'layer,module,A norm,A effective_rank,A singular_values,B norm,B effective_rank,B singular_values,cosine',
      '0,q_proj,2,1.5,1.5 0.5,1,1.5,1 0,0.25',
      '1,fc1,,,,3,1.5,3,',
      '',
    ]);
    expect(spectraCsv(cells.slice(0, 1), ['A', null]).split('\r\n')[0]).toBe('layer,module,A norm,A effective_rank,A singular_values');
    expect(singularValuesCsv(cells[0], ['A', 'B'])).toBe('index,A,B\r\n1,1.5,1\r\n2,0.5,0\r\n');
  });

  it('writes intruder counts with each vector\'s largest cosine, and contrastive tokens one per row', () => {
    const csv = intrudersCsv([{ layer: 2, target: 'dense', count: 1, maxCosine: [0.2, 0.9], matchedWith: [5, 0], baseValues: [3], tunedValues: [4, 3] }], 0.5);
    expect(csv).toBe('layer,module,intruders,threshold,max_cos_1,max_cos_2,sigma_tuned_1,sigma_tuned_2\r\n2,dense,1,0.5,0.2,0.9,4,3\r\n');
    const tokens = contrastCsv({
      jobId: 'j',
      input: 'x',
      promptTokens: 1,
      done: true,
      samples: [{ text: ' a,b', stopped: 'max-tokens', tokens: [{ token: 7, text: ' a,b', score: 1.25, logpExpert: -1, logpAmateur: -2.25 }] }],
    });
    expect(tokens).toBe('sample,position,token_id,text,score,logp_expert,logp_amateur\r\n1,1,7," a,b",1.25,-1,-2.25\r\n');
  });
});
