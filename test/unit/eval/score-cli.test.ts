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

  it('prints each row with a boolean "correct" added, other fields untouched', async () => {
    const input = [
      JSON.stringify({ id: 1, target: 'Hate', generation: 'Answer: Hate\nmore' }),
      '',
      JSON.stringify({ id: 2, target: '[1, 2]', generation: 'Label: [1,2]', extra: { keep: true } }),
      JSON.stringify({ id: 3, target: 'Hate', generation: '' }),
    ].join('\n');
    const t = io({ 'g.jsonl': input });
    expect(await scoreCommand(['--in', 'g.jsonl'], t.io)).toEqual({ rows: 3, correct: 2 });
    const lines = t.out.join('').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual([
      { id: 1, target: 'Hate', generation: 'Answer: Hate\nmore', correct: true },
      { id: 2, target: '[1, 2]', generation: 'Label: [1,2]', extra: { keep: true }, correct: true },
      { id: 3, target: 'Hate', generation: '', correct: false },
    ]);
    expect(t.err.join('')).toBe('scored 3 rows: 2 correct (66.7%)\n');
    const t2 = io({ 'g.jsonl': input });
    await scoreCommand(['--in=g.jsonl'], t2.io);
    expect(t2.out).toEqual(t.out);
  });

  it('reports every bad row with its line, and prints nothing', async () => {
    const t = io({ 'bad.jsonl': ['{"target":"a","generation":"a"}', '{oops', '{"target":"a"}', '[1]', '{"target":1,"generation":"x"}'].join('\n') });
    await expect(scoreCommand(['--in', 'bad.jsonl'], t.io)).rejects.toThrow(
      [
        '4 bad rows:',
        'bad.jsonl line 2: malformed JSON',
      ].join('\n'),
    );
    await expect(scoreCommand(['--in', 'bad.jsonl'], t.io)).rejects.toThrow(/line 3: "generation" must be a string, found nothing\nbad\.jsonl line 4: expected a JSON object\nbad\.jsonl line 5: "target" must be a string, found 1/);
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
