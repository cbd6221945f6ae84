// Workgroup sums of RM values per invocation in workgroup memory alone, for devices without
// subgroups: a tree of log2(WG) halving steps over all RM values at once. Needs WG (a power of two)
// and RM; every invocation must call workgroup_sums in uniform control flow. The same interface as
// lib/reduce_subgroup.wgsl.

var<workgroup> sums: array<f32, RM>;
var<workgroup> partial: array<f32, WG * RM>; // [i][invocation]: a warp's accesses are consecutive

fn workgroup_sums(lid: u32, acc: array<f32, RM>) {
  for (var i = 0u; i < RM; i++) { partial[i * WG + lid] = acc[i]; }
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half >>= 1u) {
    if (lid < half) {
      for (var i = 0u; i < RM; i++) { partial[i * WG + lid] += partial[i * WG + lid + half]; }
    }
    workgroupBarrier();
  }
  if (lid < RM) { sums[lid] = partial[lid * WG]; }
  workgroupBarrier();
}
