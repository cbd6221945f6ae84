// Argmax of each row, one workgroup per row: the first index of the largest value on ties, like
// torch.argmax. Each invocation scans a strided subset in increasing index order keeping the first
// strict maximum; the tree merge keeps the larger value, and on equal values the smaller index.
// Logits must not be NaN. Only the first `valid` columns are candidates (a vocabulary's ids the
// tokenizer can decode; the lm_head may have more rows).

struct Params {
  rows: u32,
  cols: u32,
  grid_x: u32,
  valid: u32, // 1 <= valid <= cols
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> ids: array<u32>;
@group(0) @binding(2) var<storage, read> logits: array<f32>;

override WG: u32 = 256u;

var<workgroup> best_value: array<f32, WG>;
var<workgroup> best_index: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * p.grid_x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var v = -3.4028234663852886e38;
  var i = 0xffffffffu; // no element yet: loses every tie
  for (var c = lid; c < p.valid; c += WG) {
    let x = logits[base + c];
    if (x > v || i == 0xffffffffu) { v = x; i = c; }
  }
  best_value[lid] = v;
  best_index[lid] = i;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      let ov = best_value[lid + s];
      let oi = best_index[lid + s];
      if (ov > best_value[lid] || (ov == best_value[lid] && oi < best_index[lid])) {
        best_value[lid] = ov;
        best_index[lid] = oi;
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u) { ids[row] = best_index[0]; }
}
