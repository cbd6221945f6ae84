import { localLocks } from '../platform/locks';
import { StoreError } from '../store/errors';
import type { DamagedRecord } from '../store/store';
import { RecordChecksums } from '../store/record-checksum';
import type { ModelManifest, StoredFileState, TensorEntry, TensorRecord } from '../store/schema';
import { parsePhiConfig, readConfigJson, type PhiConfig } from './config';
import { dtypeBytes, isFloatSource, type FloatSourceDType } from './dtypes';
import { CheckpointError, HubError, SafetensorsError } from './errors';
import {
  RECORD_BYTES,
  TOKENIZER_FILES,
  defaultModelId,
  modelWriteLock,
  planTensorEntry,
  remainingBytes,
  sameSource,
  type ImportOptions,
  type ImportTarget,
} from './import-plan';
import { PhiLayout, type ParamSpec, type QuantScheme } from './layout';
import { ProgressTracker, countBytes } from './progress';
import { RowCodec } from './quantize';
import { DEFAULT_RETRY, abortedError, attemptsFor, backoffDelay, isRetryable, isUnreachable, sleep, type RetryPolicy } from './retry';
import { parseSafetensorsHeader, readSafetensorsStream, type SafetensorsHeader, type SafetensorsTensorInfo } from './safetensors';
import { INDEX_FILE, SINGLE_FILE, checkShardAgainstIndex, parseShardIndex, type ShardIndex } from './sharded';
import type { CheckpointSource, OpenedFile } from './source';

export { RECORD_BYTES, TOKENIZER_FILES, defaultModelId, modelWriteLock, planTensorEntry, type ImportOptions, type ImportTarget } from './import-plan';

/**
 * The import pipeline, the same for the Hub and for local files:
 *   config.json → (model.safetensors.index.json) → tokenizer files → each safetensors file streamed
 *   → header checked against the index and the Phi layout → whole rows converted (int8 / F16 / f32)
 *   → records of about RECORD_BYTES committed to the store with their checksums.
 * Nothing holds more than one piece of a tensor at a time. Progress is kept per record, so an
 * interrupted import (dropped connection, closed tab, full disk) resumes at the first missing record:
 * over HTTP with `Range: bytes=N-`, from files with Blob.slice. A file whose identity (ETag, size,
 * header) changed between attempts is restarted from scratch rather than mixing bytes of two versions.
 */

/** Imports (or resumes importing) a checkpoint into the store; returns the completed manifest. */
export async function importModel(options: ImportOptions): Promise<ModelManifest> {
  return new Importer(options).run();
}

class Importer {
  private readonly source: CheckpointSource;
  private readonly store: ImportTarget;
  private readonly scheme: QuantScheme;
  private readonly retry: RetryPolicy;
  private readonly recordBytes: number;
  private readonly signal?: AbortSignal;
  private readonly progress: ProgressTracker;
  private config!: PhiConfig;
  private layout!: PhiLayout;
  private index: ShardIndex | null = null;
  private manifest!: ModelManifest;
  private entries = new Map<string, TensorEntry>();
  private checksums!: RecordChecksums;
  /** Whether the source has answered once in this run: until it has, "no answer" gets only a few quick tries. */
  private answered = false;

  constructor(private readonly options: ImportOptions) {
    this.source = options.source;
    this.store = options.store;
    this.scheme = options.scheme ?? 'int8';
    if (this.scheme !== 'int8' && this.scheme !== 'f16') throw new RangeError(`unknown quantisation scheme ${String(this.scheme)}`);
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.recordBytes = options.recordBytes ?? RECORD_BYTES;
    this.signal = options.signal;
    this.progress = new ProgressTracker(options.now ?? (() => Date.now()), options.onProgress);
  }

  async run(): Promise<ModelManifest> {
    this.progress.phase('metadata');
    this.checksums = await RecordChecksums.load();
    const configText = await this.readSmall('config.json');
    if (configText === null) throw this.missing('config.json');
    const configJson = readConfigJson(configText) as Record<string, unknown>;
    this.config = parsePhiConfig(configJson);
    this.layout = new PhiLayout(this.config);

    const indexText = await this.readSmall(INDEX_FILE);
    let files: string[];
    if (indexText !== null) {
      this.index = parseShardIndex(indexText);
      // Every parameter accounted for before a byte of weights is fetched.
      this.layout.checkNames(this.index.weightMap.keys(), INDEX_FILE, true);
      files = [...this.index.shards];
    } else {
      files = [SINGLE_FILE];
    }

    const id = this.options.modelId ?? defaultModelId(this.source.description, this.source.displayName, this.scheme);
    // One writer per model across tabs: another tab importing, repairing or deleting the same model
    // finishes first, and this one then resumes from what that one stored.
    const locks = this.options.locks ?? localLocks;
    return locks.exclusive(modelWriteLock(id), () => this.write(id, configJson, files), {
      signal: this.signal,
      onWait: () => this.progress.notice('Another tab is writing this model (importing, repairing or deleting it); this import waits until it is done.'),
    });
  }

  private async write(id: string, configJson: Record<string, unknown>, files: string[]): Promise<ModelManifest> {
    await this.openManifest(id, configJson, files);
    if (this.manifest.complete) {
      // Stored completely before: read it back, and repair what is missing or damaged rather than trust the flag.
      const damaged = await this.checkStored('Checking the stored copy');
      if (!damaged.length) {
        this.updateTotals();
        this.progress.complete(this.manifest, this.entries.size);
        return this.manifest;
      }
      this.progress.notice(
        `${damaged.length} tensor${damaged.length === 1 ? ' was' : 's were'} missing or damaged in the stored copy (e.g. ${damaged[0].key}); fetching only those parts again.`,
      );
    }
    this.updateTotals();
    await this.store.requestPersistence();
    if (this.options.checkQuota !== false) await this.store.checkSpace(remainingBytes(this.entries.values()));

    this.progress.phase('tokenizer');
    const tokenizer: Record<string, string> = {};
    for (const name of TOKENIZER_FILES) {
      const text = await this.readSmall(name);
      if (text !== null) tokenizer[name] = text;
    }
    if (Object.keys(tokenizer).length) await this.store.putTokenizer(id, tokenizer);

    this.progress.phase('weights');
    for (const file of files) await this.importFile(file);

    const incomplete = [...this.entries.values()].filter((e) => !e.complete);
    if (incomplete.length) {
      throw new CheckpointError('tensor-missing', `The import ended with ${incomplete.length} tensor(s) incomplete, e.g. ${incomplete[0].hfName}.`, incomplete[0].file, incomplete[0].hfName);
    }
    // "complete" is written only once every record has been read back and matches its checksums.
    const damaged = await this.checkStored('Verifying what was stored');
    if (damaged.length) {
      throw new StoreError(
        'corrupt',
        `${damaged.length} tensor${damaged.length === 1 ? '' : 's'} failed verification right after being stored (e.g. ${damaged[0].key} record ${damaged[0].index}, ${damaged[0].reason}). ` +
          'They are marked to be fetched again: resume the import. If it keeps failing, the browser\u2019s storage may be failing.',
      );
    }
    this.manifest = { ...this.manifest, complete: true, updatedAt: Date.now() };
    await this.store.putModel(this.manifest);
    this.progress.complete(this.manifest, this.entries.size);
    return this.manifest;
  }

  /**
   * Reads back every stored record (when the store can) and marks what is missing or damaged for
   * repair, reloading the manifest and entries so that the import goes on to fetch exactly that.
   */
  private async checkStored(what: string): Promise<DamagedRecord[]> {
    if (!this.store.checkRecords || !this.store.markForRepair) return [];
    this.progress.phase('verifying');
    const damaged = await this.store.checkRecords(this.manifest.id, (done, total) => this.progress.verifying(what, done, total));
    if (damaged.length) {
      await this.store.markForRepair(this.manifest.id, damaged);
      this.manifest = (await this.store.getModel(this.manifest.id))!;
      this.entries.clear();
      for (const e of await this.store.getTensors(this.manifest.id)) this.entries.set(e.key, e);
    }
    return damaged;
  }

  private missing(file: string): Error {
    if (this.source.remote) {
      const where = this.source.description.kind === 'hub' ? `${this.source.displayName} at revision ${this.source.description.revision}` : this.source.displayName;
      return new HubError('not-found', `${where} has no ${file} (HTTP 404): check the repository name and the revision.`, file, 404);
    }
    return new CheckpointError('files-incomplete', `${file} is missing from the chosen files.`, file);
  }

  /** Creates the manifest, or picks up a compatible stored one (restarting an incompatible one). */
  private async openManifest(id: string, configJson: Record<string, unknown>, files: string[]): Promise<void> {
    const stored = await this.store.getModel(id);
    const fileOf = (spec: ParamSpec) => this.index?.weightMap.get(spec.hfName) ?? SINGLE_FILE;
    if (stored) {
      const same =
        stored.scheme === this.scheme &&
        JSON.stringify(stored.config) === JSON.stringify(configJson) &&
        JSON.stringify(stored.files.map((f) => f.name)) === JSON.stringify(files) &&
        sameSource(stored.source, this.source.description);
      if (same) {
        this.manifest = stored;
        for (const e of await this.store.getTensors(id)) this.entries.set(e.key, e);
        const plannedOk = this.layout.specs.every((s) => this.entries.get(s.key)?.file === fileOf(s));
        if (plannedOk) {
          if (!stored.complete) this.progress.notice(`Resuming ${stored.name}: ${this.countComplete()} of ${this.entries.size} tensors already stored.`);
          return;
        }
      }
      this.progress.notice(`The stored copy of ${id} does not match this checkpoint; importing it again.`);
      await this.store.deleteModel(id);
      this.entries.clear();
    }
    const now = Date.now();
    const entries = this.layout.specs.map((s) => planTensorEntry(id, s, this.scheme, fileOf(s), this.recordBytes));
    for (const e of entries) this.entries.set(e.key, e);
    this.manifest = {
      id,
      name: this.source.displayName,
      config: configJson,
      source: this.source.description,
      scheme: this.scheme,
      files: files.map((name) => ({ name, size: null, etag: null, header: null, headerLength: null, complete: false })),
      tensorCount: entries.length,
      storedBytes: entries.reduce((a, e) => a + e.bytes, 0),
      complete: false,
      createdAt: now,
      updatedAt: now,
    };
    await this.store.putModelWithTensors(this.manifest, entries);
  }

  /** Tells the progress tracker the expected bytes (real sizes where known) and tensor counts. */
  private updateTotals(): void {
    let expected = 0;
    for (const f of this.manifest.files) expected += f.size ?? this.estimateFileBytes(f.name);
    this.progress.setTotals(expected, this.entries.size, this.countComplete());
  }

  private countComplete(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.complete) n++;
    return n;
  }

  /** A small file's text, with retries on dropped connections and server errors. */
  private async readSmall(file: string): Promise<string | null> {
    for (let attempt = 1; ; attempt++) {
      this.checkAborted(file);
      try {
        const text = await this.source.readText(file, this.signal);
        this.answered = true;
        return text;
      } catch (err) {
        const attempts = this.attemptsAfter(err);
        if (!isRetryable(err, this.source.remote)) throw err;
        if (attempt >= attempts) throw gaveUp(err, attempt, file);
        await this.waitBeforeRetry(attempt, attempts, file, err as Error);
      }
    }
  }

  /** The attempts a failure allows, given whether the source has answered before (an HTTP status is an answer too). */
  private attemptsAfter(err: unknown): number {
    const answeredBefore = this.answered;
    if (err instanceof HubError && err.status !== undefined) this.answered = true;
    return attemptsFor(err, answeredBefore, this.retry);
  }

  private checkAborted(file?: string): void {
    if (this.signal?.aborted) throw abortedError(file);
  }

  private async waitBeforeRetry(retry: number, attempts: number, file: string, err: Error): Promise<void> {
    const delay = backoffDelay(retry, this.retry);
    const status = { what: file, attempt: retry + 1, attempts, delayMs: delay, reason: err.message, unreachable: !this.answered && isUnreachable(err) };
    this.progress.retrying(status, `${file}: ${err.message} Retrying in ${(delay / 1000).toFixed(1)} s (attempt ${retry + 1} of ${attempts}).`);
    await sleep(delay, this.signal);
  }

  private fileState(file: string): StoredFileState {
    const s = this.manifest.files.find((f) => f.name === file);
    if (!s) throw new Error(`internal: no state for ${file}`);
    return s;
  }

  private async saveFileState(file: string, update: Partial<StoredFileState>, entries: TensorEntry[] = []): Promise<void> {
    this.manifest = {
      ...this.manifest,
      files: this.manifest.files.map((f) => (f.name === file ? { ...f, ...update } : f)),
      updatedAt: Date.now(),
    };
    if (entries.length) await this.store.putModelWithTensors(this.manifest, entries);
    else await this.store.putModel(this.manifest);
  }

  private fileEntries(file: string): TensorEntry[] {
    return [...this.entries.values()].filter((e) => e.file === file);
  }

  /** Bytes per piece of a tensor: whole records' worth of source rows. */
  private pieceBytes = (t: SafetensorsTensorInfo): number => {
    const spec = this.layout.spec(t.name);
    if (!spec || !isFloatSource(t.dtype)) return Math.max(1, t.end - t.begin);
    const e = this.entries.get(spec.key)!;
    return e.rowsPerRecord * e.cols * dtypeBytes(t.dtype);
  };

  /** The stored header of a file, and the first byte not yet stored (null: start from the beginning). */
  private resumePoint(file: string): { header: SafetensorsHeader; offset: number } | null {
    const state = this.fileState(file);
    if (state.header === null || state.headerLength === null || state.size === null) return null;
    const json = new TextEncoder().encode(state.header);
    const padded = new Uint8Array(state.headerLength).fill(0x20);
    padded.set(json);
    const header = parseSafetensorsHeader(padded, file, state.size);
    for (const t of header.tensors) {
      const spec = this.layout.spec(t.name);
      if (!spec) continue;
      const e = this.entries.get(spec.key)!;
      if (!e.complete) return { header, offset: header.dataStart + t.begin + e.recordsDone * this.pieceBytes(t) };
    }
    return { header, offset: header.fileSize };
  }

  private async importFile(file: string): Promise<void> {
    const state = this.fileState(file);
    const tensorsHere = this.fileEntries(file);
    if (state.complete && tensorsHere.every((e) => e.complete)) {
      this.progress.fileSkipped(state.size ?? 0);
      return;
    }
    this.progress.startFile(file, state.size ?? this.estimateFileBytes(file));
    let failures = 0;
    let restarts = 0;
    let lastOffset = -1;
    for (;;) {
      this.checkAborted(file);
      const resume = this.resumePoint(file);
      const offset = resume?.offset ?? 0;
      if (resume && offset >= resume.header.fileSize && this.fileEntries(file).every((e) => e.complete)) break;
      if (offset > lastOffset) failures = 0; // progress since the last failure
      lastOffset = offset;
      try {
        const opened = await this.source.open(file, offset, this.signal);
        this.answered = true;
        const current = this.fileState(file);
        if (current.etag !== null && opened.etag !== null && opened.etag !== current.etag) {
          throw new HubError('changed', `${file} changed since its download began (ETag ${current.etag}, now ${opened.etag}).`, file);
        }
        if (current.size !== null && opened.size !== null && opened.size !== current.size) {
          throw new HubError('changed', `${file} changed since its download began (${current.size} bytes, now ${opened.size}).`, file);
        }
        await this.streamFile(file, opened, resume);
        break;
      } catch (err) {
        if (err instanceof HubError && err.code === 'changed') {
          restarts++;
          if (restarts > (this.options.maxRestarts ?? 2)) {
            throw new HubError('changed', `${err.message} It kept changing while being downloaded; try again later.`, file);
          }
          this.progress.notice(`${err.message} Restarting ${file} from the beginning.`);
          await this.resetFile(file);
          lastOffset = -1;
          continue;
        }
        const attempts = this.attemptsAfter(err);
        if (!isRetryable(err, this.source.remote)) throw err;
        failures++;
        if (failures >= attempts) throw gaveUp(err, failures, file);
        await this.waitBeforeRetry(failures, attempts, file, err as Error);
      }
    }
    const done = this.fileEntries(file);
    if (!done.every((e) => e.complete)) throw new Error(`internal: ${file} ended with incomplete tensors`);
    await this.saveFileState(file, { complete: true });
    this.progress.endFile(this.fileState(file).size ?? 0);
  }

  /** Forgets everything stored from a file (it changed at the source). */
  private async resetFile(file: string): Promise<void> {
    const fresh = this.fileEntries(file).map((e) => ({ ...e, sourceDtype: '', recordsDone: 0, checksums: [], complete: false }));
    for (const e of fresh) this.entries.set(e.key, e);
    this.manifest = {
      ...this.manifest,
      files: this.manifest.files.map((f) =>
        f.name === file ? { name: f.name, size: null, etag: null, header: null, headerLength: null, complete: false } : f,
      ),
    };
    await this.store.resetTensors(this.manifest, fresh.map((e) => e.key), fresh);
    this.updateTotals();
  }

  private estimateFileBytes(file: string): number {
    const elementBytes = /^(float32|fp32)$/.test(this.config.torchDtype ?? '') ? 4 : 2;
    let n = 0;
    for (const e of this.fileEntries(file)) n += e.rows * e.cols * elementBytes;
    return n;
  }

  private async streamFile(file: string, opened: OpenedFile, resume: { header: SafetensorsHeader; offset: number } | null): Promise<void> {
    // A source that could not seek (a server that ignored Range) starts over at byte 0; stored
    // records are then re-read and must match their checksums.
    const resumed = resume !== null && opened.offset === resume.offset && opened.offset > 0;
    this.progress.filePosition(opened.offset);
    const body = countBytes(opened.body, (n) => this.progress.received(n));
    const codecs = new Map<string, RowCodec>();
    const events = readSafetensorsStream(body, {
      file,
      fileSize: opened.offset === 0 ? (opened.size ?? undefined) : undefined,
      pieceBytes: this.pieceBytes,
      resume: resumed ? { header: resume.header, offset: resume.offset } : undefined,
    });
    // One record's commit stays in flight while the next is read and converted: IndexedDB writes
    // (in the browser's storage process) overlap the quantisation instead of adding to it. The next
    // commit waits for the previous one, so records still land in order.
    let committing: Promise<void> | null = null;
    try {
      for await (const event of events) {
        this.checkAborted(file);
        if (event.kind === 'header') {
          if (!resumed) await this.acceptHeader(file, event.header, opened);
          continue;
        }
        const { tensor } = event;
        const spec = this.layout.spec(tensor.name);
        if (!spec) continue; // a derived buffer the engine recomputes
        // Possibly one record behind (a commit in flight), which never makes a new record look stored.
        const known = this.entries.get(spec.key)!;
        const index = event.offset / this.pieceBytes(tensor);
        let codec = codecs.get(tensor.name);
        if (!codec) {
          codec = new RowCodec({ file, tensor: tensor.name, source: tensor.dtype as FloatSourceDType, stored: known.dtype, cols: known.cols });
          codecs.set(tensor.name, codec);
        }
        const rowStart = index * known.rowsPerRecord;
        if (index < known.recordsDone) {
          const again = codec.encode(event.bytes, rowStart);
          if (!this.checksums.matches(known.checksums[index], again.data, again.scales ?? null)) {
            throw new HubError('changed', `${file} differs from the part stored before (${tensor.name} record ${index}).`, file);
          }
          continue;
        }
        const encoded = codec.encode(event.bytes, rowStart);
        const data = encoded.data.buffer as ArrayBuffer;
        const scales = (encoded.scales?.buffer as ArrayBuffer | undefined) ?? null;
        const record: TensorRecord = {
          modelId: known.modelId,
          key: known.key,
          index,
          rowStart,
          rows: event.bytes.length / codec.sourceRowBytes,
          data,
          scales,
          checksum: this.checksums.of(data, scales),
        };
        if (committing) await committing;
        committing = this.commit(this.entries.get(spec.key)!, record);
        committing.catch(() => undefined); // awaited before the next commit or at the end
      }
      if (committing) await committing;
    } finally {
      // Stopped early (pause, a dropped connection): let the commit in flight settle, so what resumes
      // sees exactly what was stored.
      if (committing) await committing.catch(() => undefined);
    }
  }

  private async commit(entry: TensorEntry, record: TensorRecord): Promise<void> {
    const updated = await this.store.writeRecord(entry, record, remainingBytes(this.entries.values()));
    this.entries.set(updated.key, updated);
    if (updated.complete) this.progress.tensorDone();
  }

  /** Checks a freshly read header against the index, the layout and what is stored. */
  private async acceptHeader(file: string, header: SafetensorsHeader, opened: OpenedFile): Promise<void> {
    const state = this.fileState(file);
    if (state.header !== null) {
      if (state.header !== header.json || state.size !== header.fileSize) {
        throw new HubError('changed', `${file} has a different header from the one stored when its download began.`, file);
      }
      return;
    }
    const names = header.tensors.map((t) => t.name);
    if (this.index) checkShardAgainstIndex(this.index, file, names);
    else this.layout.checkNames(names, file, true);
    const updated: TensorEntry[] = [];
    for (const t of header.tensors) {
      const spec = this.layout.checkTensor(t, file);
      if (!spec) continue;
      const e = this.entries.get(spec.key)!;
      if (e.file !== file) throw new SafetensorsError('index-mismatch', file, `expected in ${e.file}`, t.name);
      const next = { ...e, sourceDtype: t.dtype };
      this.entries.set(e.key, next);
      updated.push(next);
    }
    await this.saveFileState(
      file,
      { size: header.fileSize, etag: opened.etag, header: header.json, headerLength: header.headerLength },
      updated,
    );
    this.progress.fileSize(header.fileSize);
    this.updateTotals();
  }
}

/** The last failure, saying how many attempts were made (an error without a code of ours passes as it is). */
function gaveUp(err: unknown, attempts: number, file: string): unknown {
  if (!(err instanceof HubError) || attempts < 2) return err;
  return new HubError(err.code, `${err.message} Gave up after ${attempts} attempts.`, file, err.status);
}
