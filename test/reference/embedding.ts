import { f16BitsToNumber } from '../../src/engine/kernels/weight-formats';

/** Float64 reference of the f16 embedding lookup: each id's row, decoded exactly. Ids must be valid. */
export function embeddingForwardRef(table: Uint16Array, ids: ArrayLike<number>, hidden: number): Float64Array {
  const out = new Float64Array(ids.length * hidden);
  for (let t = 0; t < ids.length; t++) {
    for (let c = 0; c < hidden; c++) out[t * hidden + c] = f16BitsToNumber(table[ids[t] * hidden + c]);
  }
  return out;
}
