// gelu_new (Hugging Face's tanh approximation): gelu(x) = 0.5 * x * (1 + tanh(u)),
// u = sqrt(2/pi) * (x + 0.044715 * x^3). Prepended to the kernels that apply it (gelu.fwd, gelu.bwd,
// projection.in's fc1 epilogue).
// Written as x * sigmoid(2u), the same function, evaluated through e = exp(-2|u|) <= 1 so that
// nothing overflows: tanh's usual exp(2u) form is inf for u > 44, and WGSL does not promise IEEE
// infinities. u is computed from x clamped to +-GELU_CLAMP, past which sigmoid(2u) is 0 or 1 in f32.

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_COEF: f32 = 0.044715;
const GELU_CLAMP: f32 = 15.0;

// sigmoid(2u) = 0.5 * (1 + tanh(u)) for u = sqrt(2/pi) * (x + 0.044715 x^3).
fn gelu_gate(x: f32) -> f32 {
  let xc = clamp(x, -GELU_CLAMP, GELU_CLAMP);
  let u = SQRT_2_OVER_PI * (xc + GELU_COEF * xc * xc * xc);
  let e = exp(-2.0 * abs(u));
  return select(e, 1.0, u >= 0.0) / (1.0 + e);
}

fn gelu_new(x: f32) -> f32 {
  return x * gelu_gate(x);
}
