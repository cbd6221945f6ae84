import { describe, expect, it } from 'vitest';
import { processLocks } from '../../../../src/engine/platform/locks';

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('process locks (the platform\u2019s Web Locks where there are none)', () => {
  it('runs holders of one name one at a time, in order, telling those that wait', async () => {
    const locks = processLocks();
    const log: string[] = [];
    let release!: () => void;
    const first = locks.exclusive('m', async () => {
      log.push('a in');
      await new Promise<void>((r) => (release = r));
      log.push('a out');
    });
    await tick();
    const waited: string[] = [];
    const second = locks.exclusive('m', async () => void log.push('b'), { onWait: () => waited.push('b') });
    const other = locks.exclusive('other', async () => void log.push('other'), { onWait: () => waited.push('other') });
    await other;
    expect(log).toEqual(['a in', 'other']);
    release();
    await Promise.all([first, second]);
    expect(log).toEqual(['a in', 'other', 'a out', 'b']);
    expect(waited).toEqual(['b']);
  });

  it('gives up waiting when its signal fires, and the queue goes on', async () => {
    const locks = processLocks();
    let release!: () => void;
    const held = locks.exclusive('m', () => new Promise<void>((r) => (release = r)));
    await tick();
    const stop = new AbortController();
    const waiting = locks.exclusive('m', async () => 'ran', { signal: stop.signal });
    stop.abort(new Error('tab closed'));
    await expect(waiting).rejects.toThrow('tab closed');
    expect(await locks.ifFree('m', async () => 1)).toEqual({ held: true });
    release();
    await held;
    expect(await locks.ifFree('m', async () => 2)).toEqual({ held: false, value: 2 });
    expect(await locks.exclusive('m', async () => 3)).toBe(3);
  });
});
