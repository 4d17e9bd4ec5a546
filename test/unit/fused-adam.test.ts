// The fused Adam update on wasm (lib/engine/train/fused-adam.ts) must leave exactly what tfjs's
// own AdamOptimizer leaves: weights, both moments, β₁ᵗ, β₂ᵗ and the step count, bit for bit,
// step after step, for any hyperparameters; and its saved optimizer weights must load into tfjs's
// Adam. Against tfjs's Adam on the same backend, and on cpu within float tolerance.
import assert from "node:assert/strict";
import { before, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { mulberry32 } from "../../lib/engine/seeded-random.ts";
import { applyGradients } from "../../lib/engine/train/fused-adam.ts";

before(async () => {
  await tf.setBackend("wasm");
  await tf.ready();
});

const SHAPES = [[784, 256], [256], [3, 3, 4, 8], [1], [5, 7]];

function values(random: () => number, size: number, scale = 1): Float32Array {
  return Float32Array.from({ length: size }, () => (random() * 2 - 1) * scale);
}

/** Variables of SHAPES (names prefixed), the same start values for the same seed. */
function variables(prefix: string, seed: number): tf.Variable[] {
  const random = mulberry32(seed);
  return tf.tidy(() => SHAPES.map((s, i) => tf.variable(tf.tensor(values(random, s.reduce((a, b) => a * b, 1)), s), true, `${prefix}${i}`)));
}

interface Run {
  weights: Float32Array[];
  optimizer: Float32Array[];
  acc: number[];
  iterations: number;
}

/** `steps` Adam steps on fresh variables with seeded gradients (of growing scale: moments of every size); fused or tfjs's own. */
async function run(fused: boolean, steps: number, config: [number, number, number, number], prefix: string): Promise<Run> {
  const vars = variables(prefix, 3);
  const adam = tf.train.adam(...config);
  const random = mulberry32(11);
  for (let s = 0; s < steps; s++) {
    // Halfway, wasm's memory grows (a tensor larger than any before): the kernel imports that memory and must still see it whole.
    if (s === steps / 2 && tf.getBackend() === "wasm") {
      const heap = () => (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
      const before = heap();
      tf.tensor(new Float32Array(before / 4 + (1 << 20))).dispose();
      assert.ok(heap() > before, "wasm's memory did not grow");
    }
    tf.tidy(() => {
      const grads = Object.fromEntries(vars.map((v) => [v.name, tf.tensor(values(random, v.size, 10 ** ((s % 5) - 2)), v.shape)]));
      if (fused) applyGradients(adam, grads);
      else (adam as tf.Optimizer).applyGradients(grads);
    });
  }
  const fields = adam as unknown as { accBeta1: tf.Variable; accBeta2: tf.Variable };
  const out = {
    weights: vars.map((v) => v.dataSync() as Float32Array),
    optimizer: await optimizerWeights(adam),
    acc: [fields.accBeta1.dataSync()[0], fields.accBeta2.dataSync()[0]],
    iterations: adam.iterations,
  };
  tf.dispose(vars);
  adam.dispose();
  return out;
}

/** The optimizer's saved weights past the step count (the moments), read, and the step count's tensor freed. */
async function optimizerWeights(optimizer: tf.Optimizer): Promise<Float32Array[]> {
  const [iterations, ...moments] = await optimizer.getWeights();
  iterations.tensor.dispose();
  return Promise.all(moments.map((w) => w.tensor.data() as Promise<Float32Array>));
}

function assertBitEqual(a: Float32Array[], b: Float32Array[], what: string): void {
  assert.equal(a.length, b.length, what);
  a.forEach((x, i) => assert.deepEqual(new Uint32Array(x.buffer, x.byteOffset, x.length), new Uint32Array(b[i].buffer, b[i].byteOffset, b[i].length), `${what} ${i}`));
}

for (const config of [[0.001, 0.9, 0.999, 1e-7], [0.05, 0.8, 0.99, 1e-3], [3e-4, 0.95, 0.9999, 1e-8]] as [number, number, number, number][]) {
  test(`fused Adam ${JSON.stringify(config)}: weights, moments, β powers and steps bit-equal to tfjs's Adam over 12 steps`, async () => {
    const before = tf.memory().numTensors;
    const mine = await run(true, 12, config, `f${config[0]}_`);
    const theirs = await run(false, 12, config, `t${config[0]}_`);
    assert.equal(tf.memory().numTensors, before, "tensors leaked");
    assertBitEqual(mine.weights, theirs.weights, "weights");
    assertBitEqual(mine.optimizer, theirs.optimizer, "moments");
    assert.deepEqual(mine.acc, theirs.acc);
    assert.equal(mine.iterations, 12);
    assert.equal(theirs.iterations, 12);
    // It did move the weights (an update that did nothing would also be "equal" to itself).
    const start = variables("s_", 3);
    assert.notDeepEqual(mine.weights[0], start[0].dataSync());
    tf.dispose(start);
  });
}

test("fused Adam on wasm matches tfjs's Adam on cpu within float tolerance", async () => {
  const config: [number, number, number, number] = [0.01, 0.9, 0.999, 1e-7];
  const mine = await run(true, 8, config, "w_");
  await tf.setBackend("cpu");
  const cpu = await run(false, 8, config, "c_");
  await tf.setBackend("wasm");
  mine.weights.forEach((w, i) => w.forEach((x, k) => assert.ok(Math.abs(x - cpu.weights[i][k]) <= 1e-5 * (1 + Math.abs(x)), `variable ${i}[${k}]: ${x} vs ${cpu.weights[i][k]}`)));
});

test("an optimizer the fused path does not cover, and a null gradient, take tfjs's own path", () => {
  const v = tf.variable(tf.ones([4]), true, "sgd_v");
  const sgd = tf.train.sgd(0.5);
  applyGradients(sgd, { sgd_v: tf.ones([4]) });
  assert.deepEqual(Array.from(v.dataSync()), [0.5, 0.5, 0.5, 0.5]);
  // A variable without a gradient keeps its value, and gets its moments (as tfjs's Adam gives it).
  const a = tf.variable(tf.ones([2]), true, "adam_a");
  const b = tf.variable(tf.ones([2]), true, "adam_b");
  const adam = tf.train.adam(0.1);
  applyGradients(adam, [{ name: "adam_a", tensor: tf.ones([2]) }, { name: "adam_b", tensor: null as unknown as tf.Tensor }]);
  assert.deepEqual(Array.from(b.dataSync()), [1, 1]);
  assert.ok(a.dataSync()[0] < 1);
  tf.dispose([v, a, b]);
  sgd.dispose();
  adam.dispose();
});
