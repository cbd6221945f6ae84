// Workgroup-wide reductions for kernels that give each row one workgroup (prepended to their source;
// WGSL has no includes). Every invocation must call them in uniform control flow; every invocation
// gets the result. WG, the workgroup size, is a power of two.

override WG: u32 = 256u;

var<workgroup> reduce_f32: array<f32, WG>;
var<workgroup> reduce_u32: array<u32, WG>;

fn wg_sum(lid: u32, v: f32) -> f32 {
  reduce_f32[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { reduce_f32[lid] += reduce_f32[lid + s]; }
    workgroupBarrier();
  }
  let total = reduce_f32[0];
  workgroupBarrier(); // the array is reused by the next call
  return total;
}

fn wg_max(lid: u32, v: f32) -> f32 {
  reduce_f32[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { reduce_f32[lid] = max(reduce_f32[lid], reduce_f32[lid + s]); }
    workgroupBarrier();
  }
  let total = reduce_f32[0];
  workgroupBarrier();
  return total;
}

fn wg_sum_u32(lid: u32, v: u32) -> u32 {
  reduce_u32[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { reduce_u32[lid] += reduce_u32[lid + s]; }
    workgroupBarrier();
  }
  let total = reduce_u32[0];
  workgroupBarrier();
  return total;
}

fn wg_max_u32(lid: u32, v: u32) -> u32 {
  reduce_u32[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { reduce_u32[lid] = max(reduce_u32[lid], reduce_u32[lid + s]); }
    workgroupBarrier();
  }
  let total = reduce_u32[0];
  workgroupBarrier();
  return total;
}

// The smallest finite f32: a max-reduction's identity that exp() maps to 0 without an infinity.
const LOWEST_F32: f32 = -3.4028234663852886e38;

// An index past every column: the argmax candidate of an invocation that has seen no element.
const NO_INDEX: u32 = 0xffffffffu;

struct ArgMax {
  value: f32,
  index: u32,
}

// The workgroup's best of every invocation's candidate (v, i): the largest value, the smallest index
// among equal values (torch.argmax's first maximum when each invocation keeps its first strict
// maximum), and a candidate with index NO_INDEX loses to every other, whatever its value.
fn wg_argmax(lid: u32, v: f32, i: u32) -> ArgMax {
  reduce_f32[lid] = v;
  reduce_u32[lid] = i;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      let ov = reduce_f32[lid + s];
      let oi = reduce_u32[lid + s];
      let mine = reduce_u32[lid];
      if (oi != NO_INDEX && (mine == NO_INDEX || ov > reduce_f32[lid] || (ov == reduce_f32[lid] && oi < mine))) {
        reduce_f32[lid] = ov;
        reduce_u32[lid] = oi;
      }
    }
    workgroupBarrier();
  }
  let best = ArgMax(reduce_f32[0], reduce_u32[0]);
  workgroupBarrier();
  return best;
}
