import { BindGroupCache } from './bind-groups';
import type { GpuTensor } from './tensor';
import { BufferUsage } from './usage';

/**
 * Records kernel dispatches into one command encoder and submits them together. Each dispatch's
 * uniforms (its shapes) go into one shared arena buffer, written once per submit, so a whole forward
 * pass costs one writeBuffer and one submit. Binding 0 of every kernel is its uniform block; the
 * tensors follow in the order the kernel module lists them.
 *
 * A pass that repeats with nothing changed but a position (a decode step: the same kernels on the
 * same buffers, one token further on) can be captured once and replayed: capture() keeps what was
 * recorded, with its own uniform buffer and bind groups made once, and replay() only patches the
 * uniform words that hold the position, uploads them and encodes the dispatches. No kernel's
 * JavaScript (argument checks, uniform packing, cache keys) runs again.
 *
 * A pass whose scalars change from one run to the next (a training step: its dropout seed, its label
 * count, the optimizer's learning rate and step) is captured the same way: a kernel marks each such
 * uniform word with the replay value it is computed from (packUniforms' third field), and each replay
 * computes the word afresh from the values it is given, as packUniforms would have packed it.
 */

const UNIFORM_SLOT = 256; // minUniformBufferOffsetAlignment's largest allowed value

interface PendingDispatch {
  pipeline: GPUComputePipeline;
  uniformOffset: number;
  tensors: readonly GpuTensor[];
  workgroups: [number, number, number];
  label: string;
}

/** A buffer copy recorded in order with the dispatches. */
interface RecordedCopy {
  src: GpuTensor;
  dst: GpuTensor;
  bytes: number;
}

type PendingItem = PendingDispatch | { copy: RecordedCopy } | { replay: RecordedPass };

/** A dispatch ready to encode: its bind group is made. */
interface ReadyDispatch {
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: [number, number, number];
}

type ReadyItem = ReadyDispatch | { copy: RecordedCopy };

export type UniformType = 'u32' | 'i32' | 'f32';

/**
 * How a uniform word of a captured pass is computed from a replay's named values (`value(name)` throws
 * when the replay does not give `name`). Outside a capture it is never called.
 */
export type ReplayWord = (value: (name: string) => number) => number;

/** One field of a uniform block: its type, its value now, and how a replay recomputes it (if it does). */
export type UniformField = readonly [UniformType, number] | readonly [UniformType, number, ReplayWord];

/** The replay words of the uniform blocks packUniforms made, by block. */
const replayWords = new WeakMap<ArrayBuffer, ReadonlyArray<{ word: number; type: UniformType; compute: ReplayWord }>>();

interface LiveWord {
  offset: number;
  type: UniformType;
  compute: ReplayWord;
}

/** A captured pass (KernelEncoder.capture): replayed with its position words shifted and its replay words recomputed. */
export class RecordedPass {
  private readonly words: Uint32Array;
  private readonly view: DataView;

  constructor(
    readonly items: readonly ReadyItem[],
    /** Its own uniform buffer and the bytes that go into it. */
    readonly arena: GPUBuffer | null,
    readonly uniforms: ArrayBuffer,
    /** Byte offsets in `uniforms` of the u32 words that hold a position, and their values at capture. */
    private readonly positions: ReadonlyArray<{ offset: number; value: number }>,
    /** Dispatches it runs. */
    readonly dispatches: number,
    /** The words a replay recomputes from its values. */
    private readonly live: readonly LiveWord[] = [],
  ) {
    this.words = new Uint32Array(uniforms);
    this.view = new DataView(uniforms);
  }

  /** Sets every position word to its captured value plus `shift`. */
  shiftPositions(shift: number): void {
    for (const { offset, value } of this.positions) this.words[offset >> 2] = value + shift;
  }

  /** Recomputes every replay word from `values`. */
  setValues(values: Readonly<Record<string, number>>): void {
    const value = (name: string): number => {
      const v = values[name];
      if (typeof v !== 'number') throw new Error(`replay: the pass reads the value '${name}', which this replay does not give (it gives ${Object.keys(values).join(', ') || 'none'})`);
      return v;
    };
    for (const { offset, type, compute } of this.live) writeWord(this.view, offset, type, compute(value));
  }

  destroy(): void {
    this.arena?.destroy();
  }
}

export interface DispatchTimer {
  /** Timestamp writes for the pass of one dispatch, or undefined when not timing it. */
  passTimestamps(label: string): GPUComputePassTimestampWrites | undefined;
}

export class KernelEncoder {
  private arena: GPUBuffer | null = null;
  private staging = new ArrayBuffer(64 * UNIFORM_SLOT);
  private used = 0;
  /** Dispatches recorded since the last submit; for tests and profiles. */
  dispatches = 0;
  /** Dispatches recorded since the encoder was made (across submits); for profiles. */
  recorded = 0;
  /** Command buffers submitted since the encoder was made; for profiles. */
  submits = 0;
  /** Bind groups reused across submits (a new arena, a new id: stale ones are never hit). */
  readonly bindGroups: BindGroupCache;

  constructor(
    readonly device: GPUDevice,
    private readonly timer?: DispatchTimer,
  ) {
    this.bindGroups = new BindGroupCache(device);
  }

  /**
   * Records one dispatch. `positionWords`: the u32 words of the uniform block that hold a position
   * (past_len, and sizes that grow with it one for one), which a replay of a captured pass shifts.
   */
  dispatch(
    pipeline: GPUComputePipeline,
    uniforms: ArrayBuffer | ArrayBufferView,
    tensors: readonly GpuTensor[],
    workgroups: readonly [number, number?, number?],
    label = pipeline.label,
    positionWords: readonly number[] = [],
  ): void {
    const [x, y = 1, z = 1] = workgroups;
    const max = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max) throw new Error(`${label}: dispatch ${x}x${y}x${z} exceeds ${max} per dimension`);
    if (x === 0 || y === 0 || z === 0) return;
    const uniformOffset = this.writeUniforms(uniforms);
    if (this.capturing) {
      const view = new DataView(this.staging);
      for (const w of positionWords) this.positions.push({ offset: uniformOffset + 4 * w, value: view.getUint32(uniformOffset + 4 * w, true) });
      const live = uniforms instanceof ArrayBuffer ? replayWords.get(uniforms) : undefined;
      for (const { word, type, compute } of live ?? []) this.live.push({ offset: uniformOffset + 4 * word, type, compute });
    }
    this.pending.push({ pipeline, uniformOffset, tensors, workgroups: [x, y, z], label });
    this.dispatches++;
    this.recorded++;
  }

  /** Whether a capture is under way (host writes cannot be part of one). */
  get isCapturing(): boolean {
    return this.capturing;
  }

  /**
   * Runs `record` (which records dispatches and copies, and no host writes) and keeps what it recorded
   * as a pass to replay instead of submitting it. Nothing runs until the first replay. Work recorded
   * before is submitted first.
   */
  capture(record: () => void): RecordedPass {
    if (this.capturing) throw new Error('capture: a capture is already under way');
    this.submit();
    const recordedBefore = this.recorded;
    this.capturing = true;
    this.positions = [];
    this.live = [];
    let items: PendingItem[];
    try {
      record();
    } finally {
      this.capturing = false;
      items = this.pending;
      this.pending = [];
    }
    const dispatches = this.recorded - recordedBefore;
    // Capturing runs nothing: the replays count.
    this.recorded = recordedBefore;
    this.dispatches = 0;
    const uniforms = this.staging.slice(0, this.used);
    this.used = 0;
    const arena = uniforms.byteLength
      ? this.device.createBuffer({ label: 'recorded-pass-uniforms', size: uniforms.byteLength, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST })
      : null;
    const ready: ReadyItem[] = [];
    for (const item of items) {
      if ('replay' in item) continue; // cannot be: replay() refuses to run inside a capture
      if ('copy' in item) ready.push(item);
      // The pass's own arena: no other dispatch could ever hit these bind groups in the shared cache.
      else ready.push({ pipeline: item.pipeline, bindGroup: this.bindGroups.create(item.pipeline, arena!, item.uniformOffset, UNIFORM_SLOT, item.tensors, item.label), workgroups: item.workgroups });
    }
    return new RecordedPass(ready, arena, uniforms, this.positions, dispatches, this.live);
  }

  /**
   * Runs a captured pass once more, with its position words at their captured values plus `shift`
   * and its replay words computed from `values`: its uniforms are uploaded now and its dispatches go
   * into the next submit, in order with whatever is recorded before and after it (a readback's
   * copy). A replay of a pass that is already waiting in this submit submits first (each upload of
   * the pass's uniforms must meet its own dispatches); different passes share one submit.
   */
  replay(pass: RecordedPass, shift: number, values: Readonly<Record<string, number>> = {}): void {
    if (this.capturing) throw new Error('replay: not inside a capture');
    if (this.pending.some((item) => 'replay' in item && item.replay === pass)) this.submit();
    if (pass.arena) {
      pass.shiftPositions(shift);
      pass.setValues(values);
      this.device.queue.writeBuffer(pass.arena, 0, pass.uniforms);
    }
    this.pending.push({ replay: pass });
    this.recorded += pass.dispatches;
  }

  /** Dispatches and copies into `encoder`, one compute pass between copies. */
  private encode(encoder: GPUCommandEncoder, items: readonly ReadyItem[]): void {
    let pass: GPUComputePassEncoder | null = null;
    let pipeline: GPUComputePipeline | null = null;
    for (const item of items) {
      if ('copy' in item) {
        pass?.end();
        pass = null;
        encodeCopy(encoder, item.copy);
        continue;
      }
      if (!pass) {
        pass = encoder.beginComputePass();
        pipeline = null;
      }
      if (item.pipeline !== pipeline) {
        pass.setPipeline(item.pipeline);
        pipeline = item.pipeline;
      }
      pass.setBindGroup(0, item.bindGroup);
      pass.dispatchWorkgroups(...item.workgroups);
    }
    pass?.end();
  }

  /** Records a buffer copy in order with the dispatches. */
  copy(src: GpuTensor, dst: GpuTensor, bytes: number): void {
    this.pending.push({ copy: { src, dst, bytes } });
  }

  /** Encodes everything recorded, writes the uniform arena once and submits. Inside a capture, nothing. */
  submit(): void {
    if (!this.pending.length || this.capturing) return;
    if (this.used) {
      this.ensureArena();
      this.device.queue.writeBuffer(this.arena!, 0, this.staging, 0, this.used);
    }
    const encoder = this.device.createCommandEncoder();
    let pass: GPUComputePassEncoder | null = null;
    for (const item of this.pending) {
      if ('replay' in item) {
        pass?.end();
        pass = null;
        this.encode(encoder, item.replay.items);
        continue;
      }
      if ('copy' in item) {
        pass?.end();
        pass = null;
        encodeCopy(encoder, item.copy);
        continue;
      }
      const timestampWrites = this.timer?.passTimestamps(item.label);
      if (timestampWrites || !pass) {
        pass?.end();
        pass = encoder.beginComputePass(timestampWrites ? { timestampWrites } : {});
      }
      pass.setPipeline(item.pipeline);
      pass.setBindGroup(0, this.bindGroup(item));
      pass.dispatchWorkgroups(...item.workgroups);
      if (timestampWrites) {
        pass.end();
        pass = null;
      }
    }
    pass?.end();
    this.execute(encoder.finish());
    this.submits++;
    this.pending = [];
    this.used = 0;
    this.dispatches = 0;
  }

  /** Hands a finished command buffer to the queue (benchmarks that measure only the CPU drop it). */
  protected execute(commands: GPUCommandBuffer): void {
    this.device.queue.submit([commands]);
  }

  private pending: PendingItem[] = [];
  private capturing = false;
  private positions: Array<{ offset: number; value: number }> = [];
  private live: LiveWord[] = [];

  private bindGroup(item: PendingDispatch): GPUBindGroup {
    return this.bindGroups.get(item.pipeline, this.arena!, item.uniformOffset, UNIFORM_SLOT, item.tensors, item.label);
  }

  private writeUniforms(data: ArrayBuffer | ArrayBufferView): number {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength > UNIFORM_SLOT) throw new Error(`uniform block of ${bytes.byteLength} bytes exceeds ${UNIFORM_SLOT}`);
    if (this.used + UNIFORM_SLOT > this.staging.byteLength) {
      const grown = new ArrayBuffer(this.staging.byteLength * 2);
      new Uint8Array(grown).set(new Uint8Array(this.staging));
      this.staging = grown;
    }
    const offset = this.used;
    new Uint8Array(this.staging, offset, UNIFORM_SLOT).fill(0).set(bytes);
    this.used += UNIFORM_SLOT;
    return offset;
  }

  private ensureArena(): void {
    if (this.arena && this.arena.size >= this.used) return;
    this.arena?.destroy();
    this.arena = this.device.createBuffer({
      label: 'uniform-arena',
      size: Math.max(this.staging.byteLength, this.used),
      usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST,
    });
  }

  destroy(): void {
    this.arena?.destroy();
    this.arena = null;
    this.bindGroups.clear();
  }
}

/**
 * Packs a kernel's uniform block: u32, i32 and f32 fields in declaration order, 4 bytes each. A field's
 * third element, when given, says how a replay of a captured pass recomputes it (ReplayWord).
 */
export function packUniforms(fields: ReadonlyArray<UniformField>): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil((fields.length * 4) / 16) * 16));
  const view = new DataView(buf);
  let live: Array<{ word: number; type: UniformType; compute: ReplayWord }> | null = null;
  fields.forEach((field, i) => {
    writeWord(view, i * 4, field[0], field[1]);
    if (field.length === 3) (live ??= []).push({ word: i, type: field[0], compute: field[2] });
  });
  if (live) replayWords.set(buf, live);
  return buf;
}

function writeWord(view: DataView, offset: number, type: UniformType, value: number): void {
  if (type === 'f32') view.setFloat32(offset, value, true);
  else if (type === 'i32') view.setInt32(offset, value, true);
  else {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new Error(`u32 uniform out of range: ${value}`);
    view.setUint32(offset, value, true);
  }
}

/** A recorded copy, between the compute passes around it. */
function encodeCopy(encoder: GPUCommandEncoder, { src, dst, bytes }: RecordedCopy): void {
  encoder.copyBufferToBuffer(src.buffer, src.byteOffset, dst.buffer, dst.byteOffset, bytes);
}
