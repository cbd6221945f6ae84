// Global gradient norm, pass 2 of 2, one workgroup: reduces every slot of partials into the 4-float
// stats block that the optimizer reads on the GPU (no readback):
//   stats[0] = norm = grad_scale * sqrt(sum of squares), the pre-clip norm torch's clip_grad_norm_
//              returns, of the gradients as scaled by grad_scale;
//   stats[1] = the factor AdamW multiplies the raw gradients by: grad_scale * min(1, max_norm / (norm + 1e-6))
//              (no clipping when clip = 0); 0 when a gradient is not finite;
//   stats[2] = 1 when any gradient is NaN or infinite, else 0;   stats[3] = 0 (reserved).

struct Params {
  slots: u32,
  clip: u32,
  max_norm: f32,
  grad_scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read> partials: array<vec2<f32>>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  var bad = 0.0;
  for (var i = lid; i < p.slots; i += WG) {
    let part = partials[i];
    s += part.x;
    bad = max(bad, part.y);
  }
  let total = wg_sum(lid, s);
  let any_bad = wg_max(lid, bad);
  if (lid == 0u) {
    let norm = abs(p.grad_scale) * sqrt(total);
    var factor = p.grad_scale;
    if (p.clip != 0u) { factor *= min(1.0, p.max_norm / (norm + 1e-6)); }
    stats[0] = norm;
    stats[1] = select(factor, 0.0, any_bad != 0.0);
    stats[2] = any_bad;
    stats[3] = 0.0;
  }
}
