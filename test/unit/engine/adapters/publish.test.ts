import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS } from '../../../../src/engine/adapters/files';
import { downloadAdapter, locateAdapter } from '../../../../src/engine/adapters/hub';
import { adapterTags, modelCard, type ModelCardInput } from '../../../../src/engine/adapters/model-card';
import { checkRepoName, configForHub, publishAdapter, PublishError, type PublishProgress } from '../../../../src/engine/adapters/publish';
import type { LoraSettings } from '../../../../src/shared/lora';
import { HubServer } from '../../../support/hub-server';
import { makeAdapter } from '../../../support/adapters';

/**
 * Publishing through @huggingface/hub against the stand-in Hub's write API: the calls the client makes
 * (whoami, create, preupload, LFS batch, upload, commit), what lands in the repository, the model card,
 * and errors that say what to do without ever showing the token.
 */

const WRITE = 'hf_writeTokenForTests0123456789';
const READ = 'hf_readTokenForTests0123456789';
let hub: HubServer;

beforeAll(async () => {
  hub = await HubServer.start({ repos: {}, tokens: { [WRITE]: { name: 'tester', role: 'write' }, [READ]: { name: 'reader', role: 'read' } } });
});
afterAll(() => hub?.close());

const SETTINGS: LoraSettings = { r: 2, alpha: 4, dropout: 0.05, useRslora: true, targets: ['q_proj', 'v_proj', 'fc1'], layers: 'all' };

function card(repo: string): string {
  const input: ModelCardInput = {
    repo,
    name: 'my adapter',
    baseModel: 'microsoft/phi-2',
    settings: SETTINGS,
    training: {
      dataset: 'OpenOrca | sample',
      model: 'microsoft/phi-2',
      lr: 2.5e-5,
      schedule: 'linear',
      warmupSteps: 10,
      totalSteps: 100,
      batchSize: 1,
      gradAccumulation: 4,
      maxLength: 512,
      lossOn: 'all',
      weightDecay: 0,
      maxGradNorm: 1,
      seed: 42,
      examples: 400,
      tokens: 51234,
    },
    evaluations: [{ suite: 'paper', startedAt: '2025-01-02T03:04:05.000Z', itemCount: 730, correct: 365, formats: [{ suite: 'in_context', format: 'instruction + label', correct: 100, total: 200 }] }],
  };
  return modelCard(input);
}

describe('publishing an adapter to the Hub', () => {
  it('creates the repository and commits the card and the PEFT files, which then download as the same adapter', async () => {
    const files = makeAdapter(11, SETTINGS);
    const config = configForHub(files[ADAPTER_CONFIG], 'microsoft/phi-2');
    const progress: PublishProgress[] = [];
    const before = hub.requests.length;
    const result = await publishAdapter({ ...files, [ADAPTER_CONFIG]: config }, card('tester/my-adapter'), {
      hubUrl: hub.url,
      token: ` ${WRITE}\n`,
      repo: 'my-adapter',
      private: false,
      onProgress: (p) => progress.push(p),
    });
    expect(result).toMatchObject({ repo: 'tester/my-adapter', created: true, repoUrl: `${hub.url}/tester/my-adapter`, folderUrl: `${hub.url}/tester/my-adapter/resolve/main/` });
    expect(result.commitUrl).toMatch(/\/tester\/my-adapter\/commit\/[0-9a-f]{40}$/);
    // The client's calls, in order, each with the token as a bearer header (the upload URL excepted, as on the Hub).
    const calls = hub.requests.slice(before).filter((r) => r.method !== 'OPTIONS');
    expect(calls.map((r) => `${r.method} ${r.path.replace(/[0-9a-f]{64}/, 'OID')} ${r.status}`)).toEqual([
      'GET /api/whoami-v2 200',
      'POST /api/repos/create 200',
      'POST /api/models/tester/my-adapter/preupload/main 200',
      'POST /tester/my-adapter.git/info/lfs/objects/batch 200',
      'PUT /lfs-upload/OID 200',
      'POST /api/models/tester/my-adapter/commit/main 200',
    ]);
    for (const c of calls) expect(c.headers.authorization).toBe(c.method === 'PUT' ? undefined : `Bearer ${WRITE}`);
    expect(hub.write.commits.at(-1)).toEqual({ repo: 'tester/my-adapter', summary: 'Add LoRA adapter', files: ['README.md', ADAPTER_CONFIG], lfsFiles: [ADAPTER_WEIGHTS] });
    expect(progress.map((p) => p.phase)).toEqual(expect.arrayContaining(['checking-token', 'creating-repo', 'hashing', 'committing']));

    // What others get from the share link's folder: the same adapter, now naming its base model.
    const back = await downloadAdapter({ fetch: (u, i) => fetch(u, i) }, locateAdapter('tester/my-adapter', { hubBaseUrl: hub.url }));
    expect(Buffer.from(back[ADAPTER_WEIGHTS]).equals(Buffer.from(files[ADAPTER_WEIGHTS]))).toBe(true);
    expect(JSON.parse(new TextDecoder().decode(back[ADAPTER_CONFIG]))).toMatchObject({ base_model_name_or_path: 'microsoft/phi-2', r: 2, lora_alpha: 4, use_rslora: true });
    const readme = new TextDecoder().decode(hub.write.repos.get('tester/my-adapter')!.files.get('README.md'));
    expect(readme).toBe(card('tester/my-adapter'));
  });

  it('publishes again into an existing repository as a new commit, and keeps private repositories private', async () => {
    const files = makeAdapter(12, SETTINGS);
    const again = await publishAdapter(files, card('tester/my-adapter'), { hubUrl: hub.url, token: WRITE, repo: 'tester/my-adapter', private: false });
    expect(again.created).toBe(false);
    expect(hub.write.commits.at(-1)?.summary).toBe('Update LoRA adapter');
    const secret = await publishAdapter(files, card('tester/secret'), { hubUrl: hub.url, token: WRITE, repo: 'secret', private: true });
    expect(hub.write.repos.get(secret.repo)?.private).toBe(true);
    const res = await fetch(`${secret.folderUrl}${ADAPTER_CONFIG}`);
    expect(res.status).toBe(401);
  });

  it('says what to do about a wrong token, a read-only token and another namespace, never showing the token', async () => {
    const files = makeAdapter(13, SETTINGS);
    const attempt = (token: string, repo: string) => publishAdapter(files, 'card', { hubUrl: hub.url, token, repo, private: false }).then(() => null, (e: Error) => e);
    const wrong = await attempt('hf_notAToken', 'x');
    expect(wrong).toBeInstanceOf(PublishError);
    expect(wrong!.message).toMatch(/refused the token \(HTTP 401\).*huggingface\.co\/settings\/tokens/);
    const readOnly = await attempt(READ, 'x');
    expect(readOnly!.message).toMatch(/may not write to reader\/x \(HTTP 403\).*"write" role/);
    const other = await attempt(WRITE, 'microsoft/x');
    expect(other!.message).toMatch(/may not write to microsoft\/x \(HTTP 403\)/);
    for (const e of [wrong, readOnly, other]) {
      expect(e!.message).not.toContain(WRITE);
      expect(e!.message).not.toContain(READ);
    }
    await expect(attempt('', 'x')).resolves.toMatchObject({ message: expect.stringMatching(/Paste a Hugging Face access token/) });
    const unreachable = (await publishAdapter(files, 'card', { hubUrl: 'http://127.0.0.1:9', token: WRITE, repo: 'x', private: false }).catch((e: Error) => e)) as Error;
    expect(unreachable.message).toMatch(/Could not reach the Hub while checking the token/);
    expect(unreachable.message).not.toContain(WRITE);
  });

  it('checks repository names as the Hub does', () => {
    expect(checkRepoName('tester/phi-2_lora.v1')).toEqual({ owner: 'tester', name: 'phi-2_lora.v1' });
    expect(checkRepoName('phi')).toEqual({ owner: null, name: 'phi' });
    for (const bad of ['a/b/c', 'my adapter', '-start', 'end.', 'a--b', 'a..b', '', 'x'.repeat(97), 'owner/']) expect(() => checkRepoName(bad), bad).toThrow();
  });
});

describe('the model card', () => {
  const text = card('tester/my-adapter');
  const front = text.slice(4, text.indexOf('\n---\n', 4)).split('\n');

  it("starts with the Hub's metadata: base model, PEFT, and the adapter tags", () => {
    expect(text.startsWith('---\n')).toBe(true);
    expect(front).toEqual(['base_model: "microsoft/phi-2"', 'library_name: peft', 'pipeline_tag: text-generation', 'tags:', '- "base_model:adapter:microsoft/phi-2"', '- "peft"', '- "lora"']);
    expect(adapterTags('microsoft/phi-1_5')).toEqual(['base_model:adapter:microsoft/phi-1_5', 'peft', 'lora']);
  });

  it('states the settings, the data and the evaluation, escaping table cells', () => {
    expect(text).toContain('| scaling | alpha / sqrt(r) = 2.82843 (rsLoRA) |');
    expect(text).toContain('| target modules | q_proj, v_proj, fc1 |');
    expect(text).toContain('| data | OpenOrca \\| sample (400 examples, 51234 tokens) |');
    expect(text).toContain('| learning rate | 2.5e-5, linear schedule, 10 warm-up steps |');
    expect(text).toContain('| batch | 1 x 4 gradient accumulation = 4 sequences per step |');
    expect(text).toContain('| paper (730 items) | 2025-01-02 | all | 365/730 | 50.0% |');
    expect(text).toContain('| paper | 2025-01-02 | in_context: instruction + label | 100/200 | 50.0% |');
    expect(text).toContain('AutoPeftModelForCausalLM.from_pretrained("tester/my-adapter")');
  });

  it('leaves out training and evaluation when there are none', () => {
    const plain = modelCard({ repo: 'a/b', name: 'b', baseModel: 'microsoft/phi-2', settings: { ...SETTINGS, useRslora: false }, training: null, evaluations: [] });
    expect(plain).not.toContain('## Training');
    expect(plain).not.toContain('## Evaluation');
    expect(plain).toContain('| scaling | alpha / r = 2.00000 |');
  });
});
