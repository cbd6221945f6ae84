// One AdamW step on a flat f32 parameter buffer, torch.optim.AdamW's arithmetic (amsgrad off):
//   g = grad * stats[1] * grad_scale           (clipping and accumulation factors, read on the GPU)
//   param *= 1 - lr * weight_decay             (decoupled weight decay)
//   m = lerp(m, g, 1 - beta1) = m + (1 - beta1) (g - m)
//   v = v * beta2 + (1 - beta2) g^2
//   param -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// Scalars that depend only on the step are computed on the CPU in float64, as torch does.
// When skip_non_finite is set and stats[2] says a gradient was NaN or infinite, nothing changes.
// With zero_grad the gradient is cleared for the next accumulation either way.

struct Params {
  n: u32,
  grid_x: u32,
  beta2: f32,
  one_minus_beta1: f32,
  one_minus_beta2: f32,
  eps: f32,
  decay: f32,      // 1 - lr * weight_decay
  step_size: f32,  // lr / (1 - beta1^t)
  bc2_sqrt: f32,   // sqrt(1 - beta2^t)
  grad_scale: f32,
  skip_non_finite: u32,
  zero_grad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> exp_avg: array<f32>;
@group(0) @binding(3) var<storage, read_write> exp_avg_sq: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.grid_x) * WG + lid;
  if (i >= p.n) { return; }
  let raw = grad[i];
  if (p.zero_grad != 0u) { grad[i] = 0.0; }
  if (p.skip_non_finite != 0u && stats[2] != 0.0) { return; }
  let g = raw * (stats[1] * p.grad_scale);
  let m = exp_avg[i] + p.one_minus_beta1 * (g - exp_avg[i]);
  let v = exp_avg_sq[i] * p.beta2 + p.one_minus_beta2 * g * g;
  exp_avg[i] = m;
  exp_avg_sq[i] = v;
  let denom = sqrt(v) / p.bc2_sqrt + p.eps;
  param[i] = param[i] * p.decay - p.step_size * (m / denom);
}
