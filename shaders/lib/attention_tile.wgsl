// The tiled flash-attention kernels' shared parts (attention.fwd, attention.bwd_dq, attention.bwd_dkv):
// where a thread sits, the staging of key and value rows through workgroup memory, and the sum of
// the partial rows that the LANES threads of one owned row keep. Needs lib/attention_rows.wgsl, the
// key and value reads (lib/kv_read_*.wgsl), p.heads and p.head_dim, and from the kernel `tile`
// (array<vec4<f32>>) and the overrides LANES and BK (rows staged at once).

// A tiled kernel's workgroup (first / rows, b * H + h) owns `rows` rows of one (sequence, head);
// LANES consecutive threads share each row (thread lid: row lid / LANES, lane lid % LANES). Only
// workgroup-uniform values here, so that loops bounded by them may hold barriers.
struct TileBlock {
  b: u32,
  h: u32,
  first: u32,   // the block's first owned row
  width: u32,   // H * D, the distance between a token's rows
  threads: u32, // rows * LANES, the workgroup's size
}

fn tile_block(wid: vec3u, rows: u32) -> TileBlock {
  return TileBlock(wid.y / p.heads, wid.y % p.heads, wid.x * rows, p.heads * p.head_dim, rows * LANES);
}

// Thread lid's share of its block: its row of the block, its lane, and that row's index t in the
// sequence (a query's in attention.fwd and .bwd_dq, a key's in .bwd_dkv).
struct TileThread {
  row: u32,
  lane: u32,
  t: u32,
}

fn tile_thread(th: TileBlock, lid: u32) -> TileThread {
  let row = lid / LANES;
  return TileThread(row, lid % LANES, th.first + row);
}

// Stages n <= BK key rows and their value rows, the first at element `first` of k and v and each
// `width` elements after the one before, into tile rows 0.. (keys) and BK.. (values), zeros past n.
// Every thread of the workgroup calls it; the caller puts the barrier after.
fn stage_kv(first: u32, n: u32, width: u32, lid: u32, threads: u32) {
  for (var i = lid; i < BK * D4P; i += threads) {
    let j = i / D4P;
    let c = i % D4P;
    if (c < D4) {
      var kx = vec4<f32>(0.0);
      var vx = vec4<f32>(0.0);
      if (j < n) {
        kx = key4(first + j * width, c);
        vx = value4(first + j * width, c);
      }
      tile[j * STRIDE + c] = kx;
      tile[(BK + j) * STRIDE + c] = vx;
    }
  }
}

// Adds the LANES threads' partial rows `acc` into lane 0 of each owned row, through `tile` (free by
// then; it holds rows * LANES / 2 slots of STRIDE). Every thread calls it.
fn lanes_sum(acc: ptr<function, array<vec4<f32>, D4>>, row: u32, lane: u32) {
  for (var half = LANES / 2u; half > 0u; half /= 2u) {
    if (lane >= half && lane < 2u * half) {
      let slot = row * half + lane - half;
      for (var c = 0u; c < D4; c++) { tile[slot * STRIDE + c] = (*acc)[c]; }
    }
    workgroupBarrier();
    if (lane < half) {
      let slot = row * half + lane;
      for (var c = 0u; c < D4; c++) { (*acc)[c] += tile[slot * STRIDE + c]; }
    }
    workgroupBarrier();
  }
}
