import { describe, expect, it } from 'vitest';
import { CliUsageError, scoreCommand } from '../../../src/cli/score';

describe('score command', () => {
  const io = (files: Record<string, string>) => {
    const out: string[] = [];
    const err: string[] = [];
    return {
      out,
      err,
      io: {
        readFile: async (p: string) => {
          if (!(p in files)) throw new Error(`ENOENT: ${p}`);
          return files[p];
        },
        stdout: (t: string) => out.push(t),
        stderr: (t: string) => err.push(t),
      },
    };
  };

  it('prints each row with booleans "correct" (answer verdict) and "strict" added, other fields untouched', async () => {
    const prompt = 'Input: [1, 0, 6]\nLabel:';
    const input = [
      JSON.stringify({ id: 1, target: 'Hate', generation: 'Answer: Hate\nmore' }),
      '',
      JSON.stringify({ id: 2, target: '[1, 2]', generation: 'Label: [1,2]', extra: { keep: true } }),
      JSON.stringify({ id: 3, target: 'Hate', generation: '' }),
      JSON.stringify({ id: 4, target: 'Hate', generation: ' Hate.' }),
      JSON.stringify({ id: 5, target: '[7]', generation: 'Input: [1, 0, 6]\nLabel: [7]', prompt }),
      JSON.stringify({ id: 6, target: 'JXQV', generation: 'JXQV\nYCTW', labels: ['JXQV', 'YCTW'] }),
    ].join('\n');
    const t = io({ 'g.jsonl': input });
    expect(await scoreCommand(['--in', 'g.jsonl'], t.io)).toEqual({ rows: 6, correct: 4, strict: 3 });
    const lines = t.out.join('').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual([
      { id: 1, target: 'Hate', generation: 'Answer: Hate\nmore', correct: true, strict: true },
      { id: 2, target: '[1, 2]', generation: 'Label: [1,2]', extra: { keep: true }, correct: true, strict: true },
      { id: 3, target: 'Hate', generation: '', correct: false, strict: false },
      // The answer verdict reads "Hate." as Hate, skips a restated query, and takes no list of labels.
      { id: 4, target: 'Hate', generation: ' Hate.', correct: true, strict: false },
      { id: 5, target: '[7]', generation: 'Input: [1, 0, 6]\nLabel: [7]', prompt, correct: true, strict: false },
      { id: 6, target: 'JXQV', generation: 'JXQV\nYCTW', labels: ['JXQV', 'YCTW'], correct: false, strict: true },
    ]);
    expect(t.err.join('')).toBe('scored 6 rows: 4 correct by the answer verdict (66.7%), 3 by the strict one (50.0%)\n');
    const t2 = io({ 'g.jsonl': input });
    await scoreCommand(['--in=g.jsonl'], t2.io);
    expect(t2.out).toEqual(t.out);
  });

  it('reports every bad row with its line, and prints nothing', async () => {
    const t = io({
      'bad.jsonl': ['{"target":"a","generation":"a"}', '{oops', '{"target":"a"}', '[1]', '{"target":1,"generation":"x"}', '{"target":"a","generation":"a","labels":"a"}'].join('\n'),
    });
    await expect(scoreCommand(['--in', 'bad.jsonl'], t.io)).rejects.toThrow(
      [
        '5 bad rows:',
        'bad.jsonl line 2: malformed JSON',
      ].join('\n'),
    );
    await expect(scoreCommand(['--in', 'bad.jsonl'], t.io)).rejects.toThrow(/line 3: "generation" must be a string, found nothing\nbad\.jsonl line 4: expected a JSON object\nbad\.jsonl line 5: "target" must be a string, found 1\nbad\.jsonl line 6: "labels" must be an array of strings when given, found "a"/);
    expect(t.out).toEqual([]);
  });

  it('explains its usage', async () => {
    const t = io({});
    await expect(scoreCommand([], t.io)).rejects.toThrow(CliUsageError);
    await expect(scoreCommand(['--in'], t.io)).rejects.toThrow(/--in needs a file path/);
    await expect(scoreCommand(['--out', 'x'], t.io)).rejects.toThrow(/unknown argument "--out"/);
    await expect(scoreCommand(['--in', 'missing.jsonl'], t.io)).rejects.toThrow(/ENOENT/);
    await scoreCommand(['--help'], t.io);
    expect(t.out.join('')).toContain('usage: score --in FILE.jsonl');
  });
});
