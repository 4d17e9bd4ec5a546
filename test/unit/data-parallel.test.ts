// Data-parallel training (lib/engine/train/data-parallel.ts) with real worker threads, each with its
// own wasm backend: two threads compute what one computes (the gradients of the whole batch's mean
// loss, up to the rounding of the sums), the same seed and thread count give the same bits, and
// the difference batch normalization and dropout make is what the module says it is.
import assert from "node:assert/strict";
import { before, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/engine/backend.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { mulberry32, withSeededRandom } from "../../lib/engine/seeded-random.ts";
import { compileForTraining, train, type EpochMetrics, type TrainData } from "../../lib/engine/train/trainer.ts";
import { modelSpecSchema } from "../../lib/model-spec/model-spec-schema.ts";
import { threadsFor } from "../../lib/training/job-runner.ts";

before(async () => {
  await initBackend("wasm");
});

/** 10×10 grey images of two classes: a bright bar across (class 0) or down (class 1), in noise; 150 rows. */
function bars(): TrainData {
  const random = mulberry32(5);
  const rows = 150;
  const x = new Float32Array(rows * 100);
  const y = new Float32Array(rows);
  for (let i = 0; i < rows; i++) {
    y[i] = i % 2;
    const at = 2 + Math.floor(random() * 6);
    for (let p = 0; p < 100; p++) {
      const [r, c] = [Math.floor(p / 10), p % 10];
      x[i * 100 + p] = 0.3 * random() + ((y[i] === 0 ? r : c) === at ? 1 : 0);
    }
  }
  return { rows, inputs: [{ data: x, shape: [10, 10, 1] }], targets: [{ name: "output", task: "classification", classes: ["across", "down"], data: y, shape: [1] }] };
}

const CONV = [
  { type: "conv2d", filters: 4, kernelSize: 3, activation: "relu" },
  { type: "maxPooling2d", poolSize: 2 },
  { type: "flatten" },
  { type: "dense", units: 8, activation: "tanh" },
  { type: "dense", units: 2, activation: "softmax" },
];
const WITH_NORM_AND_DROPOUT = [CONV[0], { type: "batchNormalization" }, CONV[1], CONV[2], CONV[3], { type: "dropout", rate: 0.3 }, CONV[4]];

/** Trains the layers on `data` for `epochs` epochs (batch 32: 150 rows end in a batch of 22) on `threads`. */
async function run(layers: object[], data: TrainData, threads: number, epochs = 3): Promise<{ weights: Float32Array[]; metrics: EpochMetrics[] }> {
  const model = await withSeededRandom(3, () => buildModel(modelSpecSchema.parse({ input: { shape: [10, 10, 1] }, layers })).model);
  const optimizer = { type: "adam" as const, learningRate: 0.01 };
  compileForTraining(model, optimizer, "sparseCategoricalCrossentropy");
  const metrics: EpochMetrics[] = [];
  await train(model, data, { epochs, batchSize: 32, optimizer, validationSplit: 0.2, seed: 9, threads, diagnostics: false }, "sparseCategoricalCrossentropy", {
    onEpochEnd: async (_epoch, m) => void metrics.push(m),
  });
  const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
  model.optimizer.dispose();
  model.dispose();
  return { weights, metrics };
}

const maxRelative = (a: Float32Array[], b: Float32Array[]) => Math.max(...a.flatMap((w, i) => Array.from(w, (x, k) => Math.abs(x - b[i][k]) / (1e-3 + Math.abs(x)))));

test("two threads train what one trains: the same weights and metrics up to rounding, and the same bits run to run", async () => {
  const data = bars();
  const tensors = tf.memory().numTensors;
  const one = await run(CONV, data, 1);
  const two = await run(CONV, data, 2);
  const again = await run(CONV, data, 2);
  assert.equal(tf.memory().numTensors, tensors, "tensors leaked");
  const drift = maxRelative(one.weights, two.weights);
  assert.ok(drift < 1e-3, `weights of one and two threads differ by ${drift} (relative)`);
  assert.ok(drift > 0, "two threads gave one thread's exact bits: were the batches shared at all?");
  one.metrics.forEach((m, e) => {
    assert.ok(Math.abs(m.loss - two.metrics[e].loss) < 1e-5, `epoch ${e + 1} loss ${m.loss} vs ${two.metrics[e].loss}`);
    assert.equal(m.accuracy, two.metrics[e].accuracy, `epoch ${e + 1} accuracy`);
    assert.equal(m.val_accuracy, two.metrics[e].val_accuracy, `epoch ${e + 1} val_accuracy`);
  });
  assert.ok(two.metrics[2].val_accuracy > 0.9, `it learned: val_accuracy ${two.metrics[2].val_accuracy}`);
  assert.deepEqual(two.weights, again.weights);
  assert.deepEqual(two.metrics, again.metrics);
});

test("with batch normalization and dropout: per-share statistics and masks, so not one thread's numbers, but the same learning, and repeatable", async () => {
  const data = bars();
  const one = await run(WITH_NORM_AND_DROPOUT, data, 1, 5);
  const two = await run(WITH_NORM_AND_DROPOUT, data, 2, 5);
  const again = await run(WITH_NORM_AND_DROPOUT, data, 2, 5);
  assert.ok(maxRelative(one.weights, two.weights) > 1e-3, "batch norm over halves should not match the whole batch's to rounding");
  assert.deepEqual(two.weights, again.weights);
  // Training accuracy: a few dozen steps leave batch norm's moving averages (what validation uses) far from settled, on any thread count.
  assert.ok(one.metrics[4].accuracy > 0.9 && two.metrics[4].accuracy > 0.9, `accuracy ${one.metrics.map((m) => m.accuracy)} (one thread), ${two.metrics.map((m) => m.accuracy)} (two)`);
});

test("threads a job trains on: as asked within the worker's cap; auto: the cap for convolutions with 16 rows a thread, else one", async () => {
  const model = (layers: object[]) => buildModel(modelSpecSchema.parse({ input: { shape: [10, 10, 1] }, layers })).model;
  const conv = model(CONV);
  const dense = model([{ type: "flatten" }, { type: "dense", units: 2, activation: "softmax" }]);
  assert.equal(threadsFor({ threads: undefined, batchSize: 64 }, conv, 4), 1);
  assert.equal(threadsFor({ threads: 3, batchSize: 64 }, dense, 4), 3);
  assert.equal(threadsFor({ threads: 8, batchSize: 64 }, conv, 2), 2);
  assert.equal(threadsFor({ threads: "auto", batchSize: 64 }, conv, 2), 2);
  assert.equal(threadsFor({ threads: "auto", batchSize: 64 }, conv, 8), 4);
  assert.equal(threadsFor({ threads: "auto", batchSize: 16 }, conv, 8), 1);
  assert.equal(threadsFor({ threads: "auto", batchSize: 512 }, dense, 8), 1);
  conv.dispose();
  dense.dispose();
});
