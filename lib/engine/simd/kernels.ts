// The hand-written SIMD kernels of kernels.wat, instantiated against a tfjs wasm backend's own
// memory, so that they read and write its tensors in place: no copy in or out. One instance per
// backend (each imports that backend's memory, which may grow: the instance sees it whole).
import { kernelsWasm } from "./kernels-wasm.ts";

/** What the kernels need of tfjs's wasm backend (tfjs-backend-wasm 4.22). */
export interface WasmBackend {
  makeOutput(shape: number[], dtype: "float32"): { dataId: object; shape: number[]; dtype: string };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  wasm: { asm: { memory: WebAssembly.Memory } };
}

export interface SimdKernels {
  /** Adam's update of one variable (see lib/engine/train/fused-adam.ts); pointers are byte offsets. */
  adam(g: number, m: number, v: number, w: number, mOut: number, vOut: number, wOut: number, n: number, b1: number, b2: number, c1: number, c2: number, oneMinusAcc1: number, oneMinusAcc2: number, eps: number, step: number): void;
  /** out[i] = tanh(x[i]) for n floats. */
  tanh(x: number, out: number, n: number): void;
}

let compiled: WebAssembly.Module | undefined;
const instances = new WeakMap<WasmBackend, SimdKernels>();

export function simdKernels(backend: WasmBackend): SimdKernels {
  let kernels = instances.get(backend);
  if (!kernels) {
    compiled ??= new WebAssembly.Module(Buffer.from(kernelsWasm, "base64"));
    kernels = new WebAssembly.Instance(compiled, { env: { memory: backend.wasm.asm.memory } }).exports as unknown as SimdKernels;
    instances.set(backend, kernels);
  }
  return kernels;
}

/** Where a tensor's values start in the backend's memory (bytes). */
export function offsetOf(backend: WasmBackend, t: { dataId: object }): number {
  const data = backend.dataIdMap.get(t.dataId);
  if (!data) throw new Error("simd kernels: a tensor that is not on this wasm backend");
  return data.memoryOffset;
}
