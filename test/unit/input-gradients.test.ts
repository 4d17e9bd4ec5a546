// A convolution fed by a model input skips the input's gradient while training, with the same
// outputs and weight gradients (lib/engine/train/input-gradients.ts).
import assert from "node:assert/strict";
import { before, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { withSeededRandom } from "../../lib/engine/seeded-random.ts";
import { skipInputGradients } from "../../lib/engine/train/input-gradients.ts";
import { renderTemplate } from "../../lib/model-spec/templates/index.ts";

before(async () => {
  assert.equal(await tf.setBackend("cpu"), true);
});

const lenet = () => withSeededRandom(3, () => buildModel(renderTemplate("lenet5", { inputShape: [28, 28, 1], classes: 10 })).model);
const batch = () => tf.tensor4d(Float32Array.from({ length: 8 * 784 }, (_, i) => Math.sin(i * 0.37)), [8, 28, 28, 1]);
const labels = () => tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], "int32"), 10);

/** The loss's gradients for every trainable weight, and which kernels the step ran. */
async function step(model: tf.LayersModel): Promise<{ loss: number; grads: Float32Array[]; kernels: string[] }> {
  const x = batch();
  const y = labels();
  let result: { loss: number; grads: Float32Array[] } | undefined;
  const info = await tf.profile(() => {
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.metrics.categoricalCrossentropy(y, model.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar);
    result = { loss: value.dataSync()[0], grads: Object.keys(grads).sort().map((k) => Float32Array.from(grads[k].dataSync() as Float32Array)) };
    tf.dispose([value, ...Object.values(grads)]);
  });
  tf.dispose([x, y]);
  return { ...result!, kernels: info.kernels.map((k) => k.name) };
}

test("LeNet-5's first convolution no longer computes the images' gradient; loss and weight gradients are unchanged", async () => {
  const plain = await lenet();
  const patched = await lenet();
  const before = await step(plain);
  const undo = skipInputGradients(patched);
  const after = await step(patched);
  const count = (ks: string[]) => ks.filter((k) => k === "Conv2DBackpropInput").length;
  assert.equal(count(before.kernels), 2, "both convolutions' input gradients, without the patch");
  assert.equal(count(after.kernels), 1, "only the second convolution's, with it");
  assert.ok(Math.abs(after.loss - before.loss) <= 1e-6 * Math.abs(before.loss), `loss ${after.loss} vs ${before.loss}`);
  assert.equal(after.grads.length, before.grads.length);
  after.grads.forEach((g, k) => {
    let scale = 0;
    for (const v of before.grads[k]) scale = Math.max(scale, Math.abs(v));
    g.forEach((v, i) => assert.ok(Math.abs(v - before.grads[k][i]) <= 1e-5 * scale, `weight ${k}[${i}]: ${v} vs ${before.grads[k][i]}`));
  });
  // Predictions are the same too; undone, the layer is its own class's again.
  const x = batch();
  const a = (plain.predict(x) as tf.Tensor).dataSync();
  const b = (patched.predict(x) as tf.Tensor).dataSync();
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) <= 1e-6, `prediction ${i}`));
  undo();
  const conv = patched.layers.find((l) => l.getClassName() === "Conv2D")!;
  assert.equal(Object.prototype.hasOwnProperty.call(conv, "call"), false);
  tf.dispose(x);
  plain.dispose();
  patched.dispose();
});

test("an input gradient asked for (adversarial examples) is still computed, and right", async () => {
  const model = await lenet();
  const x = batch();
  const y = labels();
  const grad = () => tf.grad((input: tf.Tensor) => tf.mean(tf.metrics.categoricalCrossentropy(y, model.apply(input) as tf.Tensor)) as tf.Scalar)(x).dataSync();
  const expected = Float32Array.from(grad());
  const undo = skipInputGradients(model);
  const got = grad();
  undo();
  let scale = 0;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  assert.ok(scale > 0);
  got.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= 1e-5 * scale, `${i}: ${v} vs ${expected[i]}`));
  tf.dispose([x, y]);
  model.dispose();
});
