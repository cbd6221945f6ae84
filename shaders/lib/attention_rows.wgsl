// What every attention kernel shares about head rows (attention.fwd, attention.decode,
// attention.bwd_dq, attention.bwd_dkv): the stride of a head row in workgroup memory, and q's row
// read in the keys' order. Needs D4 (prepended), p.head_dim, a binding `q` and lib/kv_order.wgsl.
//
// Bank conflicts (32 banks of 4 bytes; a 16-byte access is served 8 threads at a time, 128 bytes,
// so 8 vec4s conflict-free exactly when they fall in 8 distinct groups of 4 banks, vec4 index mod 8):
// - head rows sit STRIDE = D4 | 1 vec4s apart, an odd number, so rows r..r+7 start in 8 distinct
//   groups (odd numbers are invertible mod 8); at head_dim 80, STRIDE is 21 and row r's group 5r mod 8;
// - staging gives each row D4P threads (D4 rounded up to 8), so the 8 threads of a phase write 8
//   consecutive vec4s of one row: 8 distinct groups (with D4 threads a row, a phase that crosses a
//   row boundary skips the padding vec4 and spans 9, a 2-way conflict);
// - the inner loops' phase is 4 lanes x 2 owned rows: the lanes read 4 different tile rows (distinct
//   groups), the two rows' threads of a lane the same address (a broadcast), and each thread's own
//   row lies in a distinct group;
// - the lane merges store and load slot s at s * STRIDE: 8 consecutive slots, 8 groups.

// Head-row stride in workgroup memory, in vec4s (odd: see above).
const STRIDE: u32 = D4 | 1u;
// Threads a row when staging a tile: D4 rounded up to a whole phase of 8.
const D4P: u32 = (D4 + 7u) / 8u * 8u;

// Elements 4c..4c+3 of q's head row at `base`, in the keys' order (`pairs` rotary pairs side by side,
// lib/kv_order.wgsl; 0 for natural order); zero past the head's end.
fn query4(base: u32, c: u32, pairs: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    let s = 4u * c + e;
    if (s < p.head_dim) { r[e] = q[base + key_dim(s, pairs)]; }
  }
  return r;
}
