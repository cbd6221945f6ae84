import { describe, expect, it } from 'vitest';
import { comparisonTables, delta, scoreOf } from '../../../src/state/evaluate-tables';
import { percent, points } from '../../../src/ui/evaluate/format';
import type { StoredRunSummary } from '../../../src/engine/eval/results-store';

const counts = (total: number, answer: number, strict: number, reviewed = 0, handScore = 0) => ({ total, correct: answer, answer, strict, reviewed, handScore });

function run(id: string, cells: Array<[string, string, string, ReturnType<typeof counts>]>): StoredRunSummary {
  return {
    id,
    ...counts(0, 0, 0),
    cells: cells.map(([suite, dataset, format, c]) => ({ model: 'm', adapter: null, suite, dataset, format, ...c, accuracy: c.correct / c.total })),
  } as unknown as StoredRunSummary;
}

describe('comparison tables', () => {
  const paperCells = [
    { suite: 'bigbench', dataset: 'add_elements', format: '3_shot', model: 'phi-2', correct: 20, total: 30 },
    { suite: 'bigbench', dataset: 'turing', format: '3_shot', model: 'phi-2', correct: 6, total: 30 },
  ];
  const ours = run('a', [
    ['bigbench', 'add_elements', '3_shot', counts(30, 21, 18, 4, 2.5)],
    ['bigbench', 'turing', '3_shot', counts(30, 5, 5)],
    ['bigbench', 'all', '3_shot', counts(60, 26, 23, 4, 2.5)],
  ]);

  it('count the verdict chosen: answer, strict, or hand review over the reviewed items', () => {
    const pick = (v: 'answer' | 'strict' | 'hand') => comparisonTables([ours], paperCells, ['phi-2'], v)[0].rows.map((r) => [r.dataset, r.runs[0]]);
    expect(pick('answer')).toEqual([
      ['add_elements', { correct: 21, total: 30 }],
      ['turing', { correct: 5, total: 30 }],
      ['all', { correct: 26, total: 60 }],
    ]);
    expect(pick('strict')[0]).toEqual(['add_elements', { correct: 18, total: 30 }]);
    expect(pick('hand')).toEqual([
      ['add_elements', { correct: 2.5, total: 4 }],
      ['turing', null],
      ['all', { correct: 2.5, total: 4 }],
    ]);
    // The paper's numbers pool over the same datasets.
    expect(comparisonTables([ours], paperCells, ['phi-2'])[0].rows.at(-1)!.paper['phi-2']).toEqual({ correct: 26, total: 60 });
    expect(scoreOf(counts(10, 7, 6), 'hand')).toBeNull();
  });

  it("show percentages as the paper prints them, and deltas in points against the paper's number", () => {
    expect(percent(174, 330)).toBe('52.7%');
    expect(percent(12, 100)).toBe('12%');
    expect(percent(17, 25)).toBe('68%');
    expect(percent(1, 3)).toBe('33.3%');
    expect(percent(0, 0)).toBe('–');
    expect(points(delta({ correct: 21, total: 30 }, { correct: 20, total: 30 }))).toBe('+3.3');
    expect(points(delta({ correct: 5, total: 30 }, { correct: 6, total: 30 }))).toBe('−3.3');
    expect(points(delta({ correct: 6, total: 30 }, { correct: 12, total: 60 }))).toBe('±0.0');
    expect(points(delta(null, { correct: 1, total: 2 }))).toBe('–');
  });
});
