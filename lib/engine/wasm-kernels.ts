// Kernels that the wasm backend of tfjs 4.22 lacks but training needs (tfjs issue 8474).
// Without them, conv / conv1d / conv2dTranspose / separable-conv / embedding training on wasm
// throws "kernel not registered" during backprop. Both convolution gradients are also rebuilt
// from wasm's fast Conv2D: the filter gradient's fallback and wasm's own input gradient are
// plain loops, and together they made CNN training on wasm ~270× slower than it is.
import * as tf from "@tensorflow/tfjs";
import type { KernelBackend, KernelFunc, NamedAttrMap, TensorInfo } from "@tensorflow/tfjs";
import { offsetOf, simdKernels, type WasmBackend } from "./simd/kernels.ts";

export interface WasmKernelOptions {
  /**
   * Replace the cpu fallback for Conv2DBackpropFilter with one built from wasm kernels.
   * Default true; false exists so the benchmark can measure what it is worth.
   */
  fastConv2dBackpropFilter?: boolean;
  /**
   * Replace wasm's own Conv2DBackpropInput (a plain loop, 2–7× slower than its Conv2D) with one
   * built from its Conv2D. Default true; false measures what it is worth.
   */
  fastConv2dBackpropInput?: boolean;
  /**
   * Run BatchMatMul and _FusedMatMul with transposeA/transposeB as an explicit Transpose and the
   * untransposed kernel. Default true; false measures what it is worth.
   */
  fastTransposedMatMul?: boolean;
  /**
   * AvgPoolGrad for pools that tile the input (stride = pool size, no padding) as one broadcast
   * Multiply. Default true; false measures what it is worth.
   */
  fastAvgPoolGrad?: boolean;
  /**
   * Tanh as a SIMD rational interpolant (lib/engine/simd/kernels.wat) instead of wasm's libm call
   * per element. Default true; false measures what it is worth.
   */
  fastTanh?: boolean;
}

const CONV2D_BACKPROP_FILTER = "Conv2DBackpropFilter";

/**
 * A wasm kernel for which this module has a faster version: wasm's own is kept (the fast one falls
 * back to it for the cases it does not cover, and the benchmarks measure against it), and either
 * is registered on request.
 */
class Swappable {
  native?: KernelFunc;
  fastOn = false;
  constructor(readonly name: string) {}

  /** Registers `fast` (on) or wasm's own (off), if wasm has the kernel and it is not so already. */
  use(on: boolean, fast: KernelFunc): void {
    this.native ??= tf.getKernel(this.name, "wasm")?.kernelFunc;
    if (!this.native || on === this.fastOn) return;
    tf.unregisterKernel(this.name, "wasm");
    tf.registerKernel({ kernelName: this.name, backendName: "wasm", kernelFunc: on ? fast : this.native });
    this.fastOn = on;
  }
}

const backpropInput = new Swappable("Conv2DBackpropInput");
// wasm's AvgPoolGrad is a loop over every input cell and window.
const avgPoolGrad = new Swappable("AvgPoolGrad");
// wasm's Tanh calls libm's tanhf per element.
const tanhKernel = new Swappable("Tanh");

// wasm's own matmuls, kept: the fast versions call them with their operands transposed.
const MATMULS = ["BatchMatMul", "_FusedMatMul"] as const;
const nativeMatMul: Partial<Record<(typeof MATMULS)[number], KernelFunc>> = {};
let fastMatMulActive = false;

// The names this module patched, fixed at the first call: later calls must not treat our own
// patches as kernels the wasm backend "has".
let patched: string[] | undefined;
let fastConvActive = false;

/**
 * Registers on `wasm` every kernel that `cpu` has and `wasm` lacks, as a fallback that runs the
 * cpu kernel on copies of the inputs; then, unless disabled, a wasm-speed Conv2DBackpropFilter
 * and Conv2DBackpropInput.
 * Returns the names of the patched kernels (the same list on every call).
 */
export function registerMissingWasmKernels(options: WasmKernelOptions = {}): string[] {
  const fast = options.fastConv2dBackpropFilter ?? true;
  if (patched === undefined) {
    const wasmHas = new Set(tf.getKernelsForBackend("wasm").map((k) => k.kernelName));
    // With no wasm kernels registered every cpu kernel would look missing and we would shadow
    // the whole backend with cpu copies: refuse instead.
    if (wasmHas.size === 0) {
      throw new Error(
        "registerMissingWasmKernels: no wasm kernels are registered; import @tensorflow/tfjs-backend-wasm first",
      );
    }
    const missing = tf
      .getKernelsForBackend("cpu")
      .map((k) => k.kernelName)
      .filter((name) => !wasmHas.has(name))
      .sort();
    for (const kernelName of missing) {
      tf.registerKernel({ kernelName, backendName: "wasm", kernelFunc: viaCpu(kernelName) });
    }
    patched = missing;
  }
  backpropInput.use(options.fastConv2dBackpropInput ?? true, conv2dBackpropInputWasm);
  const fastMatMul = options.fastTransposedMatMul ?? true;
  for (const name of MATMULS) nativeMatMul[name] ??= tf.getKernel(name, "wasm")?.kernelFunc;
  if (fastMatMul !== fastMatMulActive && MATMULS.every((name) => nativeMatMul[name])) {
    for (const name of MATMULS) {
      tf.unregisterKernel(name, "wasm");
      tf.registerKernel({ kernelName: name, backendName: "wasm", kernelFunc: fastMatMul ? untransposed(name) : nativeMatMul[name]! });
    }
    fastMatMulActive = fastMatMul;
  }
  avgPoolGrad.use(options.fastAvgPoolGrad ?? true, avgPoolGradWasm);
  tanhKernel.use(options.fastTanh ?? true, tanhWasm);
  // Only swap a kernel that we patched: if a later tfjs ships its own, keep it.
  if (patched.includes(CONV2D_BACKPROP_FILTER) && fast !== fastConvActive) {
    tf.unregisterKernel(CONV2D_BACKPROP_FILTER, "wasm");
    tf.registerKernel({
      kernelName: CONV2D_BACKPROP_FILTER,
      backendName: "wasm",
      kernelFunc: fast ? conv2dBackpropFilterWasm : viaCpu(CONV2D_BACKPROP_FILTER),
    });
    fastConvActive = fast;
  }
  return [...patched];
}

/** True when BatchMatMul and _FusedMatMul on wasm transpose their operands first. */
export function fastTransposedMatMulActive(): boolean {
  return fastMatMulActive;
}

/** True when Tanh on wasm runs the SIMD kernel. */
export function fastTanhActive(): boolean {
  return tanhKernel.fastOn;
}

/** True when AvgPoolGrad on wasm runs as a broadcast Multiply where it can. */
export function fastAvgPoolGradActive(): boolean {
  return avgPoolGrad.fastOn;
}

/** True when Conv2DBackpropInput on wasm currently runs the Conv2D-based version. */
export function fastConv2dBackpropInputActive(): boolean {
  return backpropInput.fastOn;
}

/** True when Conv2DBackpropFilter on wasm currently runs the wasm-op version. */
export function fastConv2dBackpropFilterActive(): boolean {
  return fastConvActive;
}

type Backend = KernelBackend;

function cpuBackend(): Backend {
  const cpu = tf.findBackend("cpu") as (Backend & { firstUse?: boolean }) | null;
  if (cpu == null) {
    throw new Error("wasm fallback kernels need the cpu backend, which is not registered");
  }
  // MathBackendCPU's first write prints "install tfjs-node to speed things up"; as wasm's
  // fallback that advice is noise in the worker's log (and here tfjs-node cannot install).
  cpu.firstUse = false;
  return cpu;
}

/**
 * Runs `kernelName`'s cpu kernel for a wasm caller: inputs are copied to the cpu backend,
 * outputs copied back, and every cpu copy is freed whether the kernel succeeds or throws.
 */
function viaCpu(kernelName: string): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const wasm = backend as Backend;
    const cpu = cpuBackend();
    const { kernelFunc } = tf.getKernel(kernelName, "cpu");
    const copies: TensorInfo[] = [];
    const toCpu = (info: TensorInfo): TensorInfo => {
      const copy = copyTensorInfo(info, wasm, cpu);
      copies.push(copy);
      return copy;
    };
    try {
      // Inputs come in three shapes: a name map, an array (Einsum, like Concat and AddN, gets
      // its operands as a plain array) and a map holding an array (RaggedGather's
      // paramsNestedSplits). Keep each shape: the cpu kernels index them as they were given.
      const convert = (value: unknown): unknown =>
        value == null ? value : Array.isArray(value) ? value.map(convert) : toCpu(value as TensorInfo);
      const cpuInputs = Array.isArray(inputs)
        ? (inputs as unknown[]).map(convert)
        : Object.fromEntries(Object.entries(inputs as Record<string, unknown>).map(([k, v]) => [k, convert(v)]));
      const out = kernelFunc({ inputs: cpuInputs as never, backend: cpu, attrs });
      const outs = Array.isArray(out) ? out : [out];
      try {
        const back = outs.map((o) => copyTensorInfo(o, cpu, wasm));
        return Array.isArray(out) ? back : back[0];
      } finally {
        for (const o of outs) cpu.disposeData(o.dataId);
      }
    } finally {
      for (const c of copies) cpu.disposeData(c.dataId);
    }
  };
}

function copyTensorInfo(info: TensorInfo, from: Backend, to: Backend): TensorInfo {
  const values = info.dtype === "complex64" && from !== tf.findBackend("cpu")
    ? readWasmComplex(from, info)
    : from.readSync(info.dataId);
  // cpu keeps complex64 as separate real/imag tensors (wasm stores them interleaved), so build
  // one with cpu's own Complex kernel rather than writing interleaved values it cannot read.
  if (info.dtype === "complex64" && to === tf.findBackend("cpu")) {
    const { real, imag } = tf.backend_util.splitRealAndImagArrays(values as Float32Array);
    const re = { dataId: to.write(real, info.shape, "float32"), shape: info.shape, dtype: "float32" as const };
    const im = { dataId: to.write(imag, info.shape, "float32"), shape: info.shape, dtype: "float32" as const };
    try {
      const { kernelFunc } = tf.getKernel("Complex", "cpu");
      return kernelFunc({ inputs: { real: re, imag: im }, backend: to }) as TensorInfo;
    } finally {
      to.disposeData(re.dataId);
      to.disposeData(im.dataId);
    }
  }
  return { dataId: to.write(values, info.shape, info.dtype), shape: info.shape, dtype: info.dtype };
}

/**
 * BackendWasm stores complex64 as interleaved float pairs but its readSync throws "Unknown dtype
 * complex64", so read the bytes from its heap directly.
 */
function readWasmComplex(backend: Backend, info: TensorInfo): Float32Array {
  const internals = backend as unknown as {
    dataIdMap?: { get(dataId: object): { memoryOffset: number } | undefined };
    wasm?: { HEAPU8: Uint8Array };
  };
  const entry = internals.dataIdMap?.get(info.dataId);
  if (entry === undefined || internals.wasm === undefined) {
    throw new Error("cannot read a complex64 tensor from this wasm backend");
  }
  const bytes = tf.util.sizeFromShape(info.shape) * 8;
  const copy = internals.wasm.HEAPU8.slice(entry.memoryOffset, entry.memoryOffset + bytes);
  return new Float32Array(copy.buffer);
}

/** Attributes the two convolution-gradient kernels share. */
type ConvGradAttrs = NamedAttrMap & {
  strides: number | [number, number];
  pad: "valid" | "same" | number | tf.backend_util.ExplicitPadding;
  dataFormat?: "NHWC" | "NCHW";
  dimRoundingMode?: "floor" | "round" | "ceil";
};

/**
 * Runs wasm kernels from inside another kernel: `run` keeps each output as an intermediate,
 * `result` runs the one the caller returns, and `free` disposes the intermediates.
 */
function wasmScratch(backend: Backend) {
  const temps: TensorInfo[] = [];
  const result = (kernelName: string, inputs: Record<string, TensorInfo>, attrs: NamedAttrMap): TensorInfo =>
    tf.getKernel(kernelName, "wasm").kernelFunc({ inputs, backend, attrs }) as TensorInfo;
  return {
    result,
    run: (kernelName: string, inputs: Record<string, TensorInfo>, attrs: NamedAttrMap): TensorInfo => {
      const out = result(kernelName, inputs, attrs);
      temps.push(out);
      return out;
    },
    free: () => {
      for (const t of temps) backend.disposeData(t.dataId);
    },
  };
}

/**
 * Conv2DBackpropFilter from wasm (XNNPACK) kernels: with it the small-CNN training step of
 * bench/kernels.bench.ts runs at ~300 samples/s instead of ~3 through the cpu fallback. The
 * filter gradient
 *   dW[kh,kw,ci,co] = sum over b,oh,ow of xPad[b, oh*sh + kh*dh, ow*sw + kw*dw, ci] * dy[b,oh,ow,co]
 * is itself a convolution: with channels and batch swapped, xPad as the image [ci, H, W, b]
 * and dy as the filter [oh, ow, b, co], the conv strides are the forward dilations and its
 * dilations the forward strides. That lets the backend's fast conv do the work. im2col (pad +
 * tap slices + one matMul) loses on wasm: its Slice copies the whole input out of the heap on
 * every call (the 9 slices of a 3x3 layer cost about what this whole kernel does) and
 * BatchMatMul with transposeA takes a path ~10x slower than without.
 */
const conv2dBackpropFilterWasm: KernelFunc = (args) => {
  const { inputs, attrs } = args;
  const backend = args.backend as Backend;
  const x = inputs.x as TensorInfo;
  const dy = inputs.dy as TensorInfo;
  const a = (attrs ?? {}) as ConvGradAttrs & {
    filterShape: [number, number, number, number];
    // Not in tfjs's Conv2DBackpropFilterAttrs (its Conv2D gradient rejects dilations > 1), but
    // honoured if a caller passes it.
    dilations?: number | [number, number];
  };
  // Shapes and dtypes the composition does not cover go to the exact cpu kernel.
  if ((a.dataFormat ?? "NHWC") !== "NHWC" || x.dtype !== "float32" || dy.dtype !== "float32") {
    return viaCpu(CONV2D_BACKPROP_FILTER)(args);
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    a.filterShape,
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
    false,
    "channelsLast",
  );
  const { inHeight, inWidth, inChannels, outChannels, outHeight, outWidth } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const { top, left } = info.padInfo;
  if (
    top < 0 || left < 0 || outHeight <= 0 || outWidth <= 0 ||
    dy.shape[1] !== outHeight || dy.shape[2] !== outWidth || dy.shape[3] !== outChannels
  ) {
    return viaCpu(CONV2D_BACKPROP_FILTER)(args);
  }

  const { run, result, free } = wasmScratch(backend);
  try {
    // Rows/cols the conv reads: pad up to exactly that (ceil rounding can read past the
    // forward padding; those taps contribute zeros, as in the cpu kernel).
    const needH = (filterHeight - 1) * dilationHeight + (outHeight - 1) * strideHeight + 1;
    const needW = (filterWidth - 1) * dilationWidth + (outWidth - 1) * strideWidth + 1;
    const bottom = Math.max(0, needH - inHeight - top);
    const right = Math.max(0, needW - inWidth - left);
    const xPad = top + bottom + left + right === 0
      ? x
      : run("PadV2", { x }, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 });
    const image = run("Transpose", { x: xPad }, { perm: [3, 1, 2, 0] }); // [ci, Hp, Wp, b]
    const kernel = run("Transpose", { x: dy }, { perm: [1, 2, 0, 3] }); // [oh, ow, b, co]
    let grad = run("Conv2D", { x: image, filter: kernel }, {
      strides: [dilationHeight, dilationWidth],
      dilations: [strideHeight, strideWidth],
      pad: "valid",
      dataFormat: "NHWC",
    }); // [ci, >=kh, >=kw, co]
    if (grad.shape[1] !== filterHeight || grad.shape[2] !== filterWidth) {
      // Input rows/cols past the last tap (a stride remainder) give extra outputs: drop them.
      grad = run("Slice", { x: grad }, {
        begin: [0, 0, 0, 0],
        size: [inChannels, filterHeight, filterWidth, outChannels],
      });
    }
    return result("Transpose", { x: grad }, { perm: [1, 2, 0, 3] });
  } finally {
    free();
  }
};

/**
 * Conv2DBackpropInput (the input gradient of every conv layer but the first, and the forward
 * pass of conv2dTranspose) from wasm's Conv2D, which runs on XNNPACK:
 *   dx = Conv2D(dy with stride−1 zeros between its rows and columns, padded by kernel−1−pad,
 *               the filter flipped in both spatial axes with in/out channels swapped)
 * Zeros go in by reshaping dy to [b, oh, 1, ow, 1, co] and padding the unit axes. Measured on
 * LeNet- and U-Net-sized layers it is 2–7× faster (stride 1) and ~1.8× (stride 2) than wasm's
 * own kernel, with the same results. Anything it does not cover goes to that kernel.
 */
const conv2dBackpropInputWasm: KernelFunc = (args) => {
  const { inputs, attrs } = args;
  const backend = args.backend as Backend;
  const dy = inputs.dy as TensorInfo;
  const filter = inputs.filter as TensorInfo;
  const a = (attrs ?? {}) as ConvGradAttrs & { inputShape: [number, number, number, number] };
  if ((a.dataFormat ?? "NHWC") !== "NHWC" || dy.dtype !== "float32" || filter.dtype !== "float32") return backpropInput.native!(args);
  const info = tf.backend_util.computeConv2DInfo(
    a.inputShape, filter.shape as [number, number, number, number], a.strides, 1, a.pad, a.dimRoundingMode, false, "channelsLast",
  );
  const { batchSize, inHeight, inWidth, inChannels, outChannels, outHeight, outWidth, filterHeight, filterWidth, strideHeight, strideWidth } = info;
  const { top, left } = info.padInfo;
  // Rows of dy once dilated by the stride, and the padding that makes a valid conv return inH rows.
  const dh = (outHeight - 1) * strideHeight + 1;
  const dw = (outWidth - 1) * strideWidth + 1;
  const padTop = filterHeight - 1 - top;
  const padLeft = filterWidth - 1 - left;
  const padBottom = inHeight + filterHeight - 1 - padTop - dh;
  const padRight = inWidth + filterWidth - 1 - padLeft - dw;
  if (
    dy.shape[0] !== batchSize || dy.shape[1] !== outHeight || dy.shape[2] !== outWidth || dy.shape[3] !== outChannels ||
    Math.min(padTop, padLeft, padBottom, padRight) < 0
  ) {
    return backpropInput.native!(args);
  }

  const { run, result, free } = wasmScratch(backend);
  try {
    let d = dy;
    if (strideHeight > 1 || strideWidth > 1) {
      const spread = run("Reshape", { x: dy }, { shape: [batchSize, outHeight, 1, outWidth, 1, outChannels] });
      const zeros = run("PadV2", { x: spread }, {
        paddings: [[0, 0], [0, 0], [0, strideHeight - 1], [0, 0], [0, strideWidth - 1], [0, 0]],
        constantValue: 0,
      });
      const dilated = run("Reshape", { x: zeros }, { shape: [batchSize, outHeight * strideHeight, outWidth * strideWidth, outChannels] });
      // The zeros after the last row and column are not part of the dilation: cut them.
      d = run("Slice", { x: dilated }, { begin: [0, 0, 0, 0], size: [batchSize, dh, dw, outChannels] });
    }
    const padded = padTop + padBottom + padLeft + padRight === 0
      ? d
      : run("PadV2", { x: d }, { paddings: [[0, 0], [padTop, padBottom], [padLeft, padRight], [0, 0]], constantValue: 0 });
    const flipped = run("Reverse", { x: filter }, { dims: [0, 1] });
    const swapped = run("Transpose", { x: flipped }, { perm: [0, 1, 3, 2] }); // [kh, kw, co, ci]
    const dx = result("Conv2D", { x: padded, filter: swapped }, { strides: [1, 1], pad: "valid", dataFormat: "NHWC", dilations: [1, 1] });
    if (dx.shape[1] !== inHeight || dx.shape[2] !== inWidth || dx.shape[3] !== inChannels) {
      backend.disposeData(dx.dataId);
      return backpropInput.native!(args);
    }
    return dx;
  } finally {
    free();
  }
};

/**
 * BatchMatMul / _FusedMatMul with transposeA or transposeB: wasm's kernel takes its XNNPACK path
 * only without transposes and otherwise runs a plain loop, 15–20× slower (1.3–2.2 GFLOP/s against
 * 28–31). Every gradient of a dense layer is such a matmul (dx = dy·Wᵀ, dW = xᵀ·dy), so training
 * spent most of its time there. Transposing the operand explicitly (one pass over it) and calling
 * the kernel without transposes gives the same sums in another order (results equal to ~1e-7
 * relative). Upstream-ready: the same belongs in tfjs-backend-wasm's BatchMatMul.
 */
function untransposed(name: (typeof MATMULS)[number]): KernelFunc {
  return (args) => {
    const native = nativeMatMul[name]!;
    const attrs = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
    const a = args.inputs.a as TensorInfo;
    const b = args.inputs.b as TensorInfo;
    if (!attrs.transposeA && !attrs.transposeB) return native(args);
    if (a.dtype !== "float32" || b.dtype !== "float32") return native(args);
    const backend = args.backend as Backend;
    const { run, free } = wasmScratch(backend);
    // The last two axes swapped, batch axes kept.
    const swap = (t: TensorInfo) => {
      const rank = t.shape.length;
      return run("Transpose", { x: t }, { perm: [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2] });
    };
    try {
      const inputs = { ...args.inputs, a: attrs.transposeA ? swap(a) : a, b: attrs.transposeB ? swap(b) : b };
      return native({ ...args, inputs, attrs: { ...args.attrs, transposeA: false, transposeB: false } });
    } finally {
      free();
    }
  };
}

/**
 * AvgPoolGrad for pools that tile the input (LeNet's 2×2 stride 2, valid): each input cell gets
 * its window's dy / (pool area), so the gradient is dy spread over the window, one broadcast
 * Multiply of dy reshaped to [b, oh, 1, ow, 1, c] by a [1, 1, ph, 1, pw, 1] block of 1/area, then
 * zeros for the rows and columns past the last window. wasm's own kernel loops over every input
 * cell and window in scalar code: 3.2 ms of a 29 ms LeNet-5 step. Other pools go to it.
 */
const avgPoolGradWasm: KernelFunc = (args) => {
  const backend = args.backend as Backend;
  const dy = args.inputs.dy as TensorInfo;
  const input = args.inputs.input as TensorInfo;
  const a = (args.attrs ?? {}) as { filterSize: [number, number] | number; strides: [number, number] | number; pad: "valid" | "same" | number; dimRoundingMode?: "floor" | "round" | "ceil" };
  if (dy.dtype !== "float32" || input.shape.length !== 4) return avgPoolGrad.native!(args);
  const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, filterHeight, filterWidth, strideHeight, strideWidth } = info;
  const { top, left, bottom, right } = info.padInfo;
  if (
    filterHeight !== strideHeight || filterWidth !== strideWidth || top + left + bottom + right !== 0 ||
    outHeight * filterHeight > inHeight || outWidth * filterWidth > inWidth ||
    dy.shape[0] !== batchSize || dy.shape[1] !== outHeight || dy.shape[2] !== outWidth || dy.shape[3] !== inChannels
  ) {
    return avgPoolGrad.native!(args);
  }
  const { run, result, free } = wasmScratch(backend);
  try {
    const spread = run("Reshape", { x: dy }, { shape: [batchSize, outHeight, 1, outWidth, 1, inChannels] });
    const block = run("Fill", {}, { shape: [1, 1, filterHeight, 1, filterWidth, 1], value: 1 / (filterHeight * filterWidth), dtype: "float32" });
    const tiled = run("Multiply", { a: spread, b: block }, {});
    const extraH = inHeight - outHeight * filterHeight;
    const extraW = inWidth - outWidth * filterWidth;
    if (extraH === 0 && extraW === 0) return result("Reshape", { x: tiled }, { shape: [batchSize, inHeight, inWidth, inChannels] });
    const grid = run("Reshape", { x: tiled }, { shape: [batchSize, outHeight * filterHeight, outWidth * filterWidth, inChannels] });
    return result("PadV2", { x: grid }, { paddings: [[0, 0], [0, extraH], [0, extraW], [0, 0]], constantValue: 0 });
  } finally {
    free();
  }
};

/**
 * Tanh over four lanes at a time (kernels.wat): 3.4 ms of a 20 ms LeNet-5 step went to wasm's
 * per-element libm call. Within a couple of ulp of it (tested against cpu); other dtypes take
 * wasm's own kernel.
 */
const tanhWasm: KernelFunc = ({ inputs, backend, attrs }) => {
  const x = (inputs as { x: TensorInfo }).x;
  if (x.dtype !== "float32") return tanhKernel.native!({ inputs, backend, attrs });
  const wasm = backend as unknown as WasmBackend;
  const out = wasm.makeOutput(x.shape, "float32") as TensorInfo;
  const n = x.shape.reduce((a, b) => a * b, 1);
  if (n > 0) simdKernels(wasm).tanh(offsetOf(wasm, x), offsetOf(wasm, out), n);
  return out;
};
