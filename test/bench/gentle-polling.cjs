// Preload for long benchmark runs on a machine without a GPU (node -r ./test/bench/gentle-polling.cjs ...):
// Dawn's Node binding polls for finished GPU work with setImmediate while any of its promises is pending,
// which keeps one core busy for the whole run; on SwiftShader that core is taken from the GPU work
// itself. A 1 ms timer instead frees it. Only for runs whose figures are not latencies (train.int8-accuracy).
globalThis.setImmediate = (fn, ...args) => setTimeout(fn, 1, ...args);
globalThis.clearImmediate = (timer) => clearTimeout(timer);
