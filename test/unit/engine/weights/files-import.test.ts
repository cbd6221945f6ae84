import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testPlatform } from '../../../support/idb';
import { WeightStore } from '../../../../src/engine/store/store';
import { CheckpointError, HubError, SafetensorsError } from '../../../../src/engine/weights/errors';
import { importFromFiles } from '../../../../src/engine/weights/index';
import { parseSafetensors } from '../../../../src/engine/weights/safetensors';
import { serializeSafetensors, type TensorToWrite } from '../../../../src/engine/weights/safetensors-write';
import { FIXTURES, fileLike, fixtureBytes } from '../../../support/safetensors-fixtures';
import { expectStoredModelMatches } from '../../../support/stored-weights';

const SHARD1 = 'model-00001-of-00002.safetensors';
const SHARD2 = 'model-00002-of-00002.safetensors';
const platform = { now: () => performance.now() };

/** A fixture folder as the browser hands it over from a dropped directory. */
function folder(model: string, skip: string[] = []) {
  return readdirSync(join(FIXTURES, model))
    .filter((name) => name.includes('.') && !skip.includes(name))
    .map((name) => ({ ...fileLike(name, fixtureBytes(model, name)), webkitRelativePath: `${model}/${name}` }));
}

/** Aborts `stop` once `limit` bytes of the file have been read: a tab closed mid-import. */
function stopAfter<T extends ReturnType<typeof fileLike>>(f: T, limit: number, stop: AbortController): T {
  const cut = (stream: ReadableStream<Uint8Array>, start: number) => {
    let read = start;
    return stream.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          read += chunk.length;
          if (read > limit) stop.abort();
          controller.enqueue(chunk);
        },
      }),
    );
  };
  return { ...f, stream: () => cut(f.stream(), 0), slice: (start = 0) => ({ stream: () => cut(f.slice(start).stream(), start) }) };
}

/** Both golden shards merged into one model.safetensors, with each tensor transformed. */
function singleFile(transform: (t: TensorToWrite) => TensorToWrite | null = (t) => t, extra: TensorToWrite[] = []): Uint8Array {
  const tensors: TensorToWrite[] = [];
  for (const shard of [SHARD1, SHARD2]) {
    const f = parseSafetensors(fixtureBytes('golden', shard));
    for (const t of f.header.tensors) {
      const out = transform({ name: t.name, dtype: t.dtype, shape: t.shape, data: f.bytes(t.name) });
      if (out) tensors.push(out);
    }
  }
  return serializeSafetensors([...tensors, ...extra], { format: 'pt' });
}

function singleFileModel(bytes: Uint8Array) {
  return [fileLike('config.json', fixtureBytes('golden', 'config.json')), fileLike('model.safetensors', bytes)];
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the import to fail');
}

describe('import from local files', () => {
  it('imports a dropped folder (paths, shards, tokenizer) exactly as from the Hub', async () => {
    const store = await WeightStore.open(testPlatform());
    const files = folder('tiny-phi');
    const manifest = await importFromFiles(platform, store, files, { recordBytes: 100_000 });
    expect(manifest.complete).toBe(true);
    expect(manifest.name).toBe('tiny-phi');
    expect(manifest.source.kind).toBe('files');
    await expectStoredModelMatches(store, manifest.id, new Map([SHARD1, SHARD2].map((f) => [f, fixtureBytes('tiny-phi', f)])));
    expect(Object.keys((await store.getTokenizer(manifest.id))!).sort()).toEqual(['tokenizer.json', 'tokenizer_config.json']);
  });

  it('imports a single model.safetensors, from BF16 and F32 sources too', async () => {
    for (const dtype of ['F16', 'BF16', 'F32'] as const) {
      const bytes = singleFile((t) => {
        if (dtype === 'F16') return t;
        const values = parseSafetensors(serializeSafetensors([t])).float32(t.name);
        if (dtype === 'F32') return { ...t, dtype, data: values };
        // truncated to BF16 (lossy): the reference reads the values back from this file
        const bf = Uint16Array.from(new Uint32Array(values.buffer), (u) => u >>> 16);
        return { ...t, dtype, data: bf };
      });
      for (const scheme of ['int8', 'f16'] as const) {
        const store = await WeightStore.open(testPlatform());
        const manifest = await importFromFiles(platform, store, singleFileModel(bytes), { scheme });
        const entries = await store.getTensors(manifest.id);
        expect(entries.every((e) => e.sourceDtype === dtype)).toBe(true);
        expect(await expectStoredModelMatches(store, manifest.id, new Map([['model.safetensors', bytes]]))).toBe(33);
      }
    }
  });

  it('says which files are missing', async () => {
    const store = await WeightStore.open(testPlatform());
    let err = await failure(importFromFiles(platform, store, folder('golden', ['config.json'])));
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as CheckpointError).code).toBe('files-incomplete');
    expect(err.message).toMatch(/lack config\.json/);
    err = await failure(importFromFiles(platform, store, folder('golden', [SHARD2])));
    expect((err as CheckpointError).code).toBe('files-incomplete');
    expect(err.message).toMatch(/model-00002-of-00002\.safetensors is needed but was not among the chosen files/);
    err = await failure(importFromFiles(platform, store, [...folder('golden'), fileLike('config.json', new Uint8Array(2))]));
    expect(err.message).toMatch(/Two of the chosen files are named config\.json/);
  });

  it('refuses tensors the config does not describe, before storing them', async () => {
    const f32 = new Float32Array(4);
    const cases: Array<[Uint8Array, string, RegExp]> = [
      [singleFile(undefined, [{ name: 'model.layers.2.mlp.fc1.bias', dtype: 'F32', shape: [4], data: f32 }]), 'tensor-unexpected', /model\.layers\.2\.mlp\.fc1\.bias/],
      [singleFile((t) => (t.name === 'lm_head.bias' ? null : t)), 'tensor-missing', /lm_head\.bias/],
      [
        singleFile((t) => (t.name === 'model.layers.0.mlp.fc1.weight' ? { ...t, shape: [160, 640] } : t)),
        'tensor-shape',
        /model\.layers\.0\.mlp\.fc1\.weight has shape \[160, 640\] but config\.json implies \[640, 160\]/,
      ],
      [singleFile((t) => (t.name === 'model.final_layernorm.weight' ? { ...t, dtype: 'I16' } : t)), 'tensor-dtype', /I16/],
    ];
    for (const [bytes, code, message] of cases) {
      const store = await WeightStore.open(testPlatform());
      const err = await failure(importFromFiles(platform, store, singleFileModel(bytes)));
      expect(err).toBeInstanceOf(CheckpointError);
      expect((err as CheckpointError).code).toBe(code);
      expect(err.message).toMatch(message);
      const model = (await store.listModels())[0];
      expect((await store.getTensors(model.id)).every((e) => e.recordsDone === 0)).toBe(true);
    }
  });

  it('refuses the old MixFormer layout by config and by tensor names', async () => {
    const store = await WeightStore.open(testPlatform());
    const msft = { model_type: 'phi-msft', architectures: ['PhiForCausalLM'], n_embd: 160, n_layer: 2, n_head: 2, vocab_size: 512 };
    let err = await failure(importFromFiles(platform, store, [fileLike('config.json', new TextEncoder().encode(JSON.stringify(msft))), fileLike('model.safetensors', singleFile())]));
    expect((err as CheckpointError).code).toBe('unsupported-model');
    const renamed = singleFile((t) => (t.name === 'model.layers.0.self_attn.q_proj.weight' ? { ...t, name: 'transformer.h.0.mixer.Wqkv.weight' } : t));
    err = await failure(importFromFiles(platform, store, singleFileModel(renamed)));
    expect((err as CheckpointError).code).toBe('unsupported-model');
    expect(err.message).toMatch(/transformer\.h\.0\.mixer\.Wqkv\.weight/);
  });

  it('reports a damaged file with the file and tensor', async () => {
    const bytes = singleFile();
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n)).replace('"F16"', '"F17"');
    const broken = new Uint8Array(bytes);
    broken.set(new TextEncoder().encode(text), 8);
    const err = await failure(importFromFiles(platform, await WeightStore.open(testPlatform()), singleFileModel(broken)));
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as SafetensorsError).code).toBe('unknown-dtype');
    expect(err.message).toMatch(/^model\.safetensors \(tensor .+\): unknown dtype "F17"/);
  });

  it('resumes a stopped import with Blob.slice, and restarts a file that was replaced', async () => {
    const idb = testPlatform();
    const store = await WeightStore.open(idb);
    const files = folder('tiny-phi');
    const stop = new AbortController();
    const stopping = files.map((f) => (f.name === SHARD1 ? stopAfter(f, 3_000_000, stop) : f));
    const err = await failure(importFromFiles(platform, store, stopping, { recordBytes: 100_000, signal: stop.signal }));
    expect((err as HubError).code).toBe('aborted');
    // the same files again: the first shard resumes mid-way through a slice, never from the start
    const opened: string[] = [];
    const tracked = files.map((f) => ({
      ...f,
      stream: () => (opened.push(`${f.name}:0`), f.stream()),
      slice: (start = 0) => (opened.push(`${f.name}:${start}`), f.slice(start)),
    }));
    const manifest = await importFromFiles(platform, store, tracked, { recordBytes: 100_000 });
    expect(manifest.complete).toBe(true);
    const shard1 = opened.filter((o) => o.startsWith(SHARD1));
    expect(shard1.length).toBe(1);
    expect(Number(shard1[0].split(':')[1])).toBeGreaterThan(2_500_000);
    await expectStoredModelMatches(store, manifest.id, new Map([SHARD1, SHARD2].map((f) => [f, fixtureBytes('tiny-phi', f)])));

    // an interrupted import whose shard is then replaced by another file of the same name
    const store2 = await WeightStore.open(testPlatform());
    const stop2 = new AbortController();
    const stopping2 = files.map((f) => (f.name === SHARD1 ? stopAfter(f, 3_000_000, stop2) : f));
    expect(((await failure(importFromFiles(platform, store2, stopping2, { recordBytes: 100_000, signal: stop2.signal }))) as HubError).code).toBe('aborted');
    const notices: string[] = [];
    const replaced = files.map((f) => (f.name === SHARD1 ? { ...f, lastModified: 99 } : f));
    const again = await importFromFiles(platform, store2, replaced, { recordBytes: 100_000, onProgress: (p) => p.notice && notices.push(p.notice) });
    expect(again.complete).toBe(true);
    expect(notices.some((n) => /changed since its download began/.test(n))).toBe(true);
  });
});
