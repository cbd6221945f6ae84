import { tensorBytes, type GpuTensor } from './tensor';

/** Binding 0 = `uniforms` at `uniformOffset` (`uniformSize` bytes), then the tensors in order. */
export type BindGroupBindings = [
  pipeline: GPUComputePipeline,
  uniforms: GPUBuffer,
  uniformOffset: number,
  uniformSize: number,
  tensors: readonly GpuTensor[],
  label: string,
];

/**
 * Bind groups kept across submits. A decode step records the same ~450 dispatches with the same
 * buffers every token, and a training step ~3,800; creating each dispatch's bind group anew (and
 * asking the pipeline for its layout, which returns a new object every call) costs the CPU time of
 * the whole step on a fast GPU. Keyed by the pipeline, the uniform slot and every binding's buffer,
 * offset and size, so a hit is exactly the bind group that would be created. Bind groups of
 * destroyed buffers are never hit again (a new buffer gets a new id) and go when the cache is full.
 * A captured pass keeps its own bind groups (`create`): they would never be looked up again.
 */
export class BindGroupCache {
  private readonly groups = new Map<string, GPUBindGroup>();
  private readonly layouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>();
  private readonly ids = new WeakMap<object, number>();
  private nextId = 1;
  hits = 0;
  misses = 0;

  constructor(
    private readonly device: GPUDevice,
    /** Entries kept before the cache starts over: several steps' worth of distinct dispatches. */
    private readonly capacity = 16384,
  ) {}

  get size(): number {
    return this.groups.size;
  }

  /** The bind group of a dispatch, made on the first request and kept: see BindGroupBindings. */
  get(...bindings: BindGroupBindings): GPUBindGroup {
    const [pipeline, uniforms, uniformOffset, , tensors] = bindings;
    let key = `${this.id(pipeline)}|${this.id(uniforms)}@${uniformOffset}`;
    for (const t of tensors) key += `|${this.id(t.buffer)}@${t.byteOffset}+${tensorBytes(t.shape, t.dtype)}`;
    const cached = this.groups.get(key);
    if (cached) {
      this.hits++;
      return cached;
    }
    this.misses++;
    const group = this.create(...bindings);
    if (this.groups.size >= this.capacity) this.groups.clear();
    this.groups.set(key, group);
    return group;
  }

  /** The bind group `get` would make, not kept: for a holder that keeps it itself (a captured pass). */
  create(...[pipeline, uniforms, uniformOffset, uniformSize, tensors, label]: BindGroupBindings): GPUBindGroup {
    let layout = this.layouts.get(pipeline);
    if (!layout) {
      layout = pipeline.getBindGroupLayout(0);
      this.layouts.set(pipeline, layout);
    }
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: uniforms, offset: uniformOffset, size: uniformSize } }];
    // Exactly the tensor's bytes: two views of one buffer then never overlap in WebGPU's eyes.
    tensors.forEach((t, i) => entries.push({ binding: i + 1, resource: { buffer: t.buffer, offset: t.byteOffset, size: tensorBytes(t.shape, t.dtype) } }));
    return this.device.createBindGroup({ label, layout, entries });
  }

  clear(): void {
    this.groups.clear();
  }

  private id(o: object): number {
    let id = this.ids.get(o);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(o, id);
    }
    return id;
  }
}
