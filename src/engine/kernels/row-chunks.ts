import type { GpuTensor } from '../gpu/tensor';
import { expectDType } from './check';

/**
 * F16 tables read by rows (the token embedding and the lm_head, both [51200, 2560] in Phi-2: 250 MiB,
 * more than many adapters' maxStorageBufferBindingSize). The loader may store such a table as several
 * buffers of whole rows; kernels then dispatch once per chunk. A single tensor is one chunk.
 */
export interface F16RowChunk {
  /** f16 [rows, cols]: rows firstRow .. firstRow + rows - 1 of the whole table. */
  readonly table: GpuTensor;
  readonly firstRow: number;
}

export type F16Rows = GpuTensor | readonly F16RowChunk[];

/**
 * The chunks of a table of `totalRows` x `cols`, checked: f16, `cols` wide, in order, and covering
 * every row exactly once.
 */
export function f16RowChunks(kernel: string, rows: F16Rows, totalRows: number, cols: number): F16RowChunk[] {
  const chunks: F16RowChunk[] = 'buffer' in rows ? [{ table: rows, firstRow: 0 }] : [...rows];
  if (!chunks.length) throw new Error(`${kernel}: the table has no chunks`);
  let next = 0;
  for (const { table, firstRow } of chunks) {
    expectDType(kernel, table, 'f16');
    if (table.shape.length !== 2 || table.shape[1] !== cols || table.shape[0] < 1) {
      throw new Error(`${kernel}: ${table.name} has shape [${table.shape}], expected [rows >= 1, ${cols}]`);
    }
    if (firstRow !== next) {
      throw new Error(`${kernel}: ${table.name} starts at row ${firstRow}, expected ${next} (chunks must be in order, without gaps or overlaps)`);
    }
    next += table.shape[0];
  }
  if (next !== totalRows) throw new Error(`${kernel}: the chunks hold ${next} rows, expected ${totalRows}`);
  return chunks;
}
