import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { describe, expect, it } from 'vitest';
import { Engine } from '../../../../src/engine/engine';
import { Session } from '../../../../src/engine/session/session';
import { StoreError } from '../../../../src/engine/store/errors';
import { DB_NAME, DB_VERSION } from '../../../../src/engine/store/schema';
import { WeightStore } from '../../../../src/engine/store/store';
import { testPlatform } from '../../../support/platform';

const platformOver = (indexedDB: IDBFactory) => testPlatform({ indexedDB });

/** Opens the app database at a newer version, as a newer app in another tab does. */
function upgradeElsewhere(factory: IDBFactory, version: number): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = factory.open(DB_NAME, version);
    request.onupgradeneeded = () => request.result.createObjectStore(`added-in-v${version}`);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

describe('the store recovers', () => {
  it('retries a failed open on the next call instead of keeping the failure', async () => {
    const real = new IDBFactory();
    let refusals = 1;
    const flaky = {
      open: (name: string, version?: number) => {
        if (refusals-- > 0) throw new DOMException('The user denied permission to access the database.', 'InvalidStateError');
        return real.open(name, version);
      },
    } as unknown as IDBFactory;
    const session = new Session(new Engine(platformOver(flaky)));
    const first = await session.store().catch((e: unknown) => e as StoreError);
    expect(first).toBeInstanceOf(StoreError);
    expect((first as StoreError).code).toBe('unavailable');
    const store = await session.store();
    expect(await store.listModels()).toEqual([]);
    expect(await session.store()).toBe(store);
  });

  it("tells this tab to reload, in words, after another tab's schema upgrade", async () => {
    const factory = new IDBFactory();
    const session = new Session(new Engine(platformOver(factory)));
    const store = await session.store();
    expect(await store.listModels()).toEqual([]);
    const newer = await upgradeElsewhere(factory, DB_VERSION + 1);
    const err = await store.listModels().catch((e: unknown) => e as StoreError);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe('unavailable');
    expect((err as Error).message).toMatch(/The app was updated in another tab, which upgraded its storage.*Reload this page to continue: nothing stored is lost/);
    // The session opens again, and this older app cannot: it says so, instead of a raw VersionError.
    const again = await session.store().catch((e: unknown) => e as StoreError);
    expect((again as Error).message).toMatch(/A newer version of the app, opened in another tab, has upgraded its storage.*Reload this page/);
    newer.close();
  });

  it('opens again after another tab deleted the database, and works on', async () => {
    const factory = new IDBFactory();
    const session = new Session(new Engine(platformOver(factory)));
    const store = await session.store();
    await new Promise<void>((resolve, reject) => {
      const r = factory.deleteDatabase(DB_NAME);
      r.onsuccess = () => resolve();
      r.onerror = () => reject(r.error);
    });
    expect(store.closedReason).toMatch(/Reload this page/);
    const fresh = await session.store();
    expect(fresh).not.toBe(store);
    expect(await fresh.listModels()).toEqual([]);
  });

  it('keeps using WeightStore.open directly: a store is never reopened behind its owner', async () => {
    const factory = new IDBFactory();
    const store = await WeightStore.open(platformOver(factory));
    await upgradeElsewhere(factory, DB_VERSION + 1).then((db) => db.close());
    await expect(store.getModel('x')).rejects.toThrow(/Reload this page/);
  });
});
