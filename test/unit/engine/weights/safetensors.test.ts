import { describe, expect, it } from 'vitest';
import { SafetensorsError, type SafetensorsErrorCode } from '../../../../src/engine/weights/errors';
import { MAX_HEADER_BYTES, parseSafetensors, readSafetensorsStream, type SafetensorsHeader, type StreamReadOptions } from '../../../../src/engine/weights/safetensors';
import { serializeSafetensors } from '../../../../src/engine/weights/safetensors-write';
import { checkShardAgainstIndex, parseShardIndex, readShardedStream } from '../../../../src/engine/weights/sharded';
import { chunked, fixtureBytes, rawSafetensors, streamOf, type RawFileOptions, type RawTensor } from '../../../support/safetensors-fixtures';

const SHARD1 = 'model-00001-of-00002.safetensors';
const SHARD2 = 'model-00002-of-00002.safetensors';

/** Reads a whole stream; returns the header and each tensor's bytes reassembled from its pieces. */
async function readAll(source: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>, options: StreamReadOptions) {
  let header: SafetensorsHeader | null = null;
  const tensors = new Map<string, Uint8Array>();
  const order: string[] = [];
  const pieces: Array<{ name: string; offset: number; length: number; last: boolean }> = [];
  for await (const e of readSafetensorsStream(source, options)) {
    if (e.kind === 'header') {
      header = e.header;
      continue;
    }
    pieces.push({ name: e.tensor.name, offset: e.offset, length: e.bytes.length, last: e.last });
    let buf = tensors.get(e.tensor.name);
    if (!buf) {
      buf = new Uint8Array(e.tensor.end - e.tensor.begin);
      tensors.set(e.tensor.name, buf);
      order.push(e.tensor.name);
    }
    buf.set(e.bytes, e.offset); // copied: the bytes are only valid until the next event
  }
  return { header: header!, tensors, order, pieces };
}

/** Byte equality without vitest's element-by-element deep compare (slow on large arrays). */
function expectSameBytes(ours: Uint8Array | undefined, ref: Uint8Array, what = 'bytes') {
  expect(ours, what).toBeDefined();
  const a = Buffer.from(ours!.buffer, ours!.byteOffset, ours!.byteLength);
  const b = Buffer.from(ref.buffer, ref.byteOffset, ref.byteLength);
  if (!a.equals(b)) {
    let i = 0;
    while (i < Math.min(a.length, b.length) && a[i] === b[i]) i++;
    expect.fail(`${what}: ${a.length} vs ${b.length} bytes, first difference at ${i}`);
  }
}

async function expectError(run: () => Promise<unknown> | unknown, code: SafetensorsErrorCode, ...fragments: Array<string | RegExp>) {
  let caught: unknown;
  try {
    await run();
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected a SafetensorsError ${code}`).toBeInstanceOf(SafetensorsError);
  const err = caught as SafetensorsError;
  expect(err.code).toBe(code);
  for (const f of fragments) expect(err.message).toMatch(f);
  return err;
}

const drain = async (bytes: Uint8Array, options: Partial<StreamReadOptions> = {}, chunks = [4096]) =>
  readAll(chunked(bytes, chunks), { file: 'bad.safetensors', ...options });

describe('safetensors reader on the golden checkpoint', () => {
  const shard = fixtureBytes('golden', SHARD1);
  const whole = parseSafetensors(shard, SHARD1);

  it('parses the header: tensors in file order, data area, metadata', () => {
    const h = whole.header;
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.fileSize).toBe(shard.length);
    expect(h.tensors[0].name).toBe('model.embed_tokens.weight');
    for (let i = 1; i < h.tensors.length; i++) expect(h.tensors[i].begin).toBe(h.tensors[i - 1].end);
    expect(whole.float32('model.layers.0.input_layernorm.weight').length).toBe(160);
  });

  for (const sizes of [[1], [3, 1, 8], [7, 4093], [65536], [shard.length]]) {
    it(`streams the same bytes in chunks of ${sizes.join('/')} bytes`, async () => {
      const { header, tensors, order } = await readAll(chunked(shard, sizes), { file: SHARD1, fileSize: sizes[0] === 1 ? undefined : shard.length });
      expect(order).toEqual(whole.header.tensors.map((t) => t.name));
      expect(header.json).toBe(whole.header.json);
      for (const t of whole.header.tensors) expectSameBytes(tensors.get(t.name), whole.bytes(t.name), t.name);
    });
  }

  it('reads from a ReadableStream and cuts tensors into pieces of the requested size', async () => {
    const piece = 1000; // not a divisor of any tensor: the last piece of each is short
    const { tensors, pieces } = await readAll(streamOf(shard, 777), { file: SHARD1, pieceBytes: () => piece });
    for (const t of whole.header.tensors) {
      const mine = pieces.filter((p) => p.name === t.name);
      const size = t.end - t.begin;
      expect(mine.length).toBe(Math.ceil(size / piece));
      mine.forEach((p, i) => {
        expect(p.offset).toBe(i * piece);
        expect(p.length).toBe(Math.min(piece, size - i * piece));
        expect(p.last).toBe(i === mine.length - 1);
      });
      expectSameBytes(tensors.get(t.name), whole.bytes(t.name), t.name);
    }
  });

  it('resumes mid-file on a piece boundary with the stored header', async () => {
    const fc1 = whole.header.tensors.find((t) => t.name === 'model.layers.0.mlp.fc1.weight')!;
    const piece = 320 * 4; // four rows of 160 F16 values
    const offset = whole.header.dataStart + fc1.begin + 3 * piece;
    const { pieces, tensors } = await readAll(chunked(shard.subarray(offset), [5000]), {
      file: SHARD1,
      pieceBytes: () => piece,
      resume: { header: whole.header, offset },
    });
    expect(pieces[0]).toMatchObject({ name: fc1.name, offset: 3 * piece });
    expectSameBytes(tensors.get(fc1.name)!.subarray(3 * piece), whole.bytes(fc1.name).subarray(3 * piece), fc1.name);
    const before = whole.header.tensors.filter((t) => t.end <= fc1.begin).map((t) => t.name);
    for (const name of before) expect(tensors.has(name)).toBe(false);
    const after = whole.header.tensors.filter((t) => t.begin > fc1.begin);
    for (const t of after) expectSameBytes(tensors.get(t.name), whole.bytes(t.name), t.name);
  });

  it('refuses a resume offset that is not on a piece boundary', async () => {
    const offset = whole.header.dataStart + 6;
    await expect(readAll(chunked(shard.subarray(offset), [100]), { file: SHARD1, pieceBytes: () => 4, resume: { header: whole.header, offset } })).rejects.toThrow(
      /not on a piece boundary/,
    );
  });

  it('stops reading the source when the consumer stops early', async () => {
    let pulled = 0;
    let cancelled = false;
    const source = new ReadableStream<Uint8Array>({
      pull(c) {
        c.enqueue(shard.slice(pulled, pulled + 1024));
        pulled += 1024;
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const e of readSafetensorsStream(source, { file: SHARD1 })) if (e.kind === 'piece') break;
    expect(cancelled).toBe(true);
    expect(pulled).toBeLessThan(shard.length);
  });
});

describe('sharded checkpoints', () => {
  const indexText = new TextDecoder().decode(fixtureBytes('golden', 'model.safetensors.index.json'));
  const index = parseShardIndex(indexText);

  it('streams every tensor of the index from the shard it names', async () => {
    const seen = new Map<string, string>();
    for await (const e of readShardedStream(index, async (shard) => ({ source: chunked(fixtureBytes('golden', shard), [4099]) }))) {
      if (e.kind === 'piece' && e.last) seen.set(e.tensor.name, e.shard);
    }
    expect(seen.size).toBe(index.weightMap.size);
    for (const [name, shard] of index.weightMap) expect(seen.get(name)).toBe(shard);
    // The fixture splits a layer across shards: q_proj.weight of layer 1 in shard 1, its bias in shard 2.
    expect(index.weightMap.get('model.layers.1.self_attn.q_proj.weight')).toBe(SHARD1);
    expect(index.weightMap.get('model.layers.1.self_attn.q_proj.bias')).toBe(SHARD2);
  });

  it('refuses a shard whose header disagrees with the index', () => {
    const names = parseSafetensors(fixtureBytes('golden', SHARD1)).header.tensors.map((t) => t.name);
    expect(() => checkShardAgainstIndex(index, SHARD1, names)).not.toThrow();
    const moved = parseShardIndex({ weight_map: { ...Object.fromEntries(index.weightMap), 'model.embed_tokens.weight': SHARD2 } });
    expect(() => checkShardAgainstIndex(moved, SHARD1, names)).toThrow(/model\.embed_tokens\.weight.*places this tensor in model-00002/s);
    const missing = names.filter((n) => n !== 'model.layers.0.mlp.fc1.bias');
    expect(() => checkShardAgainstIndex(index, SHARD1, missing)).toThrow(/model\.layers\.0\.mlp\.fc1\.bias.*header lacks it/s);
    expect(() => checkShardAgainstIndex(index, SHARD1, [...names, 'extra.weight'])).toThrow(/extra\.weight.*does not list/s);
    try {
      checkShardAgainstIndex(index, SHARD1, missing);
    } catch (err) {
      expect(err).toBeInstanceOf(SafetensorsError);
      expect((err as SafetensorsError).code).toBe('index-mismatch');
      expect((err as SafetensorsError).file).toBe(SHARD1);
      expect((err as SafetensorsError).tensor).toBe('model.layers.0.mlp.fc1.bias');
    }
  });

  it('refuses a malformed index', () => {
    const bad = (json: unknown, re: RegExp) => {
      expect(() => parseShardIndex(json)).toThrow(re);
      try {
        parseShardIndex(json);
      } catch (err) {
        expect((err as SafetensorsError).code).toBe('index-json');
      }
    };
    bad('{"weight_map": ', /not valid JSON/);
    bad('[]', /not a JSON object/);
    bad({ metadata: {} }, /no "weight_map"/);
    bad({ weight_map: {} }, /empty/);
    bad({ weight_map: { a: 3 } }, /not a file name/);
    bad({ weight_map: { a: '../../etc/passwd' } }, /not a plain file name/);
  });
});

describe('malformed safetensors files are refused with a specific error', () => {
  const ok: RawTensor[] = [
    { name: 'a', dtype: 'F16', shape: [2, 3] },
    { name: 'b', dtype: 'F32', shape: [5] },
  ];
  const file = (tensors: RawTensor[] = ok, options: RawFileOptions = {}) => rawSafetensors(tensors, options);

  it('accepts the well-formed base case', async () => {
    const { order } = await drain(file(), { fileSize: file().length });
    expect(order).toEqual(['a', 'b']);
  });

  it('truncated: inside the length, the header, the data', async () => {
    const f = file();
    await expectError(() => drain(f.subarray(0, 5)), 'truncated', /bad\.safetensors/, /5 of the 8 bytes/);
    await expectError(() => drain(f.subarray(0, 20)), 'truncated', /header/);
    const err = await expectError(() => drain(f.subarray(0, f.length - 3), {}, [1]), 'truncated', /3 bytes short/);
    expect(err.tensor).toBe('b');
  });

  it('header-length: beyond the cap, 64-bit garbage, too small, past the end of the file', async () => {
    await expectError(() => drain(file(ok, { headerLength: BigInt(MAX_HEADER_BYTES + 1) })), 'header-length', /exceeds the 100000000-byte cap/);
    await expectError(() => drain(file(ok, { headerLength: 2n ** 60n })), 'header-length', /cap/);
    await expectError(() => drain(file(ok, { headerLength: 1n })), 'header-length', /too small/);
    const f = file(ok, { headerLength: 5000n });
    await expectError(() => drain(f, { fileSize: f.length }), 'header-length', /runs past the end of the \d+-byte file/);
  });

  it('header-json: not UTF-8, not an object, not JSON', async () => {
    const bytes = file(ok, { headerText: '{"a":1}' });
    bytes[9] = 0xff; // break the UTF-8 of the header
    await expectError(() => drain(bytes), 'header-json', /UTF-8/);
    await expectError(() => drain(file(ok, { headerText: '[1, 2]' })), 'header-json', /does not start with '\{'/);
    await expectError(() => drain(file(ok, { headerText: '{"a": {"dtype": "F16",' })), 'header-json', /not valid JSON/);
  });

  it('header-entry: fields missing or of the wrong kind', async () => {
    const entry = (over: Partial<RawTensor> & { name?: string }) => file([{ name: 'x', dtype: 'F16', shape: [2], ...over }]);
    await expectError(() => drain(file(ok, { headerText: '{"x": 3}' })), 'header-entry', /tensor x/, /not an object/);
    await expectError(() => drain(file(ok, { headerText: '{"x": {"shape": [1], "data_offsets": [0, 2]}}' })), 'header-entry', /dtype is missing/);
    await expectError(() => drain(entry({ shape: [2, -1] })), 'header-entry', /shape \[2,-1\]/);
    await expectError(() => drain(entry({ shape: '2' })), 'header-entry', /shape "2"/);
    await expectError(() => drain(entry({ offsets: [0] })), 'header-entry', /data_offsets \[0\]/);
    await expectError(() => drain(entry({ offsets: [0, 2.5] })), 'header-entry', /data_offsets/);
  });

  it('metadata: must map strings to strings', async () => {
    await expectError(() => drain(file(ok, { metadata: { format: 3 } })), 'metadata', /__metadata__\.format is not a string/);
    await expectError(() => drain(file(ok, { metadata: ['pt'] })), 'metadata', /not an object/);
  });

  it('unknown-dtype names the tensor and lists the known ones', async () => {
    const err = await expectError(() => drain(file([{ name: 'w', dtype: 'F17', shape: [2], data: new Uint8Array(4) }])), 'unknown-dtype', /"F17"/, /BF16/);
    expect(err.tensor).toBe('w');
  });

  it('size-mismatch: shape × dtype differs from the offsets span', async () => {
    await expectError(
      () => drain(file([{ name: 'w', dtype: 'F32', shape: [3], data: new Uint8Array(8) }])),
      'size-mismatch',
      /tensor w/,
      /needs 12 bytes but data_offsets \[0, 8\] span 8/,
    );
    // Sub-byte dtypes must fill whole bytes.
    await expectError(() => drain(file([{ name: 'f4', dtype: 'F4', shape: [3], data: new Uint8Array(2) }])), 'size-mismatch', /non-whole number/);
  });

  it('offsets-out-of-range: reversed, or past the file', async () => {
    await expectError(() => drain(file([{ name: 'w', dtype: 'U8', shape: [0], offsets: [4, 2] }])), 'offsets-out-of-range', /end before they begin/);
    const f = file([{ name: 'w', dtype: 'U8', shape: [8], data: new Uint8Array(8) }], { truncate: 4 });
    await expectError(() => drain(f, { fileSize: f.length }), 'offsets-out-of-range', /tensor w/, /only 4 bytes of data/);
    // Without a known size the same file fails as a truncated stream.
    await expectError(() => drain(f), 'truncated');
  });

  it('offsets-overlap and offsets-gap name both tensors involved', async () => {
    const overlap = file([
      { name: 'a', dtype: 'U8', shape: [4], offsets: [0, 4], data: new Uint8Array(4) },
      { name: 'b', dtype: 'U8', shape: [4], offsets: [2, 6], data: new Uint8Array(2) },
    ]);
    const err = await expectError(() => drain(overlap), 'offsets-overlap', /overlap those of a \[0, 4\]/);
    expect(err.tensor).toBe('b');
    const gap = file([
      { name: 'a', dtype: 'U8', shape: [4], offsets: [0, 4], data: new Uint8Array(4) },
      { name: 'b', dtype: 'U8', shape: [2], offsets: [6, 8], data: new Uint8Array(4) },
    ]);
    await expectError(() => drain(gap), 'offsets-gap', /tensor b/, /2 unused bytes after the end of a/);
    const leading = file([{ name: 'a', dtype: 'U8', shape: [2], offsets: [2, 4], data: new Uint8Array(4) }]);
    await expectError(() => drain(leading), 'offsets-gap', /after the start of the data/);
  });

  it('trailing-data: known from the size, or found at the end of the stream', async () => {
    const f = file(ok, { trailing: new Uint8Array(5) });
    await expectError(() => drain(f, { fileSize: f.length }), 'trailing-data', /5 bytes follow the last tensor/);
    await expectError(() => drain(f, {}, [1]), 'trailing-data', /bytes follow the last tensor/);
  });

  it('accepts zero-sized tensors and an empty file', async () => {
    const f = file([
      { name: 'empty', dtype: 'F32', shape: [0, 7] },
      { name: 'x', dtype: 'F32', shape: [1] },
    ]);
    const { tensors } = await drain(f, { fileSize: f.length }, [1]);
    expect(tensors.get('empty')!.length).toBe(0);
    expect(tensors.get('x')!.length).toBe(4);
    const { header } = await drain(file([]), {}, [1]);
    expect(header.tensors).toEqual([]);
  });
});

describe('safetensors writer', () => {
  it('writes bytes identical to what Python safetensors wrote for a PEFT adapter', () => {
    const python = fixtureBytes('golden', 'golden', 'adapter', 'adapter_model.safetensors');
    const parsed = parseSafetensors(python, 'adapter_model.safetensors');
    const rewritten = serializeSafetensors(
      // in reverse name order, to show the writer orders tensors itself
      [...parsed.header.tensors].reverse().map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: parsed.bytes(t.name) })),
      parsed.header.metadata,
    );
    expectSameBytes(rewritten, python, 'rewritten adapter');
  });

  it('pads the header to 8 bytes, orders by dtype then name, and reads back', async () => {
    const a = new Float32Array([1, -2.5, 3e-8]);
    const b = new Uint16Array([0x3c00, 0xc000]);
    const c = new Float64Array([Math.PI]);
    const bytes = serializeSafetensors(
      [
        { name: 'z.f32', dtype: 'F32', shape: [3], data: a },
        { name: 'y.f16', dtype: 'F16', shape: [1, 2], data: b },
        { name: 'a.f32', dtype: 'F32', shape: [1, 3], data: a },
        { name: 'x.f64', dtype: 'F64', shape: [], data: c },
      ],
      { format: 'pt', note: 'ünïcode' },
    );
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
    const { header, order } = await drain(bytes, { fileSize: bytes.length }, [3]);
    expect(order).toEqual(['x.f64', 'a.f32', 'z.f32', 'y.f16']);
    expect(header.metadata).toEqual({ format: 'pt', note: 'ünïcode' });
    const parsed = parseSafetensors(bytes);
    expect(Array.from(parsed.float32('z.f32'))).toEqual(Array.from(a));
    expect(Array.from(parsed.float32('y.f16'))).toEqual([1, -2]);
    expect(parsed.float32('x.f64')[0]).toBe(Math.fround(Math.PI));
    expect(new TextDecoder().decode(bytes.subarray(8, 8 + n))).toMatch(/^\{"__metadata__":\{"format":"pt","note":"ünïcode"\},"x\.f64".*\} *$/);
  });

  it('refuses inconsistent tensors', () => {
    const f = new Float32Array(4);
    expect(() => serializeSafetensors([{ name: 'a', dtype: 'F32', shape: [3], data: f }])).toThrow(/needs 12 bytes but 16 were given/);
    expect(() => serializeSafetensors([{ name: 'a', dtype: 'F32', shape: [4], data: f }, { name: 'a', dtype: 'F32', shape: [4], data: f }])).toThrow(
      /appears twice/,
    );
    expect(() => serializeSafetensors([{ name: '__metadata__', dtype: 'F32', shape: [4], data: f }])).toThrow(/may not be named/);
    expect(() => serializeSafetensors([], { format: 1 as unknown as string })).toThrow(/must be a string/);
  });
});
