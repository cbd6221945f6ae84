import argmaxCode from '../../../shaders/argmax.wgsl?raw';
import rowLogits from '../../../shaders/lib/row_logits.wgsl?raw';
import rowReduce from '../../../shaders/lib/row_reduce.wgsl?raw';
import gatherCode from '../../../shaders/logprob.gather.wgsl?raw';
import softmaxFwd from '../../../shaders/softmax.fwd.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';
import { expectCount, expectDisjoint } from './kernel-args';

/** Row-wise kernels over logits [rows, vocab]: log-softmax, argmax, and the log-prob of given tokens. */

const LOG_SOFTMAX = { name: 'softmax.fwd', code: rowReduce + rowLogits + softmaxFwd };
const ARGMAX = { name: 'argmax', code: rowReduce + rowLogits + argmaxCode };
const GATHER = { name: 'logprob.gather', code: rowReduce + rowLogits + gatherCode };
const WG = 256;

function rowArgs(kernel: string, logits: GpuTensor, rows: number, cols: number): [number, number] {
  expectCount(kernel, 'rows', rows);
  expectCount(kernel, 'cols', cols, 1);
  expectDType(kernel, logits, 'f32');
  expectShape(kernel, logits, [rows, cols]);
  return grid(rows);
}

function expectIds(kernel: string, ids: GpuTensor, rows: number, allowSigned: boolean): void {
  const ok = ids.dtype === 'u32' || (allowSigned && ids.dtype === 'i32');
  if (!ok) throw new Error(`${kernel}: ${ids.name} is ${ids.dtype}, expected ${allowSigned ? 'u32 or i32' : 'u32'}`);
  expectShape(kernel, ids, [rows]);
}

/** out = log_softmax(logits) per row, and lse [rows] = logsumexp per row. Logits must be finite. */
export function logSoftmaxForward(
  gpu: GpuRuntime,
  out: GpuTensor,
  lse: GpuTensor,
  logits: GpuTensor,
  rows: number,
  cols: number,
): void {
  const k = 'logSoftmaxForward';
  const [gx, gy] = rowArgs(k, logits, rows, cols);
  expectDType(k, out, 'f32');
  expectShape(k, out, [rows, cols]);
  expectDType(k, lse, 'f32');
  expectShape(k, lse, [rows]);
  expectDisjoint(k, out, [lse, logits]);
  expectDisjoint(k, lse, [logits]);
  gpu.encoder.dispatch(gpu.pipelines.get(LOG_SOFTMAX, { WG }), packUniforms([['u32', rows], ['u32', cols], ['u32', gx]]), [out, lse, logits], [gx, gy]);
}

/**
 * ids [rows] (u32) = argmax per row over its first `valid` columns (default: all), the first index
 * among equal maxima (torch.argmax).
 */
export function argmaxRows(gpu: GpuRuntime, ids: GpuTensor, logits: GpuTensor, rows: number, cols: number, valid: number = cols): void {
  const k = 'argmaxRows';
  const [gx, gy] = rowArgs(k, logits, rows, cols);
  expectIds(k, ids, rows, false);
  expectDisjoint(k, ids, [logits]);
  if (!Number.isInteger(valid) || valid < 1 || valid > cols) throw new Error(`${k}: valid must be an integer from 1 to cols (${cols}), got ${valid}`);
  gpu.encoder.dispatch(gpu.pipelines.get(ARGMAX, { WG }), packUniforms([['u32', rows], ['u32', cols], ['u32', gx], ['u32', valid]]), [ids, logits], [gx, gy]);
}

/**
 * out [rows] = log_softmax(logits)[r, ids[r]]: the log-probability of one given token per row (u32
 * or i32 ids), for scoring candidate continuations. An id outside [0, cols) yields NaN.
 */
export function gatherLogProbs(
  gpu: GpuRuntime,
  out: GpuTensor,
  logits: GpuTensor,
  ids: GpuTensor,
  rows: number,
  cols: number,
): void {
  const k = 'gatherLogProbs';
  const [gx, gy] = rowArgs(k, logits, rows, cols);
  expectIds(k, ids, rows, true);
  expectDType(k, out, 'f32');
  expectShape(k, out, [rows]);
  expectDisjoint(k, out, [logits, ids]);
  gpu.encoder.dispatch(gpu.pipelines.get(GATHER, { WG }), packUniforms([['u32', rows], ['u32', cols], ['u32', gx]]), [out, logits, ids], [gx, gy]);
}
