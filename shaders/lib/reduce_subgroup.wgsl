// Workgroup sums of RM values per invocation with subgroup operations (the `subgroups` feature, on
// every major GPU in Chrome): each subgroup adds its values with subgroupAdd, its first invocation
// writes them to workgroup memory, and RM invocations add the subgroups' totals in order, so the
// result does not depend on timing. Needs WG (a power of two) and RM; every invocation must call
// workgroup_sums in uniform control flow. Subgroups are taken to be consecutive ranges of
// local_invocation_index, which the device was probed for (gpu/device.ts); their size is counted
// here, so a workgroup smaller than the hardware's subgroup is one subgroup.

var<workgroup> sums: array<f32, RM>;
var<workgroup> subgroup_totals: array<f32, WG / 4u * RM>; // [subgroup][i]; subgroups have at least 4 invocations

fn workgroup_sums(lid: u32, acc: array<f32, RM>) {
  let size = subgroupAdd(1u);
  let first = lid % size == 0u;
  let index = lid / size;
  for (var i = 0u; i < RM; i++) {
    let total = subgroupAdd(acc[i]);
    if (first) { subgroup_totals[index * RM + i] = total; }
  }
  workgroupBarrier();
  if (lid < RM) {
    var total = 0.0;
    for (var j = 0u; j < WG / size; j++) { total += subgroup_totals[j * RM + lid]; }
    sums[lid] = total;
  }
  workgroupBarrier();
}
