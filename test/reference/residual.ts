/** Float64 references of the element-wise residual kernels. */

export function addRef(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  return Float64Array.from(a, (v, i) => v + b[i]);
}

export function accumulateRef(out: ArrayLike<number>, a: ArrayLike<number>, alpha: number): Float64Array {
  return Float64Array.from(out, (v, i) => v + alpha * a[i]);
}

export function scaleRef(a: ArrayLike<number>, alpha: number): Float64Array {
  return Float64Array.from(a, (v) => alpha * v);
}
