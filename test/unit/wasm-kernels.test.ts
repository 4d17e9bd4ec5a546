// Training on wasm must compute what training on cpu computes. Each case builds the same inputs
// on both backends, takes gradients of a scalar loss, and compares them element by element.
// Run: node --import tsx --test test/unit/wasm-kernels.test.ts
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import {
  fastConv2dBackpropFilterActive,
  fastAvgPoolGradActive,
  fastTanhActive,
  fastConv2dBackpropInputActive,
  fastTransposedMatMulActive,
  registerMissingWasmKernels,
  type WasmKernelOptions,
} from "../../lib/engine/wasm-kernels.ts";

const RTOL = 1e-4;

type Backend = "cpu" | "wasm";
interface Out {
  shape: number[];
  values: Float32Array;
}
type Produce = () => tf.Tensor | tf.Tensor[] | tf.NamedTensorMap;

/** Deterministic inputs in [-1, 1) that do not depend on any backend's random kernels. */
function data(seed: number, shape: number[]): tf.Tensor {
  let s = seed >>> 0;
  const size = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    s = (s + 0x6d2b79f5) >>> 0; // mulberry32
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  }
  return tf.tensor(out, shape);
}

async function on(backend: Backend, produce: Produce): Promise<Out[]> {
  await tf.setBackend(backend);
  assert.equal(tf.getBackend(), backend);
  const outs: Out[] = [];
  tf.tidy(() => {
    const r = produce();
    const list = r instanceof tf.Tensor ? [r] : Array.isArray(r) ? r : Object.keys(r).sort().map((k) => r[k]);
    for (const t of list) outs.push({ shape: t.shape, values: Float32Array.from(t.dataSync() as Float32Array) });
  });
  return outs;
}

/**
 * Elementwise |wasm - cpu| <= RTOL * max(|cpu|, floor * largest |cpu| in that tensor). The floor
 * keeps elements that are near zero by cancellation from demanding more than float32 gives;
 * single ops land near 1e-7 relative, so 1e-4 leaves room only for summation order.
 */
function assertClose(actual: Out[], expected: Out[], label: string, floor = 0.01): void {
  assert.equal(actual.length, expected.length, `${label}: number of outputs`);
  expected.forEach((e, k) => {
    const a = actual[k];
    assert.deepEqual(a.shape, e.shape, `${label}[${k}]: shape`);
    let scale = 0;
    for (const v of e.values) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < e.values.length; i++) {
      assert.ok(Number.isFinite(e.values[i]), `${label}[${k}][${i}]: cpu value is not finite`);
      const tol = RTOL * Math.max(Math.abs(e.values[i]), floor * scale);
      const diff = Math.abs(a.values[i] - e.values[i]);
      if (!(diff <= tol)) {
        assert.fail(`${label}[${k}][${i}]: wasm ${a.values[i]} vs cpu ${e.values[i]} (|diff| ${diff} > ${tol})`);
      }
    }
  });
}

/** Guards against a vacuous pass: an all-zero gradient would match anything that is also zero. */
function assertInformative(outs: Out[], label: string): void {
  outs.forEach((o, k) => {
    assert.ok(o.values.some((v) => v !== 0), `${label}[${k}]: gradient is all zeros, test proves nothing`);
  });
}

async function sameOnBothBackends(label: string, produce: Produce, floor?: number): Promise<void> {
  const cpu = await on("cpu", produce);
  const wasm = await on("wasm", produce);
  assertInformative(cpu, label);
  assertClose(wasm, cpu, label, floor);
}

/** Weighted sum, so that e.g. softmax (whose outputs always sum to 1) has a non-zero gradient. */
function weightedSum(y: tf.Tensor, seed = 99): tf.Scalar {
  return tf.sum(tf.mul(y, data(seed, y.shape)));
}

function gradsOf(f: (...xs: tf.Tensor[]) => tf.Scalar, xs: tf.Tensor[]): tf.Tensor[] {
  return tf.grads(f)(xs);
}

/**
 * The fast kernel frees what it allocates (no bytes left after `produce`), and wasm's own kernel,
 * registered back by `off`, computes the same (`active` then false); the fast one is back after.
 */
async function swapsBack(produce: Produce, off: WasmKernelOptions, active: () => boolean, label: string): Promise<void> {
  await tf.setBackend("wasm");
  const before = tf.memory().numBytes;
  const fast = await on("wasm", produce);
  assert.equal(tf.memory().numBytes, before, "no bytes left behind");
  try {
    registerMissingWasmKernels(off);
    assert.equal(active(), false);
    assertClose(await on("wasm", produce), fast, label);
  } finally {
    registerMissingWasmKernels();
  }
}

before(async () => {
  // Both backends initialised up front; tests switch between them with tf.setBackend.
  assert.equal(await tf.setBackend("cpu"), true);
  assert.equal(await tf.setBackend("wasm"), true);
  registerMissingWasmKernels();
});

describe("registerMissingWasmKernels", () => {
  test("gives wasm every kernel cpu has, including the ones training needs", () => {
    const names = registerMissingWasmKernels();
    for (const k of [
      "Conv2DBackpropFilter",
      "DepthwiseConv2dNativeBackpropFilter",
      "DepthwiseConv2dNativeBackpropInput",
      "UnsortedSegmentSum",
    ]) {
      assert.ok(names.includes(k), `${k} missing from ${names.join(", ")}`);
    }
    const wasm = new Set(tf.getKernelsForBackend("wasm").map((k) => k.kernelName));
    const stillMissing = tf.getKernelsForBackend("cpu").map((k) => k.kernelName).filter((k) => !wasm.has(k));
    assert.deepEqual(stillMissing, []);
  });

  test("is idempotent: same list, kernels not re-registered", () => {
    const first = registerMissingWasmKernels();
    const fn = tf.getKernel("UnsortedSegmentSum", "wasm").kernelFunc;
    const conv = tf.getKernel("Conv2DBackpropFilter", "wasm").kernelFunc;
    assert.deepEqual(registerMissingWasmKernels(), first);
    assert.equal(tf.getKernel("UnsortedSegmentSum", "wasm").kernelFunc, fn);
    assert.equal(tf.getKernel("Conv2DBackpropFilter", "wasm").kernelFunc, conv);
    assert.equal(fastConv2dBackpropFilterActive(), true);
  });

  test("the generic and fast Conv2DBackpropFilter can be swapped and agree", async () => {
    const produce = () => gradsOf((x, f) => weightedSum(tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 2, "same")), [
      data(1, [2, 9, 9, 3]),
      data(2, [3, 3, 3, 4]),
    ]);
    const fast = await on("wasm", produce);
    try {
      registerMissingWasmKernels({ fastConv2dBackpropFilter: false });
      assert.equal(fastConv2dBackpropFilterActive(), false);
      const generic = await on("wasm", produce);
      assertClose(fast, generic, "fast vs generic");
    } finally {
      registerMissingWasmKernels();
    }
    assert.equal(fastConv2dBackpropFilterActive(), true);
  });

  test("kernels free their intermediates on both backends", async () => {
    await tf.setBackend("wasm");
    const wasm = tf.backend();
    const cpu = tf.findBackend("cpu");
    const before = [wasm.numDataIds(), cpu.numDataIds(), tf.memory().numTensors];
    tf.tidy(() => {
      const x = data(3, [2, 8, 8, 3]);
      gradsOf((x2, f) => weightedSum(tf.conv2d(x2 as tf.Tensor4D, f as tf.Tensor4D, 1, "same")), [x, data(4, [3, 3, 3, 2])]);
      gradsOf((x2, f) => weightedSum(tf.depthwiseConv2d(x2 as tf.Tensor4D, f as tf.Tensor4D, 1, "same")), [x, data(5, [3, 3, 3, 2])]);
      gradsOf((t) => weightedSum(tf.gather(t, tf.tensor1d([0, 2, 2], "int32"))), [data(6, [4, 3])]);
    });
    assert.deepEqual([wasm.numDataIds(), cpu.numDataIds(), tf.memory().numTensors], before);
  });

  test("the comparison catches a wrong kernel (so the gradient tests can fail)", async () => {
    const original = tf.getKernel("Conv2DBackpropFilter", "wasm");
    const produce = () => gradsOf((x, f) => weightedSum(tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, "valid")), [
      data(7, [1, 6, 6, 2]),
      data(8, [3, 3, 2, 2]),
    ]);
    tf.unregisterKernel("Conv2DBackpropFilter", "wasm");
    tf.registerKernel({
      ...original,
      // Off by 0.1%: ten times the tolerance.
      kernelFunc: (args) => {
        const backend = args.backend as tf.KernelBackend;
        const dw = original.kernelFunc(args) as tf.TensorInfo;
        const values = (backend.readSync(dw.dataId) as Float32Array).map((v) => v * 1.001);
        backend.disposeData(dw.dataId);
        return { dataId: backend.write(values, dw.shape, "float32"), shape: dw.shape, dtype: "float32" };
      },
    });
    try {
      await assert.rejects(sameOnBothBackends("deliberately wrong", produce), /wasm .* vs cpu/);
    } finally {
      tf.unregisterKernel("Conv2DBackpropFilter", "wasm");
      tf.registerKernel(original);
    }
    await sameOnBothBackends("restored", produce);
  });
});

/** A convolution the gradient kernels are checked on: input, filter, strides, padding, rounding. */
interface ConvCase {
  x: [number, number, number, number];
  f: [number, number, number, number];
  strides: number | [number, number];
  pad: "same" | "valid" | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: "floor" | "round" | "ceil";
}

const CONV_CASES: ConvCase[] = [
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], strides: 1, pad: "valid" },
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], strides: 1, pad: "same" },
  { x: [2, 8, 8, 3], f: [3, 3, 3, 4], strides: 2, pad: "same" },
  { x: [2, 9, 8, 3], f: [3, 2, 3, 4], strides: [2, 3], pad: "valid" },
  { x: [2, 9, 8, 3], f: [4, 4, 3, 2], strides: 2, pad: "same" },
  { x: [3, 5, 5, 2], f: [1, 1, 2, 3], strides: 1, pad: "valid" },
  { x: [1, 9, 8, 2], f: [3, 3, 2, 2], strides: 1, pad: [[0, 0], [1, 2], [0, 3], [0, 0]] },
  { x: [1, 9, 8, 2], f: [3, 3, 2, 2], strides: 2, pad: 1, dimRoundingMode: "ceil" },
  { x: [1, 10, 10, 2], f: [3, 3, 2, 2], strides: 3, pad: 1, dimRoundingMode: "floor" },
];

describe("BatchMatMul and _FusedMatMul with transposes on wasm (operands transposed first) equal cpu's", () => {
  // a [.., m, k] or its transpose, b [.., k, n] or its transpose; batch axes equal, broadcast, or absent.
  const shapes: { a: number[]; b: number[]; label: string }[] = [
    { a: [7, 5], b: [5, 3], label: "rank 2" },
    { a: [4, 7, 5], b: [4, 5, 3], label: "batched" },
    { a: [4, 7, 5], b: [1, 5, 3], label: "b broadcast over the batch" },
    { a: [1, 7, 5], b: [4, 5, 3], label: "a broadcast over the batch" },
    { a: [2, 3, 7, 5], b: [2, 3, 5, 3], label: "rank 4" },
    { a: [128, 784], b: [784, 256], label: "an MLP's first layer" },
  ];
  const t = (shape: number[], on: boolean) => (on ? [...shape.slice(0, -2), shape[shape.length - 1], shape[shape.length - 2]] : shape);
  for (const { a, b, label } of shapes) {
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      test(`matMul ${label} transposeA ${ta} transposeB ${tb}: product and its gradients`, async () => {
        // tfjs has no gradient for a broadcast batch (on any backend): the product only, there.
        const broadcast = a.length > 2 && a[0] !== b[0];
        await sameOnBothBackends(`matMul ${label} ${ta} ${tb}`, () => {
          const x = data(11, t(a, ta));
          const y = data(12, t(b, tb));
          return [tf.matMul(x, y, ta, tb), ...(broadcast ? [] : gradsOf((p, q) => weightedSum(tf.matMul(p, q, ta, tb)), [x, y]))];
        });
      });
    }
  }
  // Rank 2, as tf.layers' dense calls it (wasm's fused kernel adds the bias wrongly to a batched rank-3
  // product, transposed or not: a bug of its own, left alone; dense layers never ask for it).
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    for (const activation of ["linear", "relu", "elu"] as const) {
      test(`fused matMul [6, 4]·[4, 5] transposeA ${ta} transposeB ${tb}, bias, ${activation}`, async () => {
        await sameOnBothBackends(`fused ${ta} ${tb} ${activation}`, () => {
          const x = data(21, t([6, 4], ta));
          const y = data(22, t([4, 5], tb));
          return tf.fused.matMul({ a: x, b: y, transposeA: ta, transposeB: tb, bias: data(23, [5]), activation });
        });
      });
    }
    test(`fused matMul [3, 6, 4]·[3, 4, 5] transposeA ${ta} transposeB ${tb}, no bias, relu`, async () => {
      await sameOnBothBackends(`fused batched ${ta} ${tb}`, () => tf.fused.matMul({ a: data(24, t([3, 6, 4], ta)), b: data(25, t([3, 4, 5], tb)), transposeA: ta, transposeB: tb, activation: "relu" }));
    });
  }
  test("wasm's own kernels can be swapped back in, agree, and the fast ones free their intermediates", async () => {
    assert.equal(fastTransposedMatMulActive(), true);
    const produce = () => gradsOf((p, q) => weightedSum(tf.matMul(p, q, true, true)), [data(31, [3, 9, 5]), data(32, [3, 4, 9])]);
    await swapsBack(produce, { fastTransposedMatMul: false }, fastTransposedMatMulActive, "native vs transposed first");
    assert.equal(fastTransposedMatMulActive(), true);
  });
});

describe("AvgPoolGrad on wasm (a broadcast Multiply for pools that tile the input) equals cpu's", () => {
  const cases: { x: number[]; pool: number | [number, number]; strides: number | [number, number]; pad: "valid" | "same" }[] = [
    { x: [2, 8, 8, 3], pool: 2, strides: 2, pad: "valid" },
    { x: [64, 28, 28, 6], pool: 2, strides: 2, pad: "valid" }, // LeNet-5's first pool
    { x: [2, 9, 7, 3], pool: 2, strides: 2, pad: "valid" }, // rows and columns past the last window
    { x: [1, 9, 9, 2], pool: 3, strides: 3, pad: "valid" },
    { x: [2, 8, 6, 1], pool: [2, 3], strides: [2, 3], pad: "valid" },
    // Not tiling: wasm's own kernel.
    { x: [2, 8, 8, 3], pool: 2, strides: 1, pad: "valid" },
    { x: [2, 9, 9, 3], pool: 2, strides: 2, pad: "same" },
    { x: [2, 8, 8, 3], pool: 3, strides: 2, pad: "same" },
  ];
  for (const c of cases) {
    test(`x ${c.x} pool ${c.pool} strides ${c.strides} ${c.pad}`, async () => {
      await sameOnBothBackends(`avgPool ${c.x}`, () => gradsOf((x) => weightedSum(tf.avgPool(x as tf.Tensor4D, c.pool, c.strides, c.pad)), [data(41, c.x)]));
    });
  }
  test("wasm's own kernel can be swapped back in, agrees, and the fast one frees its intermediates", async () => {
    assert.equal(fastAvgPoolGradActive(), true);
    const produce = () => gradsOf((x) => weightedSum(tf.avgPool(x as tf.Tensor4D, 2, 2, "valid")), [data(42, [3, 11, 10, 4])]);
    await swapsBack(produce, { fastAvgPoolGrad: false }, fastAvgPoolGradActive, "native vs broadcast");
  });
});

describe("Tanh on wasm (a SIMD rational interpolant) equals tanh within a few ulp", () => {
  /** Every float32 from -10 to 10 in steps, the edges (0, ±tiny, subnormal, ±9, ±∞, NaN) and n not a multiple of 4. */
  const inputs = () => {
    const grid = Array.from({ length: 200_001 }, (_, i) => -10 + i * 1e-4);
    return Float32Array.from([...grid, 0, -0, 1e-8, -1e-8, 1e-39, 4e-4, 8.99, 9, 9.01, -9.01, 20, -20, Infinity, -Infinity, NaN, 0.5, -0.5]);
  };
  test("values: within 8 ulp of tanh everywhere (libm's tanhf: 2), ±1 at ±∞, NaN at NaN", async () => {
    assert.equal(fastTanhActive(), true);
    const x = inputs();
    const cpu = (await on("cpu", () => tf.tanh(tf.tensor1d(x))))[0].values;
    const wasm = (await on("wasm", () => tf.tanh(tf.tensor1d(x))))[0].values;
    // float32's spacing at |t| (subnormals: the smallest one).
    const ulp = (t: number) => 2 ** Math.max(Math.floor(Math.log2(Math.abs(t))) - 23, -149);
    let worst = 0;
    for (let i = 0; i < x.length; i++) {
      if (Number.isNaN(x[i])) {
        assert.ok(Number.isNaN(wasm[i]), `tanh(NaN) = ${wasm[i]}`);
        continue;
      }
      const t = Math.tanh(x[i]);
      const err = t === 0 ? Math.abs(wasm[i]) / 2 ** -149 : Math.abs(wasm[i] - t) / ulp(t);
      worst = Math.max(worst, err);
      assert.ok(err <= 8, `tanh(${x[i]}): wasm ${wasm[i]}, cpu ${cpu[i]}, exact ${t}: ${err.toFixed(1)} ulp`);
    }
    // Measured: 6.6 ulp at worst (near ±5.77), about 4e-7 of the value: far below training's own noise.
    assert.ok(worst > 0.5, "no error at all: is the SIMD kernel the one running?");
    for (const [v, want] of [[Infinity, 1], [-Infinity, -1], [20, 1], [0, 0]] as const) assert.equal(wasm[x.indexOf(v)], want);
  });
  test("gradients through tanh, in a dense layer, and wasm's own kernel swapped back in agrees", async () => {
    const produce = () => gradsOf((x, w) => weightedSum(tf.tanh(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D))), [data(71, [33, 17]), data(72, [17, 13])]);
    await sameOnBothBackends("tanh dense", produce);
    await swapsBack(produce, { fastTanh: false }, fastTanhActive, "libm vs SIMD");
  });
});

describe("Conv2DBackpropInput kernel on wasm (built from Conv2D) equals cpu's", () => {
  // LeNet's 5×5 layer, an odd size under stride 2 and a 2×2/2 transposed conv (U-Net's) on top.
  const cases: ConvCase[] = [
    ...CONV_CASES,
    { x: [2, 14, 14, 6], f: [5, 5, 6, 16], strides: 1, pad: "valid" },
    { x: [2, 9, 9, 3], f: [3, 3, 3, 4], strides: 2, pad: "same" },
    { x: [2, 8, 8, 5], f: [2, 2, 5, 3], strides: 2, pad: "valid" },
  ];
  for (const c of cases) {
    test(`x ${c.x} filter ${c.f} strides ${c.strides} pad ${JSON.stringify(c.pad)} ${c.dimRoundingMode ?? ""}`, async () => {
      assert.equal(fastConv2dBackpropInputActive(), true);
      const info = tf.backend_util.computeConv2DInfo(c.x, c.f, c.strides, 1, c.pad, c.dimRoundingMode);
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: "NHWC", dimRoundingMode: c.dimRoundingMode, inputShape: c.x };
      await sameOnBothBackends("dx", () =>
        tf.engine().runKernel("Conv2DBackpropInput", { dy: data(21, info.outShape), filter: data(22, c.f) }, attrs as never) as tf.Tensor,
      );
    });
  }

  test("wasm's own kernel can be swapped back in, agrees, and the fast one frees its intermediates", async () => {
    const produce = () => tf.conv2dTranspose(data(23, [2, 5, 5, 4]) as tf.Tensor4D, data(24, [3, 3, 3, 4]) as tf.Tensor4D, [2, 10, 10, 3], 2, "same");
    await tf.setBackend("wasm");
    const before = [tf.backend().numDataIds(), tf.memory().numTensors];
    const fast = await on("wasm", produce);
    assert.deepEqual([tf.backend().numDataIds(), tf.memory().numTensors], before);
    try {
      registerMissingWasmKernels({ fastConv2dBackpropInput: false });
      assert.equal(fastConv2dBackpropInputActive(), false);
      assertClose(fast, await on("wasm", produce), "fast vs wasm's own");
    } finally {
      registerMissingWasmKernels();
    }
    assert.equal(fastConv2dBackpropInputActive(), true);
  });
});

describe("Conv2DBackpropFilter kernel on wasm equals cpu's", () => {
  const cases = CONV_CASES;
  for (const c of cases) {
    test(`x ${c.x} filter ${c.f} strides ${c.strides} pad ${JSON.stringify(c.pad)} ${c.dimRoundingMode ?? ""}`, async () => {
      const info = tf.backend_util.computeConv2DInfo(c.x, c.f, c.strides, 1, c.pad, c.dimRoundingMode);
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: "NHWC", dimRoundingMode: c.dimRoundingMode, filterShape: c.f };
      await sameOnBothBackends("dW", () =>
        tf.engine().runKernel("Conv2DBackpropFilter", { x: data(11, c.x), dy: data(12, info.outShape) }, attrs as never) as tf.Tensor,
      );
    });
  }

  test("dilations (not reachable through tf.grads, see below) match the zero-stuffed filter", async () => {
    // A filter dilated by d is a (k-1)*d+1 filter that is zero off the d-grid, so its gradient is
    // that larger filter's gradient sampled on the grid.
    const x = [2, 11, 10, 3] as [number, number, number, number];
    const f = [3, 3, 3, 2] as [number, number, number, number];
    const d: [number, number] = [2, 3];
    for (const [strides, pad] of [[1, "valid"], [1, "same"], [2, "same"]] as const) {
      const big = [(f[0] - 1) * d[0] + 1, (f[1] - 1) * d[1] + 1, f[2], f[3]] as [number, number, number, number];
      const outShape = tf.backend_util.computeConv2DInfo(x, f, strides, d, pad).outShape;
      const wasm = await on("wasm", () =>
        tf.engine().runKernel("Conv2DBackpropFilter", { x: data(13, x), dy: data(14, outShape) }, {
          strides, pad, dataFormat: "NHWC", filterShape: f, dilations: d,
        } as never) as tf.Tensor,
      );
      const cpu = await on("cpu", () => {
        const dwBig = tf.engine().runKernel("Conv2DBackpropFilter", { x: data(13, x), dy: data(14, outShape) }, {
          strides, pad, dataFormat: "NHWC", filterShape: big,
        } as never) as tf.Tensor;
        return tf.stridedSlice(dwBig, [0, 0, 0, 0], big, [d[0], d[1], 1, 1]);
      });
      assertInformative(cpu, `dilated ${strides} ${pad}`);
      assertClose(wasm, cpu, `dilated ${strides} ${pad}`);
    }
  });

  test("NCHW goes through the cpu fallback and still matches", async () => {
    const attrs = { strides: 1, pad: "same", dataFormat: "NCHW", filterShape: [3, 3, 2, 4] };
    await sameOnBothBackends("NCHW", () =>
      tf.engine().runKernel("Conv2DBackpropFilter", { x: data(15, [2, 2, 6, 6]), dy: data(16, [2, 4, 6, 6]) }, attrs as never) as tf.Tensor,
    );
  });
});

describe("gradients on wasm equal cpu's", () => {
  test("dense (matMul + bias)", async () => {
    await sameOnBothBackends("dense", () =>
      gradsOf((x, w, b) => weightedSum(tf.add(tf.matMul(x, w), b)), [data(21, [5, 7]), data(22, [7, 3]), data(23, [3])]),
    );
  });

  const activations: [string, (t: tf.Tensor) => tf.Tensor][] = [
    ["sigmoid", (t) => tf.sigmoid(t)],
    ["tanh", (t) => tf.tanh(t)],
    ["relu", (t) => tf.relu(t)],
    ["leakyRelu", (t) => tf.leakyRelu(t, 0.2)],
    ["elu", (t) => tf.elu(t)],
    ["softmax", (t) => tf.softmax(t)],
    ["linear", (t) => t],
  ];
  for (const [name, act] of activations) {
    test(`dense + ${name}`, async () => {
      await sameOnBothBackends(name, () =>
        gradsOf((x, w, b) => weightedSum(act(tf.add(tf.matMul(x, w), b))), [data(24, [6, 5]), data(25, [5, 4]), data(26, [4])]),
      );
    });
  }

  test("dropout (seeded mask, identical on both)", async () => {
    await sameOnBothBackends("dropout", () =>
      gradsOf((x) => weightedSum(tf.dropout(tf.mul(x, x), 0.4, undefined, 1234)), [data(27, [8, 6])]),
    );
  });

  test("batchNormalization in training mode (tf.layers), moving statistics included", async () => {
    await sameOnBothBackends("batchNorm", () => {
      const layer = tf.layers.batchNormalization({
        momentum: 0.9,
        gammaInitializer: tf.initializers.randomUniform({ minval: 0.5, maxval: 1.5, seed: 3 }),
        betaInitializer: tf.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed: 4 }),
      });
      const x = tf.variable(tf.add(tf.mul(data(28, [10, 4]), 3), 1));
      try {
        layer.build(x.shape);
        const vars = [x, ...layer.trainableWeights.map((w) => w.read() as tf.Variable)];
        const { grads } = tf.variableGrads(
          () => weightedSum(layer.apply(x, { training: true }) as tf.Tensor),
          vars,
        );
        const moving = layer.nonTrainableWeights.map((w) => w.read().clone());
        return [...vars.map((v) => grads[v.name]), ...moving];
      } finally {
        x.dispose();
        // layer.dispose() refuses layers only ever called eagerly; free the weights directly.
        for (const w of layer.weights) w.dispose();
      }
    });
  });

  const convCases: [number | [number, number], "same" | "valid" | tf.backend_util.ExplicitPadding][] = [
    [1, "same"],
    [1, "valid"],
    [2, "same"],
    [2, "valid"],
    [[2, 1], "same"],
    [3, "valid"],
    [1, [[0, 0], [1, 2], [2, 0], [0, 0]]],
    [2, [[0, 0], [0, 1], [1, 1], [0, 0]]],
  ];
  for (const [strides, pad] of convCases) {
    test(`conv2d strides ${strides} pad ${JSON.stringify(pad)}`, async () => {
      await sameOnBothBackends("conv2d", () =>
        gradsOf((x, f) => weightedSum(tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, strides, pad)), [
          data(31, [2, 9, 10, 3]),
          data(32, [3, 3, 3, 4]),
        ]),
      );
    });
  }

  test("conv2d 5x5 and 1x1 filters", async () => {
    for (const k of [5, 1]) {
      await sameOnBothBackends(`conv2d ${k}x${k}`, () =>
        gradsOf((x, f) => weightedSum(tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, "same")), [
          data(33, [2, 8, 8, 2]),
          data(34, [k, k, 2, 3]),
        ]),
      );
    }
  });

  test("conv2d with dilations > 1: tfjs itself has no gradient, on either backend", async () => {
    // Upstream Conv2D_grad asserts dilations == 1, so dilated conv2d layers cannot be trained with
    // tfjs whatever the backend; forward passes work. Recorded here so nobody blames the wasm
    // kernels for it.
    for (const backend of ["cpu", "wasm"] as const) {
      await tf.setBackend(backend);
      assert.throws(
        () => tf.tidy(() => gradsOf((x, f) => weightedSum(tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, "same", "NHWC", 2)), [
          data(35, [1, 8, 8, 2]),
          data(36, [3, 3, 2, 2]),
        ])),
        /dilation rates greater than 1/,
      );
    }
    await sameOnBothBackends("dilated conv2d forward", () =>
      tf.conv2d(data(35, [1, 8, 8, 2]) as tf.Tensor4D, data(36, [3, 3, 2, 2]) as tf.Tensor4D, 1, "same", "NHWC", 2),
    );
  });

  for (const [stride, pad] of [[1, "same"], [2, "valid"], [2, "same"]] as const) {
    test(`conv1d stride ${stride} pad ${pad}`, async () => {
      await sameOnBothBackends("conv1d", () =>
        gradsOf((x, f) => weightedSum(tf.conv1d(x as tf.Tensor3D, f as tf.Tensor3D, stride, pad)), [
          data(41, [3, 13, 4]),
          data(42, [3, 4, 5]),
        ]),
      );
    });
  }

  const transposeCases: [[number, number, number, number], number, "same" | "valid"][] = [
    [[2, 10, 10, 2], 2, "same"],
    [[2, 7, 7, 2], 1, "valid"],
    [[2, 11, 11, 2], 2, "valid"],
  ];
  for (const [outShape, stride, pad] of transposeCases) {
    test(`conv2dTranspose to ${outShape} stride ${stride} pad ${pad}`, async () => {
      const inShape = tf.backend_util.computeConv2DInfo(outShape, [3, 3, 2, 4], stride, 1, pad).outShape;
      await sameOnBothBackends("conv2dTranspose", () =>
        gradsOf((x, f) => weightedSum(tf.conv2dTranspose(x as tf.Tensor4D, f as tf.Tensor4D, outShape, stride, pad)), [
          data(43, inShape),
          data(44, [3, 3, 2, 4]),
        ]),
      );
    });
  }

  for (const [stride, pad] of [[1, "same"], [2, "same"], [2, "valid"], [3, "valid"]] as const) {
    test(`depthwiseConv2d stride ${stride} pad ${pad}`, async () => {
      await sameOnBothBackends("depthwise", () =>
        gradsOf((x, f) => weightedSum(tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, stride, pad)), [
          data(45, [2, 9, 9, 3]),
          data(46, [3, 3, 3, 2]),
        ]),
      );
    });
    test(`separableConv2d stride ${stride} pad ${pad}`, async () => {
      await sameOnBothBackends("separable", () =>
        gradsOf(
          (x, d, p) => weightedSum(tf.separableConv2d(x as tf.Tensor4D, d as tf.Tensor4D, p as tf.Tensor4D, stride, pad)),
          [data(47, [2, 9, 9, 3]), data(48, [3, 3, 3, 2]), data(49, [1, 1, 6, 4])],
        ),
      );
    });
  }

  test("depthwise backprop kernels with dilations (tf.grads rejects them, the kernels do not)", async () => {
    // Like conv2d, tfjs's depthwise gradient asserts dilations == 1; the kernels themselves take
    // a dilations attribute, so check the cpu-fallback copies handle it.
    const x: [number, number, number, number] = [2, 9, 9, 3];
    const f: [number, number, number, number] = [3, 3, 3, 2];
    const attrs = { strides: 1, pad: "same", dilations: [2, 2], filterShape: f, inputShape: x };
    const outShape = tf.backend_util.computeConv2DInfo(x, f, 1, [2, 2], "same", undefined, true).outShape;
    await sameOnBothBackends("depthwise dW dilated", () =>
      tf.engine().runKernel("DepthwiseConv2dNativeBackpropFilter", { x: data(52, x), dy: data(53, outShape) }, attrs as never) as tf.Tensor,
    );
    await sameOnBothBackends("depthwise dx dilated", () =>
      tf.engine().runKernel("DepthwiseConv2dNativeBackpropInput", { dy: data(53, outShape), filter: data(54, f) }, attrs as never) as tf.Tensor,
    );
  });

  test("embedding: gather's gradient (UnsortedSegmentSum), repeated indices accumulate", async () => {
    await sameOnBothBackends("gather", () =>
      gradsOf((table) => weightedSum(tf.gather(table, tf.tensor2d([[1, 3, 3], [0, 1, 7]], [2, 3], "int32"))), [data(51, [8, 5])]),
    );
    await sameOnBothBackends("tf.layers.embedding", () => {
      const layer = tf.layers.embedding({
        inputDim: 9,
        outputDim: 4,
        embeddingsInitializer: tf.initializers.randomUniform({ minval: -1, maxval: 1, seed: 5 }),
      });
      try {
        const ids = tf.tensor2d([[2, 2, 8], [0, 5, 2]], [2, 3], "int32");
        layer.build(ids.shape);
        const table = layer.trainableWeights[0].read() as tf.Variable;
        const { grads } = tf.variableGrads(() => weightedSum(layer.apply(ids) as tf.Tensor), [table]);
        return [grads[table.name]];
      } finally {
        for (const w of layer.weights) w.dispose();
      }
    });
  });

  test("a small CNN trains the same (gradients of two successive SGD steps, via tf.layers)", async () => {
    // Gradients, not weights: after a step the weights differ from their start by less than
    // their own float32 resolution allows to compare at 1e-4. Through batch norm's mean
    // subtraction the two backends' rounding differs by up to ~4e-5 of a tensor's largest
    // element, so here the tolerance is 1e-4 of that largest element (floor 1).
    await sameOnBothBackends("cnn step gradients", () => {
      const seeded = (seed: number) => tf.initializers.glorotUniform({ seed });
      const model = tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape: [12, 12, 1], filters: 4, kernelSize: 3, activation: "relu", kernelInitializer: seeded(1) }),
          tf.layers.maxPooling2d({ poolSize: 2 }),
          // No bias before batch norm: its gradient is exactly zero in theory and rounding noise in
          // practice, which no relative tolerance can compare.
          tf.layers.separableConv2d({ filters: 6, kernelSize: 3, padding: "same", useBias: false, depthwiseInitializer: seeded(2), pointwiseInitializer: seeded(3) }),
          tf.layers.batchNormalization({}),
          tf.layers.globalAveragePooling2d({}),
          tf.layers.dense({ units: 3, activation: "softmax", kernelInitializer: seeded(4) }),
        ],
      });
      const optimizer = tf.train.sgd(0.5);
      try {
        const xs = data(61, [6, 12, 12, 1]);
        const ys = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2], "int32"), 3);
        const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
        const out: tf.Tensor[] = [];
        for (let step = 0; step < 2; step++) {
          const { grads } = optimizer.computeGradients(
            () => tf.losses.softmaxCrossEntropy(ys, model.apply(xs, { training: true }) as tf.Tensor),
            vars,
          );
          out.push(...vars.map((v) => grads[v.name].clone()));
          optimizer.applyGradients(grads);
        }
        return out;
      } finally {
        optimizer.dispose();
        model.dispose();
      }
    }, 1);
  });
});

describe("other patched kernels run on wasm", () => {
  test("complex, FFT and its inverse, einsum, ragged range", async () => {
    await sameOnBothBackends("misc", () => {
      const c = tf.complex(data(71, [8]), data(72, [8]));
      const f = tf.spectral.fft(c);
      return [
        tf.real(f),
        tf.imag(f),
        tf.abs(f),
        tf.real(tf.spectral.ifft(f)),
        tf.einsum("ij,jk->ik", data(73, [3, 4]), data(74, [4, 2])),
        tf.raggedRange(tf.tensor1d([0, 5], "int32"), tf.tensor1d([3, 9], "int32"), tf.tensor1d([1, 2], "int32")).rtDenseValues,
      ];
    });
  });
});
