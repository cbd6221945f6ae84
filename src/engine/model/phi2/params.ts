import type { GpuTensor } from '../../gpu/tensor';
import type { F16RowChunk } from '../../kernels/row-chunks';
import type { ModelDims } from '../../weights/config';
import { LINEAR_NAMES } from '../../weights/layout';

/**
 * Phi-2's parameters on the GPU, named as the model uses them. The loader fills this from the
 * IndexedDB store (or, in tests and the CLI, straight from safetensors files).
 */

/** A frozen linear layer: int8 weight with per-row scales, or f16 weight without. */
export interface LinearParams {
  weight: GpuTensor;
  scales: GpuTensor | null;
  bias: GpuTensor;
}

export interface LayerNormParams {
  weight: GpuTensor;
  bias: GpuTensor;
}

export interface BlockParams {
  ln: LayerNormParams;
  q: LinearParams;
  k: LinearParams;
  v: LinearParams;
  dense: LinearParams;
  fc1: LinearParams;
  fc2: LinearParams;
}

export interface Phi2Params {
  dims: ModelDims;
  weightMode: 'int8' | 'f16';
  /** The F16 token embedding [vocab, hidden], possibly in chunks of whole rows. */
  embedding: F16RowChunk[];
  blocks: BlockParams[];
  finalLn: LayerNormParams;
  /** The F16 lm_head [vocab, hidden], possibly in chunks of whole rows, and its bias [vocab]. */
  lmHead: F16RowChunk[];
  lmHeadBias: GpuTensor;
}

// The six linear layers of a block, in the order the stored layout lists them.
export { LINEAR_NAMES, type LinearName } from '../../weights/layout';

/** Every GPU buffer of the model, for destruction and memory accounting. */
export function paramTensors(p: Phi2Params): GpuTensor[] {
  const out: GpuTensor[] = [];
  for (const c of p.embedding) out.push(c.table);
  for (const b of p.blocks) {
    out.push(b.ln.weight, b.ln.bias);
    for (const n of LINEAR_NAMES) {
      const l = b[n];
      out.push(l.weight, l.bias);
      if (l.scales) out.push(l.scales);
    }
  }
  out.push(p.finalLn.weight, p.finalLn.bias, p.lmHeadBias);
  for (const c of p.lmHead) out.push(c.table);
  return out;
}

export function destroyParams(p: Phi2Params): void {
  const seen = new Set<GPUBuffer>();
  for (const t of paramTensors(p)) {
    if (!seen.has(t.buffer)) {
      seen.add(t.buffer);
      t.buffer.destroy();
    }
  }
}
