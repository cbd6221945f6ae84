import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadAdapter, locateAdapter, locationLabel, locationName } from '../../../../src/engine/adapters/hub';
import { AdapterError } from '../../../../src/engine/adapters/peft';
import { HubError } from '../../../../src/engine/weights/errors';
import { HubSource, checkHubSettings } from '../../../../src/engine/weights/hub';
import { refusal } from '../../../support/refusal';

const platform = { fetch: globalThis.fetch.bind(globalThis) };
const FAST = { attempts: 4, baseDelayMs: 1, maxDelayMs: 5 };

describe('links: what they may point at and how they are read', () => {
  it('takes https anywhere and plain http for this machine only', () => {
    expect(locateAdapter('https://files.example/x/').url).toBe('https://files.example/x/');
    expect(locateAdapter('http://localhost:8080/x/a.zip').kind).toBe('zip');
    expect(locateAdapter('http://127.0.0.1:9/x/').url).toBe('http://127.0.0.1:9/x/');
    const plain = refusal(() => locateAdapter('http://files.example/x/'));
    expect(plain).toBeInstanceOf(AdapterError);
    expect(plain.message).toMatch(/cannot be downloaded: plain http is only allowed for localhost; use https:\/\/files\.example\/x\/ instead/);
    expect(refusal(() => locateAdapter('javascript:alert(1)')).message).toMatch(/javascript URLs are not downloaded/);
    expect(refusal(() => locateAdapter('me/ad', { hubBaseUrl: 'http://mirror.example' })).message).toMatch(/Hub base URL "http:\/\/mirror\.example" cannot be used: plain http/);
    expect(refusal(() => checkHubSettings({ repo: 'a/b', revision: 'main', baseUrl: 'http://mirror.example' })).message).toMatch(/plain http is only allowed for localhost/);
    expect(checkHubSettings({ repo: 'a/b', revision: 'main', baseUrl: 'http://localhost:1234/' }).baseUrl).toBe('http://localhost:1234');
  });

  it('says precisely what is wrong with a malformed percent-escape', () => {
    const err = refusal(() => locateAdapter('https://huggingface.co/me/ad/resolve/ma%zzin/adapter_config.json'));
    expect(err).toBeInstanceOf(AdapterError);
    expect(err.message).toMatch(/has a malformed percent-escape \("%zz" in its path\): a "%" must be followed by two hexadecimal digits\. Write a literal "%" as %25/);
    expect(refusal(() => locateAdapter('https://files.example/x/100%/')).message).toMatch(/malformed percent-escape \("%\/"/);
    // Escapes that decode to nothing sensible are shown as they are, never thrown.
    const loc = { kind: 'zip' as const, url: 'https://files.example/x/a%E0%A4.zip', repo: null, revision: null };
    expect(locationLabel(loc)).toBe('a%E0%A4.zip');
    expect(locationName(loc)).toBe('a%E0%A4');
  });
});

describe('a server that redirects in a loop', () => {
  let server: Server;
  let base = '';
  let requests = 0;

  beforeAll(async () => {
    server = createServer((req, res) => {
      requests++;
      const path = req.url ?? '/';
      // /loop/... -> /round/... -> /loop/... for every file; /hub/{repo}/resolve/{rev}/{file} likewise.
      const next = path.startsWith('/loop/') ? path.replace('/loop/', '/round/') : path.replace(/^\/(round|hub)\//, '/loop/');
      res.writeHead(302, { location: next, 'content-length': '0' }).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('fails an adapter download at the first repeat, naming the loop, without retrying', async () => {
    requests = 0;
    const err = (await downloadAdapter(platform, locateAdapter(`${base}/loop/adapter/`), { retry: FAST }).catch((e: unknown) => e)) as HubError;
    expect(err).toBeInstanceOf(HubError);
    expect(err.code).toBe('redirects');
    expect(err.message).toMatch(/adapter_config\.json: .*\/loop\/adapter\/adapter_config\.json redirects in a loop \(127\.0\.0\.1:\d+\/loop\/adapter\/adapter_config\.json → 127\.0\.0\.1:\d+\/round\/adapter\/adapter_config\.json → 127\.0\.0\.1:\d+\/loop\/adapter\/adapter_config\.json\)/);
    // One failed fetch (at most 21 hops) and a walk of the chain up to the repeat: no retries of the whole chain.
    expect(requests).toBeLessThanOrEqual(25);
  });

  it('fails a model download the same way', async () => {
    requests = 0;
    const source = new HubSource(platform, { repo: 'test/model', revision: 'main', baseUrl: `${base}/hub` });
    const err = (await source.readText('config.json').catch((e: unknown) => e)) as HubError;
    expect(err).toBeInstanceOf(HubError);
    expect(err.code).toBe('redirects');
    expect(err.message).toMatch(/redirects in a loop/);
    expect(requests).toBeLessThanOrEqual(25);
  });
});
