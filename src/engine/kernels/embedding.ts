import embeddingFwd from '../../../shaders/embedding.fwd.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';
import { expectCount } from './kernel-args';
import { f16RowChunks, type F16Rows } from './row-chunks';

const FWD = { name: 'embedding.fwd', code: embeddingFwd };
const WG = 128;

/**
 * Throws a precise error for the first token id outside [0, vocab). Where the ids are known on the
 * CPU (tokenized prompts, training batches) call this, or pass them to embeddingForward, before upload.
 */
export function validateTokenIds(kernel: string, ids: ArrayLike<number>, vocab: number): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocab) {
      throw new Error(`${kernel}: token id ${id} at position ${i} is outside the vocabulary [0, ${vocab})`);
    }
  }
}

/**
 * out[t, :] = f32(table[ids[t], :]): the token embedding, read from an f16 table [vocab, hidden]
 * (one tensor, or chunks of whole rows; one dispatch per chunk). ids are u32 or i32 [tokens].
 * `hostIds`, when the caller has them, are validated first; on the GPU an out-of-range id is clamped
 * into the table rather than read out of bounds. No backward: the embedding is frozen under LoRA.
 */
export function embeddingForward(
  gpu: GpuRuntime,
  out: GpuTensor,
  ids: GpuTensor,
  table: F16Rows,
  tokens: number,
  hidden: number,
  vocab: number,
  hostIds?: ArrayLike<number>,
): void {
  const k = 'embeddingForward';
  expectCount(k, 'tokens', tokens);
  expectCount(k, 'hidden', hidden, 2);
  expectCount(k, 'vocab', vocab, 1);
  if (hidden % 2 !== 0) throw new Error(`${k}: hidden=${hidden} must be even (f16 rows are read two per 32-bit word)`);
  expectDType(k, out, 'f32');
  expectShape(k, out, [tokens, hidden]);
  if (ids.dtype !== 'u32' && ids.dtype !== 'i32') throw new Error(`${k}: ${ids.name} is ${ids.dtype}, expected u32 or i32`);
  expectShape(k, ids, [tokens]);
  const chunks = f16RowChunks(k, table, vocab, hidden);
  if (hostIds) {
    if (hostIds.length !== tokens) throw new Error(`${k}: ${hostIds.length} host ids given for ${tokens} tokens`);
    validateTokenIds(k, hostIds, vocab);
  }
  const pipeline = gpu.pipelines.get(FWD, { WG });
  const [gx, gy] = grid(tokens);
  for (const { table: rows, firstRow } of chunks) {
    gpu.encoder.dispatch(
      pipeline,
      packUniforms([
        ['u32', tokens],
        ['u32', hidden / 2],
        ['u32', vocab],
        ['u32', firstRow],
        ['u32', rows.shape[0]],
        ['u32', ids.dtype === 'i32' ? 1 : 0],
        ['u32', gx],
      ]),
      [out, ids, rows],
      [gx, gy],
    );
  }
}
