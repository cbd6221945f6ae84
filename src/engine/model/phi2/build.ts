import type { F16RowChunk } from '../../kernels/row-chunks';
import { modelDims } from '../../weights/config';
import type { PhiWeights, RowChunk } from '../../weights/gpu-weights';
import { LINEAR_NAMES, type BlockParams, type Phi2Params } from './params';

/** The model's view of weights on the GPU (weights/gpu-weights.ts), from the store or a checkpoint. */
export function phi2ParamsFromWeights(w: PhiWeights): Phi2Params {
  const chunks = (rows: RowChunk[]): F16RowChunk[] => rows.map((c) => ({ table: c.tensor, firstRow: c.rows[0] }));
  return {
    dims: modelDims(w.config),
    weightMode: w.scheme,
    embedding: chunks(w.embedding),
    blocks: w.layers.map((layer) => {
      const block = { ln: layer.ln } as BlockParams;
      for (const name of LINEAR_NAMES) block[name] = { weight: layer[name].weight, scales: layer[name].scales ?? null, bias: layer[name].bias };
      return block;
    }),
    finalLn: w.finalLn,
    lmHead: chunks(w.lmHead.weight),
    lmHeadBias: w.lmHead.bias,
  };
}
