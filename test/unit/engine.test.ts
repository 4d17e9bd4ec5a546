import assert from "node:assert/strict";
import { before, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/engine/backend.ts";
import { loadModel, saveModel } from "../../lib/engine/model-io.ts";
import { deriveSeed, mulberry32, permutation, withSeededRandom } from "../../lib/engine/seeded-random.ts";
import { compileForTraining, splitIndices, train, type TrainData } from "../../lib/engine/train/trainer.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { lossFor } from "../../lib/model-spec/objectives.ts";
import { modelSpecSchema } from "../../lib/model-spec/model-spec-schema.ts";

before(async () => {
  await initBackend("auto");
});

test("seeded permutations are permutations, reproducible, and differ between seeds", () => {
  const a = permutation(100, mulberry32(1));
  assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
  assert.deepEqual(a, permutation(100, mulberry32(1)));
  assert.notDeepEqual(a, permutation(100, mulberry32(2)));
  assert.notEqual(deriveSeed(1, 1), deriveSeed(1, 2));
});

test("withSeededRandom restores Math.random even when the function throws", async () => {
  const original = Math.random;
  await assert.rejects(withSeededRandom(1, () => { throw new Error("boom"); }), /boom/);
  assert.equal(Math.random, original);
});

test("the validation split takes every class from a sorted file", () => {
  const { train: t, validation: v } = splitIndices(150, 0.2, 42);
  assert.equal(v.length, 30);
  assert.equal(t.length + v.length, 150);
  const classesInValidation = new Set([...v].map((i) => Math.floor(i / 50)));
  assert.equal(classesInValidation.size, 3);
});

test("the loss follows from the dataset and the output, or the mismatch is explained", () => {
  const cls = { task: "classification" as const, classes: ["a", "b", "c"], targetShape: [1] };
  assert.equal(lossFor(cls, [3]), "categoricalCrossentropy");
  assert.equal(lossFor({ ...cls, classes: ["a", "b"] }, [1]), "binaryCrossentropy");
  assert.equal(lossFor({ task: "regression", classes: [], targetShape: [1] }, [1]), "meanSquaredError");
  assert.equal(lossFor(cls, [3], "sparseCategoricalCrossentropy"), "sparseCategoricalCrossentropy");
  assert.throws(() => lossFor(cls, [3], "meanSquaredError"), /meanSquaredError needs a regression dataset/);
  // Per-pixel classification: an output [H, W, k] takes [H, W] class ids per row.
  assert.equal(lossFor({ ...cls, targetShape: [8, 8] }, [8, 8, 3]), "categoricalCrossentropy");
  assert.throws(() => lossFor({ ...cls, targetShape: [8, 8] }, [4, 4, 3]), /does not fit targets of shape \[8, 8\]/);
  assert.throws(() => lossFor(cls, [2]), /output has 2 units, the dataset has 3 classes/);
  // Class ids uploaded as numbers read as regression: a classifier's output says what to do.
  assert.throws(() => lossFor({ task: "regression", classes: [], targetShape: [1] }, [10]), /output \[10\] has 10 values, the regression dataset has 1 target\(s\) per row; if the labels are class ids, upload the dataset with task=classification/);
});

const spec = modelSpecSchema.parse({
  input: { shape: [2] },
  layers: [{ type: "dense", units: 8, activation: "tanh" }, { type: "batchNormalization" }, { type: "dense", units: 1, activation: "sigmoid" }],
});
/** XOR-like blobs: not linearly separable, learnable by a small MLP. */
function xorData(n = 200): TrainData {
  const random = mulberry32(9);
  const x = new Float32Array(n * 2);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const a = random() > 0.5 ? 1 : 0;
    const b = random() > 0.5 ? 1 : 0;
    x[2 * i] = a + (random() - 0.5) * 0.2;
    x[2 * i + 1] = b + (random() - 0.5) * 0.2;
    y[i] = a ^ b;
  }
  return { rows: n, inputs: [{ data: x, shape: [2] }],
    targets: [{ name: "output", task: "classification", classes: ["0", "1"], data: y, shape: [1] }] };
}

test("binary classification learns XOR, and a saved model predicts exactly as the original", async () => {
  const data = xorData();
  const model = await withSeededRandom(3, () => buildModel(spec).model);
  compileForTraining(model, { type: "adam", learningRate: 0.05 }, "binaryCrossentropy");
  const result = await train(model, data, { epochs: 60, batchSize: 16, optimizer: { type: "adam", learningRate: 0.05 }, validationSplit: 0.25, seed: 1 }, "binaryCrossentropy");
  assert.ok(result.metrics.val_accuracy >= 0.95, JSON.stringify(result.metrics));

  const stored = await saveModel(model, false);
  const restored = await loadModel(stored);
  const x = tf.tensor2d([[0, 0], [0, 1], [1, 0], [1, 1]]);
  const a = (model.predict(x) as tf.Tensor).dataSync();
  const b = (restored.predict(x) as tf.Tensor).dataSync();
  assert.deepEqual([...a], [...b]);
  tf.dispose([x, model, restored] as unknown as tf.Tensor[]);
});

test("a separable convolution with a depth multiplier of 2 saves and loads (tfjs leaves the multiplier out of its config)", async () => {
  const model = buildModel(modelSpecSchema.parse({ input: { shape: [6, 6, 3] }, layers: [{ type: "separableConv2d", filters: 4, kernelSize: 3, depthMultiplier: 2 }, { type: "flatten" }, { type: "dense", units: 2 }] })).model;
  const stored = await saveModel(model, false);
  // What tfjs writes lacks it (the bug repaired at load); were that fixed upstream, this test says so.
  assert.doesNotMatch(JSON.stringify(stored.topology.modelTopology), /depth_multiplier/);
  const restored = await loadModel(stored);
  const x = tf.randomUniform([2, 6, 6, 3], 0, 1, "float32", 5);
  assert.deepEqual([...(restored.predict(x) as tf.Tensor).dataSync()], [...(model.predict(x) as tf.Tensor).dataSync()]);
  tf.dispose([x, model, restored] as unknown as tf.Tensor[]);
});

test("training stops before the next batch when asked", async () => {
  const model = await withSeededRandom(3, () => buildModel(spec).model);
  compileForTraining(model, { type: "sgd", learningRate: 0.1 }, "binaryCrossentropy");
  let batches = 0;
  const result = await train(model, xorData(), { epochs: 5, batchSize: 10, optimizer: { type: "sgd", learningRate: 0.1 }, validationSplit: 0, seed: 1 }, "binaryCrossentropy", {
    shouldStop: () => ++batches > 3,
  });
  assert.equal(result.stopped, true);
  assert.equal(result.lastEpoch, 0);
  assert.equal(batches, 4, "three batches ran, the fourth check stopped it");
});

test("several outputs: weighted losses, metrics per output, and a weight of 0 leaves that head alone; resumes from a checkpoint", async () => {
  const twoHeads = modelSpecSchema.parse({
    inputs: { x: { shape: [2] } },
    nodes: {
      trunk: { type: "dense", units: 8, activation: "tanh", inputs: ["x"] },
      xor: { type: "dense", units: 1, activation: "sigmoid", inputs: ["trunk"] },
      sum: { type: "dense", units: 1, inputs: ["trunk"] },
    },
    outputs: ["xor", "sum"],
  });
  const base = xorData(64);
  const x = base.inputs[0].data;
  const data: TrainData = {
    rows: base.rows, inputs: base.inputs,
    targets: [base.targets[0], { name: "sum", task: "regression", classes: [], data: Float32Array.from({ length: base.rows }, (_, i) => x[2 * i] + x[2 * i + 1]), shape: [1] }],
  };
  const objectives = [{ name: "xor", loss: "binaryCrossentropy" as const, weight: 1 }, { name: "sum", loss: "meanSquaredError" as const, weight: 0 }];
  const model = await withSeededRandom(3, () => buildModel(twoHeads).model);
  compileForTraining(model, { type: "sgd", learningRate: 0.1 }, objectives);
  const sumKernel = () => model.getLayer("sum").getWeights()[0].dataSync().slice();
  const before = sumKernel();
  const cfg = { epochs: 2, batchSize: 16, optimizer: { type: "sgd" as const, learningRate: 0.1 }, validationSplit: 0.25, seed: 1 };
  const r = await train(model, data, cfg, objectives);
  // Validation adds scores per output: regression ones for `sum`, macro and per-class ones for `xor` (classes "0" and "1").
  const perClass = ["f1", "precision", "recall"].flatMap((m) => [`val_xor_${m}`, `val_xor_${m}/0`, `val_xor_${m}/1`]);
  assert.deepEqual(Object.keys(r.metrics).sort(), ["loss", "sum_loss", "val_loss", "val_sum_loss", "val_sum_mae", "val_sum_mse", "val_sum_r2", "val_xor_accuracy", "val_xor_loss", ...perClass, "xor_accuracy", "xor_loss"].sort());
  assert.ok(Math.abs(r.metrics.val_loss - r.metrics.val_xor_loss) < 1e-6, "a weight of 0 counts nothing in the total");
  assert.deepEqual(sumKernel(), before, "no gradient reaches a head of weight 0");

  // A checkpoint (with the optimizer) of a two-output model loads and trains on, like one-output ones.
  const restored = await loadModel(await saveModel(model, true));
  assert.ok(restored.optimizer, "the optimizer comes back with the checkpoint");
  const more = await train(restored, data, { ...cfg, epochs: 3 }, objectives, {}, 2);
  assert.equal(more.lastEpoch, 3);
  assert.ok(Number.isFinite(more.metrics.loss));
  tf.dispose([model, restored] as unknown as tf.Tensor[]);
});

test("contrastive loss: ½(1−y)d² + ½y·max(0, m−d)², and a pair is similar below m/2", async () => {
  const spec = modelSpecSchema.parse({ input: { shape: [1] }, layers: [{ type: "dense", units: 1, kernelInitializer: "ones", biasInitializer: "zeros" }], loss: "contrastive" });
  const { model } = buildModel(spec);
  const objectives = [{ name: "output", loss: "contrastive" as const, weight: 1, margin: 1 }];
  compileForTraining(model, { type: "sgd", learningRate: 0 }, objectives);
  // The model outputs its input: these are the distances.
  const d = [0.2, 0.8, 0.3, 1.5];
  const y = [0, 0, 1, 1];
  const data: TrainData = { rows: 4, inputs: [{ data: Float32Array.from(d), shape: [1] }], targets: [{ name: "output", task: "regression", classes: [], data: Float32Array.from(y), shape: [1] }] };
  const r = await train(model, data, { epochs: 1, batchSize: 4, optimizer: { type: "sgd", learningRate: 0 }, validationSplit: 0, seed: 1 }, objectives);
  const want = (0.5 * 0.2 ** 2 + 0.5 * 0.8 ** 2 + 0.5 * 0.7 ** 2 + 0) / 4;
  assert.ok(Math.abs(r.metrics.loss - want) < 1e-6, `${r.metrics.loss} vs ${want}`);
  assert.equal(r.metrics.accuracy, 0.5, "0.2 similar ✓, 0.8 similar ✗, 0.3 dissimilar ✗, 1.5 dissimilar ✓");
  // A wider margin pushes harder: the dissimilar pair at 1.5 now costs ½(2−1.5)².
  const wide = await train(model, data, { epochs: 1, batchSize: 4, optimizer: { type: "sgd", learningRate: 0 }, validationSplit: 0, seed: 1 }, [{ ...objectives[0], margin: 2 }]);
  assert.ok(Math.abs(wide.metrics.loss - (0.5 * 0.04 + 0.5 * 0.64 + 0.5 * 1.7 ** 2 + 0.5 * 0.25) / 4) < 1e-6, String(wide.metrics.loss));
  model.dispose();

  assert.equal(lossFor({ task: "regression", classes: [], targetShape: [1] }, [1], "contrastive"), "contrastive");
  assert.equal(lossFor({ task: "classification", classes: ["0", "1"], targetShape: [1] }, [1], "contrastive"), "contrastive");
  assert.throws(() => lossFor({ task: "regression", classes: [], targetShape: [1] }, [3], "contrastive"), /contrastive needs one value per pair \(a distance\); the output has shape \[3\]/);
  assert.throws(() => lossFor({ task: "classification", classes: ["different", "same"], targetShape: [1] }, [1], "contrastive"), /needs labels 0 \(similar\) and 1 \(dissimilar\)/);
});
