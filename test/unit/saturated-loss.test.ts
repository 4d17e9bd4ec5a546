// Cross-entropy from logits (issue 9, "numerically sound losses"). A softmax or sigmoid that starts
// saturated on the wrong answer (probabilities exactly 0 and 1 in float32) must still learn: the
// clipped form -Σ y·log(clip(p, 1e-7, 1-1e-7)) has a gradient of exactly zero there and never
// moves, which is what the issue measured (loss stuck at 11.61). The loss values themselves match
// the textbook formulas where those are finite.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/engine/backend.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { withSeededRandom } from "../../lib/engine/seeded-random.ts";
import { lossFromLogits } from "../../lib/engine/train/losses.ts";
import { compileForTraining, train, type TrainData } from "../../lib/engine/train/trainer.ts";
import { modelSpecSchema } from "../../lib/model-spec/model-spec-schema.ts";

before(async () => {
  await initBackend("auto");
});

/** Two separable classes in two features: class = x0 > 0. */
function blobs(n = 200): TrainData {
  const x = new Float32Array(n * 2);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 2;
    x[2 * i] = (c ? 1 : -1) * (1 + (i % 7) / 7);
    x[2 * i + 1] = ((i * 37) % 11) / 11 - 0.5;
    y[i] = c;
  }
  return { rows: n, inputs: [{ data: x, shape: [2] }], targets: [{ data: y, classes: ["0", "1"], shape: [1] } as never] };
}

/** Sets the output layer's bias so that every row starts saturated on class 0 (softmax) or on 0 (sigmoid), far beyond float32's resolution. */
function saturate(model: tf.LayersModel, bias: number[]): void {
  const out = model.layers[model.layers.length - 1];
  const [kernel] = out.getWeights();
  out.setWeights([tf.zerosLike(kernel), tf.tensor1d(bias)]);
}

describe("a saturated start still learns", () => {
  for (const [what, units, activation, loss, bias] of [
    ["softmax, categorical cross-entropy", 2, "softmax", "categoricalCrossentropy", [60, -60]],
    ["sigmoid, binary cross-entropy", 1, "sigmoid", "binaryCrossentropy", [-120]],
  ] as const) {
    test(what, async () => {
      const spec = modelSpecSchema.parse({ input: { shape: [2] }, layers: [{ type: "dense", units, activation }] });
      const model = await withSeededRandom(3, () => buildModel(spec).model);
      saturate(model, [...bias]);
      const data = blobs();
      const probabilities = (model.predict(tf.tensor2d(data.inputs[0].data as Float32Array, [data.rows, 2])) as tf.Tensor).dataSync();
      // Saturated: every row's probability of class 1 is below the clip (1e-7), 0 in float32 here.
      const ofClass1 = units === 2 ? probabilities.filter((_, i) => i % 2 === 1) : probabilities;
      assert.ok(ofClass1.every((p) => p < 1e-7), `the start is saturated: ${[...ofClass1.slice(0, 4)]}`);
      // The clipped form's gradient at this start is exactly zero: it could never leave it.
      const out = model.layers[model.layers.length - 1];
      const xs = tf.tensor2d(data.inputs[0].data as Float32Array, [data.rows, 2]);
      const labels = units === 2 ? tf.oneHot(tf.tensor1d(data.targets[0].data as Float32Array, "int32"), 2).toFloat() : tf.tensor2d(data.targets[0].data as Float32Array, [data.rows, 1]);
      const clipped = tf.variableGrads(() => {
        const p = tf.clipByValue(model.apply(xs) as tf.Tensor, 1e-7, 1 - 1e-7);
        const ce = units === 2 ? tf.sum(tf.mul(labels, tf.log(p)), -1) : tf.add(tf.mul(labels, tf.log(p)), tf.mul(tf.sub(1, labels), tf.log(tf.sub(1, p))));
        return tf.neg(tf.mean(ce)) as tf.Scalar;
      }, out.trainableWeights.map((w) => w.read() as tf.Variable));
      assert.ok(Object.values(clipped.grads).every((g) => g.abs().max().dataSync()[0] === 0), "the clipped loss has no gradient here");

      const optimizer = { type: "sgd" as const, learningRate: 2 };
      compileForTraining(model, optimizer, loss);
      const seen: number[] = [];
      const result = await train(model, data, { epochs: 12, batchSize: 20, optimizer, validationSplit: 0.2, seed: 1 }, loss, {
        onEpochEnd: async (_e, m) => void seen.push(m.loss),
      });
      // The first epoch's loss is large (the logit gap is 120), finite; then it falls to near zero.
      assert.ok(Number.isFinite(seen[0]) && seen[0] > 10, `first loss ${seen[0]}`);
      assert.ok(seen.at(-1)! < 1 && seen.at(-1)! < seen[0] / 20, `losses ${seen.map((l) => l.toFixed(3)).join(", ")}`);
      assert.ok(result.metrics.val_accuracy >= 0.95, `val_accuracy ${result.metrics.val_accuracy}`);
    });
  }
});

test("the losses from logits equal the textbook formulas where probabilities are finite, and stay finite where they are not", () => {
  const z = tf.tensor2d([[2, -1, 0.5], [0.1, 0.2, 0.3]]);
  const y = tf.tensor2d([[1, 0, 0], [0, 0, 1]]);
  const p = tf.softmax(z).arraySync() as number[][];
  const expected = -(Math.log(p[0][0]) + Math.log(p[1][2])) / 2;
  assert.ok(Math.abs(lossFromLogits("categoricalCrossentropy", y, z).dataSync()[0] - expected) < 1e-5);
  const zb = tf.tensor2d([[3], [-2], [0]]);
  const yb = tf.tensor2d([[1], [1], [0]]);
  const s = (v: number) => 1 / (1 + Math.exp(-v));
  const bce = -(Math.log(s(3)) + Math.log(s(-2)) + Math.log(1 - s(0))) / 3;
  assert.ok(Math.abs(lossFromLogits("binaryCrossentropy", yb, zb).dataSync()[0] - bce) < 1e-5);
  // Logits of ±1000: the probabilities are exactly 0 and 1, the loss is the logit gap, not Infinity or a clipped 16.1.
  assert.ok(Math.abs(lossFromLogits("categoricalCrossentropy", tf.tensor2d([[0, 1]]), tf.tensor2d([[1000, -1000]])).dataSync()[0] - 2000) < 1e-2);
  assert.ok(Math.abs(lossFromLogits("binaryCrossentropy", tf.tensor2d([[1]]), tf.tensor2d([[-1000]])).dataSync()[0] - 1000) < 1e-2);
});
