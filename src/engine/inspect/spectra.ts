import { LORA_TARGETS, type LoraTarget } from '../../shared/lora';
import type { AdapterFactors, LoraFactors } from './factors';
import { effectiveRank, householderR, multiplyABt, svd } from './linalg';

/**
 * Where an adapter acts: for every adapted module, the update ΔW = scaling · B · A ([out, in], rank at
 * most r) is described by its Frobenius norm, its singular values and its effective rank; two adapters
 * are compared module by module by the cosine similarity of their updates. Everything is computed
 * exactly (in float64) from the factors, never from ΔW itself, which for Phi-2's fc1 would be 26M values:
 *
 *   B = Q_B R_B and Aᵀ = Q_A R_A (Householder; the Q's are never formed), so
 *   ΔW = scaling · Q_B (R_B R_Aᵀ) Q_Aᵀ, whose singular values are those of the r x r core
 *   scaling · R_B R_Aᵀ (Q_B and Q_A have orthonormal columns); ‖ΔW‖_F is the core's norm.
 *   ⟨B1A1, B2A2⟩_F = trace(A1ᵀ B1ᵀ B2 A2) = trace((B1ᵀ B2)(A2 A1ᵀ)): two small products.
 *
 * Cost per module: 2·(in + out)·r² flops for the R's, 2·(in + out)·r1·r2 for a cosine.
 */

export interface UpdateSpectrum {
  layer: number;
  target: LoraTarget;
  /** ‖scaling · B · A‖_F */
  norm: number;
  /** Singular values of scaling · B · A, descending (min(r, in, out) of them). */
  singularValues: number[];
  /** exp(entropy of the normalised singular values) (Roy and Vetterli, 2007). */
  effectiveRank: number;
}

/** R of the QR of a row-major [rows, cols] matrix (copied to column-major float64 first). */
function rOfRows(x: Float32Array, rows: number, cols: number): Float64Array {
  const colMajor = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) colMajor[j * rows + i] = x[i * cols + j];
  return householderR(colMajor, rows, cols);
}

/** The r x r (or smaller) core whose singular values are those of scaling · B · A. */
export function updateCore(f: LoraFactors): { core: Float64Array; rows: number; cols: number } {
  const { r, inFeatures: K, outFeatures: N } = f;
  checkFactors(f);
  const rB = rOfRows(f.B, N, r); // [min(N, r), r]
  // Aᵀ [K, r] column-major is A [r, K] row-major as it is.
  const rA = householderR(Float64Array.from(f.A), K, r); // [min(K, r), r]
  const rows = Math.min(N, r);
  const cols = Math.min(K, r);
  const core = multiplyABt(rB, rA, rows, cols, r);
  for (let i = 0; i < core.length; i++) core[i] *= f.scaling;
  return { core, rows, cols };
}

export function updateSpectrum(f: LoraFactors): UpdateSpectrum {
  const { core, rows, cols } = updateCore(f);
  const s = svd(core, rows, cols).s;
  let norm2 = 0;
  for (let i = 0; i < core.length; i++) norm2 += core[i] * core[i];
  return { layer: f.layer, target: f.target, norm: Math.sqrt(norm2), singularValues: Array.from(s), effectiveRank: effectiveRank(s) };
}

/** ⟨scaling1 · B1 A1, scaling2 · B2 A2⟩_F from the factors: trace((B1ᵀ B2)(A2 A1ᵀ)). */
export function updateInnerProduct(f1: LoraFactors, f2: LoraFactors): number {
  checkFactors(f1);
  checkFactors(f2);
  if (f1.inFeatures !== f2.inFeatures || f1.outFeatures !== f2.outFeatures) {
    throw new Error(`updateInnerProduct: updates of [${f1.outFeatures}, ${f1.inFeatures}] and [${f2.outFeatures}, ${f2.inFeatures}] cannot be compared`);
  }
  const { r: r1 } = f1;
  const { r: r2, inFeatures: K, outFeatures: N } = f2;
  // bb [r1, r2] = B1ᵀ B2, accumulated row by row of B (both are [N, r] row-major).
  const bb = new Float64Array(r1 * r2);
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < r1; i++) {
      const x = f1.B[n * r1 + i];
      if (x === 0) continue;
      for (let j = 0; j < r2; j++) bb[i * r2 + j] += x * f2.B[n * r2 + j];
    }
  }
  // trace(bb · aa) with aa [r2, r1] = A2 A1ᵀ: Σ_ij bb[i, j] · (A2 row j · A1 row i).
  let trace = 0;
  for (let i = 0; i < r1; i++) {
    for (let j = 0; j < r2; j++) {
      if (bb[i * r2 + j] === 0) continue;
      let dot = 0;
      for (let k = 0; k < K; k++) dot += f2.A[j * K + k] * f1.A[i * K + k];
      trace += bb[i * r2 + j] * dot;
    }
  }
  return f1.scaling * f2.scaling * trace;
}

/** Cosine similarity of two updates; null when either is zero (no direction to compare). */
export function updateCosine(f1: LoraFactors, norm1: number, f2: LoraFactors, norm2: number): number | null {
  if (!(norm1 > 0) || !(norm2 > 0)) return null;
  // Rounding can carry |cos| a hair past 1 for identical updates.
  return Math.max(-1, Math.min(1, updateInnerProduct(f1, f2) / (norm1 * norm2)));
}

function checkFactors(f: LoraFactors): void {
  const { r, inFeatures: K, outFeatures: N } = f;
  if (f.A.length !== r * K) throw new Error(`layer ${f.layer} ${f.target}: lora_A has ${f.A.length} values, expected ${r} x ${K}`);
  if (f.B.length !== N * r) throw new Error(`layer ${f.layer} ${f.target}: lora_B has ${f.B.length} values, expected ${N} x ${r}`);
}

export interface SpectraProgress {
  done: number;
  total: number;
  /** The cell just finished. */
  cell: UpdateCell;
}

/** One cell of the layers x modules map: each adapter's update there (null where it does not adapt that module). */
export interface UpdateCell {
  layer: number;
  target: LoraTarget;
  first: UpdateSpectrum | null;
  second: UpdateSpectrum | null;
  /** Cosine similarity of the two updates (null: one adapter only, or one of them is zero). */
  cosine: number | null;
}

export interface SpectraOptions {
  signal?: AbortSignal;
  onProgress?: (p: SpectraProgress) => void;
  /** Lets other work (a cancel message) in between modules; a macrotask by default. */
  pause?: () => Promise<void>;
}

const macrotask = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/**
 * Every module either adapter adapts, by layer then in PEFT's module order: spectra and, where both
 * adapt it, the cosine of their updates; one module at a time, with progress after each and a chance
 * to cancel in between (throws the signal's reason, an AbortError).
 */
export async function adapterSpectra(first: AdapterFactors, second: AdapterFactors | null, opts: SpectraOptions = {}): Promise<UpdateCell[]> {
  const pause = opts.pause ?? macrotask;
  const order = new Map<string, { layer: number; target: LoraTarget }>();
  for (const m of [...first.modules, ...(second?.modules ?? [])]) order.set(`${m.layer}.${m.target}`, { layer: m.layer, target: m.target });
  const modules = [...order.values()].sort((x, y) => x.layer - y.layer || LORA_TARGETS.indexOf(x.target) - LORA_TARGETS.indexOf(y.target));
  const cells: UpdateCell[] = [];
  for (const module of modules) {
    await pause();
    opts.signal?.throwIfAborted();
    const f = first.has(module.layer, module.target) ? first.factors(module) : null;
    const g = second?.has(module.layer, module.target) ? second.factors(module) : null;
    const a = f && updateSpectrum(f);
    const b = g && updateSpectrum(g);
    const comparable = f && g && a && b && f.inFeatures === g.inFeatures && f.outFeatures === g.outFeatures;
    const cell: UpdateCell = { ...module, first: a, second: b, cosine: comparable ? updateCosine(f, a.norm, g, b.norm) : null };
    cells.push(cell);
    opts.onProgress?.({ done: cells.length, total: modules.length, cell });
  }
  return cells;
}
