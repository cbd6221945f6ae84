/**
 * Float64 reference of gelu_new and its derivative. Hugging Face's formula is
 * 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3); `geluHfFormula` is that verbatim. It loses
 * everything to cancellation in the negative tail even in float64 (1 + tanh(-33) == 0), so the
 * reference evaluates the same function through the identity 0.5 (1 + tanh u) = 1 / (1 + e^(-2u)).
 */

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const COEF = 0.044715;

export function geluHfFormula(x: number): number {
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + COEF * x ** 3)));
}

function gate(x: number): { s: number; sech2: number; du: number } {
  const u = SQRT_2_OVER_PI * (x + COEF * x ** 3);
  const e = Math.exp(-2 * Math.abs(u));
  const s = (u >= 0 ? 1 : e) / (1 + e); // 0.5 (1 + tanh u)
  const sech2 = (4 * e) / ((1 + e) * (1 + e)); // 1 - tanh^2 u
  return { s, sech2, du: SQRT_2_OVER_PI * (1 + 3 * COEF * x * x) };
}

export function geluRef(x: number): number {
  return x * gate(x).s;
}

/** d/dx: 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx. */
export function geluGradRef(x: number): number {
  const { s, sech2, du } = gate(x);
  return s + (sech2 === 0 ? 0 : 0.5 * x * sech2 * du); // sech2 == 0 where x du might overflow
}

export function geluForwardRef(inp: ArrayLike<number>): Float64Array {
  return Float64Array.from(inp, geluRef);
}

export function geluBackwardRef(dout: ArrayLike<number>, inp: ArrayLike<number>): Float64Array {
  return Float64Array.from(inp, (x, i) => dout[i] * geluGradRef(x));
}
