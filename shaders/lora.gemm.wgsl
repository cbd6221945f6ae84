// The f32 matrix products of LoRA, forward and backward, in groups: up to MAX_PROBLEMS products
// C_q (= or +=) alpha * op(A_q) · op(B_q) in one dispatch, with the operands addressed through strides
// so that one pipeline covers every transpose LoRA needs (x·Aᵀ, xa·Bᵀ, dY·B, dYᵀ·xa, dxaᵀ·x, dxa·A).
// rng.wgsl is prepended by lora.ts.
//
//   A_q element (i, l) at a_slot[a_off + i * a_row + l * a_red]     (i < M_q, l < L)
//   B_q element (l, j) at b_slot[b_off + l * b_red + j * b_col]     (j < N_q)
//   C_q element (i, j) at c[c_off + i * N_q + j]
//
// The strides are shared by a group; a_red may instead be each problem's M (dYᵀ of layers of
// different widths) and b_red its N (x of different widths). Each problem reads its operands from one
// of three A and three B bindings, so that one dispatch can take, say, every adapted layer's weight
// gradients of a block from the activations where they lie.
//
// Two ways to group:
//  - disjoint (the default): the workgroups are shared out among the problems, each writing its own C
//    (xa of q, k, v and fc1 from one input; every dA or dB of a block);
//  - summed: every problem has the same M and N and one C; a workgroup computes each problem's product
//    for its tile in turn and adds them (the input gradients of q, k, v and fc1, which all land in
//    d LN-out, each under its own dropout mask).
//
// Long reductions can be split into `chunks` slices of `chunk_len`, one workgroup per (tile, slice):
// a workgroup then writes its partial sum to partials[chunk][problem's packed offset + i * N + j]
// (the c binding is the partials scratch) and lora.reduce adds the slices in a fixed order
// (deterministic, no atomics). Splitting needs the problems' C to follow one another in memory.
//
// Dropout (LoRA's, on its input x) is replayed from (seed, salt of the problem) wherever x is
// involved: on the A operand (x·Aᵀ in the forward pass), on the B operand (dxaᵀ·x for dA), or on each
// problem's product before it is added (the input gradient, which flows only through kept elements).
// The mask index is x's flat index m * K + k: the operand's offset from a_off or b_off, or C's from c_off.
//
// Epilogues (never with a split): EP_DROPOUT_RESIDUAL adds the product to the branch output the base
// matmul left in C (unchanged) and accumulates dropout(C + product) into the residual stream (aux),
// the mask at index i * N + j from (seed, ep_salt) as dropout.wgsl draws it.
//
// Tiles: 64 x 64 of C per 256 threads, 4 x 4 per thread in vec4 registers, BK = 16: each k step a
// thread reads two vec4 from workgroup memory for 16 FMAs. Each operand tile is staged with whichever
// thread mapping reads its memory contiguously.

struct Params {
  count: u32,       // problems, 1 ..= MAX_PROBLEMS
  flags: u32,       // FLAG_* bits; drop target in bits 4-5; epilogue in bits 8-11
  L: u32,
  chunk_len: u32,   // a multiple of BK
  chunks: u32,
  tiles: u32,       // workgroups per slice: the problems' tiles (summed: one problem's)
  grid_x: u32,
  a_row: u32,
  a_red: u32,       // PER_PROBLEM: the problem's M
  b_red: u32,       // PER_PROBLEM: the problem's N
  b_col: u32,
  alpha: f32,
  seed: u32,        // of LoRA's dropout, or of the epilogue's
  threshold: u32,   // floor(p * 2^32): an element is kept when its hash is at least this
  keep_scale: f32,  // 1 / (1 - p)
  aux_off: u32,
  ep_salt: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
  // Problem q's field f at scalar q * PROBLEM_FIELDS + f: M, N, slots (a | b << 4), a_off, b_off, c_off, salt.
  table: array<vec4<u32>, 11>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read_write> aux: array<f32>;
@group(0) @binding(3) var<storage, read> a0: array<f32>;
@group(0) @binding(4) var<storage, read> a1: array<f32>;
@group(0) @binding(5) var<storage, read> a2: array<f32>;
@group(0) @binding(6) var<storage, read> b0: array<f32>;
@group(0) @binding(7) var<storage, read> b1: array<f32>;
@group(0) @binding(8) var<storage, read> b2: array<f32>;

const TILE = 64u;
const BK = 16u;
const V = TILE / 4u;
const PROBLEM_FIELDS = 7u;
const PER_PROBLEM = 0xffffffffu;
const FLAG_SUM = 1u;
const FLAG_ACCUMULATE = 2u;
const FLAG_SPLIT = 4u;
const DROP_A = 1u;
const DROP_B = 2u;
const DROP_C = 3u;
const EP_DROPOUT_RESIDUAL = 1u;

var<workgroup> a_tile: array<vec4<f32>, BK * V>; // [l][i / 4]
var<workgroup> b_tile: array<vec4<f32>, BK * V>; // [l][j / 4]

// The problem being computed.
var<private> cur_M: u32;
var<private> cur_N: u32;
var<private> cur_a_slot: u32;
var<private> cur_b_slot: u32;
var<private> cur_a_off: u32;
var<private> cur_b_off: u32;
var<private> cur_a_red: u32;
var<private> cur_b_red: u32;
var<private> cur_salt: u32;

fn field(q: u32, f: u32) -> u32 {
  let s = q * PROBLEM_FIELDS + f;
  return p.table[s / 4u][s % 4u];
}

fn tiles_of(q: u32) -> u32 {
  return ((field(q, 0u) + TILE - 1u) / TILE) * ((field(q, 1u) + TILE - 1u) / TILE);
}

fn select_problem(q: u32) {
  cur_M = field(q, 0u);
  cur_N = field(q, 1u);
  let slots = field(q, 2u);
  cur_a_slot = slots & 15u;
  cur_b_slot = slots >> 4u;
  cur_a_off = field(q, 3u);
  cur_b_off = field(q, 4u);
  cur_a_red = select(p.a_red, cur_M, p.a_red == PER_PROBLEM);
  cur_b_red = select(p.b_red, cur_N, p.b_red == PER_PROBLEM);
  cur_salt = field(q, 6u);
}

fn drop_target() -> u32 {
  return (p.flags >> 4u) & 3u;
}

fn dropped(salt: u32, index: u32, v: f32) -> f32 {
  return select(0.0, v * p.keep_scale, rng_keep(p.seed, salt, index, p.threshold));
}

fn read_a(index: u32) -> f32 {
  switch cur_a_slot {
    case 1u: { return a1[index]; }
    case 2u: { return a2[index]; }
    default: { return a0[index]; }
  }
}

fn read_b(index: u32) -> f32 {
  switch cur_b_slot {
    case 1u: { return b1[index]; }
    case 2u: { return b2[index]; }
    default: { return b0[index]; }
  }
}

fn load_a(i: u32, l: u32, l_end: u32) -> f32 {
  if (i >= cur_M || l >= l_end) { return 0.0; }
  let index = i * p.a_row + l * cur_a_red;
  let v = read_a(cur_a_off + index);
  if (drop_target() == DROP_A) { return dropped(cur_salt, index, v); }
  return v;
}

fn load_b(l: u32, j: u32, l_end: u32) -> f32 {
  if (j >= cur_N || l >= l_end) { return 0.0; }
  let index = l * cur_b_red + j * p.b_col;
  let v = read_b(cur_b_off + index);
  if (drop_target() == DROP_B) { return dropped(cur_salt, index, v); }
  return v;
}

// One row of four results at (i, j..j+3): alpha, the mask of C's product, then into total.
fn gather(i: u32, j: u32, v: vec4<f32>, total: vec4<f32>) -> vec4<f32> {
  var r = p.alpha * v;
  if (drop_target() == DROP_C) {
    for (var t = 0u; t < 4u; t++) { r[t] = dropped(cur_salt, i * cur_N + j + t, r[t]); }
  }
  return total + r;
}

fn store(i: u32, j: u32, c_off: u32, chunk_off: u32, v: vec4<f32>) {
  if (i >= cur_M) { return; }
  for (var t = 0u; t < 4u; t++) {
    let jt = j + t;
    if (jt >= cur_N) { return; }
    let o = i * cur_N + jt;
    if ((p.flags & FLAG_SPLIT) != 0u) {
      c[chunk_off + c_off + o] = v[t];
    } else if ((p.flags >> 8u) == EP_DROPOUT_RESIDUAL) {
      let branch = c[c_off + o] + v[t];
      aux[p.aux_off + o] += select(0.0, branch * p.keep_scale, rng_keep(p.seed, p.ep_salt, o, p.threshold));
    } else if ((p.flags & FLAG_ACCUMULATE) != 0u) {
      c[c_off + o] += v[t];
    } else {
      c[c_off + o] = v[t];
    }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let group = wid.x + wid.y * p.grid_x;
  if (group >= p.tiles * p.chunks) { return; } // uniform per workgroup
  let chunk = group / p.tiles;
  let summed = (p.flags & FLAG_SUM) != 0u;
  // The problem of this workgroup (disjoint), its tile, and where its C lies among the slices' partials.
  var tile = group % p.tiles;
  var first = 0u;
  var packed = 0u;  // elements of C before the problem's, packed (split)
  var slice = 0u;   // elements of C of all problems: one slice of partials
  var found = summed;
  for (var q = 0u; q < p.count; q++) {
    let n = tiles_of(q);
    if (!found && tile < n) {
      first = q;
      packed = slice;
      found = true;
    } else if (!found) {
      tile -= n;
    }
    slice += field(q, 0u) * field(q, 1u);
  }
  let last = select(first + 1u, p.count, summed);
  select_problem(first);
  let tiles_m = (cur_M + TILE - 1u) / TILE;
  let i0 = (tile % tiles_m) * TILE;
  let j0 = (tile / tiles_m) * TILE;
  let l_begin = chunk * p.chunk_len;
  let l_end = min(p.L, l_begin + p.chunk_len);
  let tx = lid % 16u;
  let ty = lid / 16u;
  // Two staging maps: "across" puts four consecutive l of one of 64 rows in a thread (for memory
  // contiguous along l); "along" puts four consecutive rows at one of 16 l (contiguous along i or j).
  let across_row = lid / 4u;
  let across_l = 4u * (lid % 4u);
  let along_l = lid / V;
  let along_row = 4u * (lid % V);
  let a_across = p.a_red == 1u;
  let b_across = p.b_col != 1u;
  let i = i0 + 4u * ty;
  let j = j0 + 4u * tx;

  var total0 = vec4<f32>(0.0);
  var total1 = vec4<f32>(0.0);
  var total2 = vec4<f32>(0.0);
  var total3 = vec4<f32>(0.0);
  for (var q = first; q < last; q++) {
    select_problem(q);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var l0 = l_begin; l0 < l_end; l0 += BK) {
      if (a_across) {
        let ia = i0 + across_row;
        let s = across_l * V + across_row / 4u;
        let lane = across_row % 4u;
        for (var t = 0u; t < 4u; t++) { a_tile[s + t * V][lane] = load_a(ia, l0 + across_l + t, l_end); }
      } else {
        let ia = i0 + along_row;
        let l = l0 + along_l;
        a_tile[along_l * V + along_row / 4u] =
          vec4<f32>(load_a(ia, l, l_end), load_a(ia + 1u, l, l_end), load_a(ia + 2u, l, l_end), load_a(ia + 3u, l, l_end));
      }
      if (b_across) {
        let jb = j0 + across_row;
        let s = across_l * V + across_row / 4u;
        let lane = across_row % 4u;
        for (var t = 0u; t < 4u; t++) { b_tile[s + t * V][lane] = load_b(l0 + across_l + t, jb, l_end); }
      } else {
        let jb = j0 + along_row;
        let l = l0 + along_l;
        b_tile[along_l * V + along_row / 4u] =
          vec4<f32>(load_b(l, jb, l_end), load_b(l, jb + 1u, l_end), load_b(l, jb + 2u, l_end), load_b(l, jb + 3u, l_end));
      }
      workgroupBarrier();
      for (var kk = 0u; kk < BK; kk++) {
        let x = a_tile[kk * V + ty];
        let y = b_tile[kk * V + tx];
        acc0 = fma(vec4<f32>(x.x), y, acc0);
        acc1 = fma(vec4<f32>(x.y), y, acc1);
        acc2 = fma(vec4<f32>(x.z), y, acc2);
        acc3 = fma(vec4<f32>(x.w), y, acc3);
      }
      workgroupBarrier();
    }
    total0 = gather(i, j, acc0, total0);
    total1 = gather(i + 1u, j, acc1, total1);
    total2 = gather(i + 2u, j, acc2, total2);
    total3 = gather(i + 3u, j, acc3, total3);
  }

  // Summed problems share the first one's M, N and C.
  select_problem(first);
  var c_off = field(first, 5u);
  if ((p.flags & FLAG_SPLIT) != 0u) { c_off = packed; }
  let chunk_off = chunk * slice;
  store(i, j, c_off, chunk_off, total0);
  store(i + 1u, j, c_off, chunk_off, total1);
  store(i + 2u, j, c_off, chunk_off, total2);
  store(i + 3u, j, c_off, chunk_off, total3);
}
