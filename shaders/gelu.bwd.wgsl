// gelu_new backward: dinp = dout * gelu'(x) from the saved pre-activation x.
// With s = sigmoid(2u) = 0.5 * (1 + tanh(u)) (see lib/gelu.wgsl, prepended) and 1 - tanh(u)^2 = 4 s (1 - s):
//   gelu'(x) = s + x * 2 s (1 - s) * du/dx,   du/dx = sqrt(2/pi) * (1 + 3 * 0.044715 * x^2).
// x is clamped to +-GELU_CLAMP, where gelu'(x) is 1 or 0 in f32, so x^2 cannot overflow.
// With accumulate = 1 the gradient is added to dinp.

struct Params {
  n: u32,
  grid_x: u32,
  accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> inp: array<f32>;

override WG: u32 = 256u;

fn gelu_grad(x: f32) -> f32 {
  let xc = clamp(x, -GELU_CLAMP, GELU_CLAMP);
  let x2 = xc * xc;
  let u = SQRT_2_OVER_PI * xc * (1.0 + GELU_COEF * x2);
  let e = exp(-2.0 * abs(u));
  let s = select(e, 1.0, u >= 0.0) / (1.0 + e);
  // s (1 - s) = e / (1 + e)^2 on both sides of 0, without cancellation in 1 - s.
  let s_one_minus_s = e / ((1.0 + e) * (1.0 + e));
  let du_dx = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_COEF * x2);
  return s + xc * 2.0 * s_one_minus_s * du_dx;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.grid_x) * WG + lid;
  if (i >= p.n) { return; }
  let d = dout[i] * gelu_grad(inp[i]);
  if (p.accumulate != 0u) { dinp[i] += d; } else { dinp[i] = d; }
}
