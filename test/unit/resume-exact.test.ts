// Resume is exact: training N epochs straight and training k epochs, checkpointing (saveModel with
// the optimizer, through JSON as the database stores it), loading and training on to N give the
// same bits — every weight, every optimizer slot, every epoch's metrics — for every optimizer, on
// a model with batch normalization and dropout.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { before, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/engine/backend.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { loadModel, saveModel, type StoredModel } from "../../lib/engine/model-io.ts";
import { deriveSeed, withSeededRandom } from "../../lib/engine/seeded-random.ts";
import { compileForTraining, train, type EpochMetrics, type OptimizerConfig, type TrainData } from "../../lib/engine/train/trainer.ts";
import { modelSpecSchema } from "../../lib/model-spec/model-spec-schema.ts";

before(async () => {
  await initBackend("auto");
});

function iris(): TrainData {
  const lines = readFileSync(new URL("../../data/iris.csv", import.meta.url), "utf8").trim().split("\n").slice(1);
  const classes = [...new Set(lines.map((l) => l.split(",")[4]))];
  const x = new Float32Array(lines.length * 4);
  const y = new Float32Array(lines.length);
  lines.forEach((l, i) => {
    const cells = l.split(",");
    for (let j = 0; j < 4; j++) x[i * 4 + j] = Number(cells[j]);
    y[i] = classes.indexOf(cells[4]);
  });
  return { rows: lines.length, inputs: [{ data: x, shape: [4] }], targets: [{ name: "output", task: "classification", classes, data: y, shape: [1] }] };
}

const spec = modelSpecSchema.parse({
  input: { shape: [4] },
  layers: [
    { type: "dense", units: 16, activation: "relu" },
    { type: "batchNormalization" },
    { type: "dropout", rate: 0.2 },
    { type: "dense", units: 3, activation: "softmax" },
  ],
});
const EPOCHS = 12;
const RESUME_AT = [1, 3, 7, 11];
const SEED = 5;
const data = iris();

/** What the job runner does: build under the seed, compile, train; a checkpoint (with the optimizer) after every epoch. */
async function straightRun(optimizer: OptimizerConfig) {
  const model = await withSeededRandom(deriveSeed(SEED, 0), () => buildModel(spec).model);
  compileForTraining(model, optimizer, "categoricalCrossentropy");
  const checkpoints: StoredModel[] = [];
  const metrics: EpochMetrics[] = [];
  await train(model, data, config(optimizer), "categoricalCrossentropy", {
    onEpochEnd: async (epoch, m) => {
      metrics[epoch] = m;
      checkpoints[epoch] = await saveModel(model, true);
    },
  });
  model.dispose();
  return { checkpoints, metrics };
}

const config = (optimizer: OptimizerConfig) => ({ epochs: EPOCHS, batchSize: 8, optimizer, validationSplit: 0.2, seed: SEED });

/** A checkpoint as it comes back from Postgres: JSON columns re-parsed, the bytes copied. */
const throughDatabase = (s: StoredModel): StoredModel => ({
  topology: JSON.parse(JSON.stringify(s.topology)),
  weightSpecs: JSON.parse(JSON.stringify(s.weightSpecs)),
  weights: new Uint8Array(s.weights),
});

/** What the job runner does on resume: load the checkpoint (its trainingConfig compiles it) and train from its epoch. */
async function resumedRun(optimizer: OptimizerConfig, checkpoint: StoredModel, from: number) {
  const model = await loadModel(throughDatabase(checkpoint));
  const checkpoints: StoredModel[] = [];
  const metrics: EpochMetrics[] = [];
  await train(model, data, config(optimizer), "categoricalCrossentropy", {
    onEpochEnd: async (epoch, m) => {
      metrics[epoch] = m;
      checkpoints[epoch] = await saveModel(model, true);
    },
  }, from);
  model.dispose();
  return { checkpoints, metrics };
}

/** Bitwise comparison of two checkpoints' weight buffers (model weights, then optimizer slots). */
function firstDifference(a: StoredModel, b: StoredModel): string | undefined {
  assert.deepEqual(b.weightSpecs.map((s) => s.name), a.weightSpecs.map((s) => s.name));
  let offset = 0;
  for (const s of a.weightSpecs) {
    const n = s.shape.reduce((x, y) => x * y, 1);
    const bytes = n * 4;
    const x = new Float32Array(a.weights.slice(offset, offset + bytes).buffer);
    const y = new Float32Array(b.weights.slice(offset, offset + bytes).buffer);
    if (!Buffer.from(x.buffer).equals(Buffer.from(y.buffer))) {
      let max = 0;
      x.forEach((v, i) => (max = Math.max(max, Math.abs(v - y[i]))));
      return `${s.name}${s.group ? ` (${s.group})` : ""} differs, by up to ${max}`;
    }
    offset += bytes;
  }
  return undefined;
}

const OPTIMIZERS: Record<string, OptimizerConfig> = {
  sgd: { type: "sgd", learningRate: 0.05 },
  momentum: { type: "sgd", learningRate: 0.02, momentum: 0.9 },
  nesterov: { type: "sgd", learningRate: 0.02, momentum: 0.9, nesterov: true },
  adam: { type: "adam", learningRate: 0.01 },
  "adam with weight decay": { type: "adam", learningRate: 0.01, weightDecay: 0.01 },
  rmsprop: { type: "rmsprop", learningRate: 0.005, momentum: 0.5 },
  adagrad: { type: "adagrad", learningRate: 0.05 },
};

for (const [name, optimizer] of Object.entries(OPTIMIZERS)) {
  test(`${name}: resuming from epoch ${RESUME_AT.join(", ")} ends bit for bit where the uninterrupted run ends`, async () => {
    const straight = await straightRun(optimizer);
    for (const k of RESUME_AT) {
      const resumed = await resumedRun(optimizer, straight.checkpoints[k], k);
      for (let epoch = k + 1; epoch <= EPOCHS; epoch++) {
        const diff = firstDifference(straight.checkpoints[epoch], resumed.checkpoints[epoch]);
        assert.equal(diff, undefined, `resumed from epoch ${k}, after epoch ${epoch}: ${diff}`);
        assert.deepEqual(resumed.metrics[epoch], straight.metrics[epoch], `resumed from epoch ${k}: the metrics of epoch ${epoch}`);
        assert.deepEqual(resumed.checkpoints[epoch].topology, straight.checkpoints[epoch].topology, `resumed from epoch ${k}: the checkpoint JSON of epoch ${epoch}`);
      }
    }
  });
}

test("a checkpoint written before the optimizer's extra state was stored still loads and resumes", async () => {
  for (const optimizer of [OPTIMIZERS.adam, OPTIMIZERS.momentum]) {
    const straight = await straightRun(optimizer);
    const old = throughDatabase(straight.checkpoints[3]);
    const { optimizerState: _, ...topology } = old.topology as StoredModel["topology"] & { optimizerState?: unknown };
    const model = await loadModel({ ...old, topology });
    assert.equal(model.optimizer.iterations, 3 * 15, "the iteration count comes back from the optimizer's weights");
    const r = await train(model, data, config(optimizer), "categoricalCrossentropy", {}, 3);
    assert.equal(r.lastEpoch, EPOCHS);
    assert.ok(Number.isFinite(r.metrics.loss));
    if (optimizer.type === "sgd") {
      // Momentum keeps nothing beyond its slots: even an old checkpoint resumes exactly.
      assert.equal(firstDifference(straight.checkpoints[EPOCHS], await saveModel(model, true)), undefined);
    }
    model.dispose();
  }
});

test("checkpoints only carry optimizer state when the optimizer is included", async () => {
  const model = await withSeededRandom(1, () => buildModel(spec).model);
  compileForTraining(model, OPTIMIZERS.adam, "categoricalCrossentropy");
  await train(model, data, { ...config(OPTIMIZERS.adam), epochs: 1 }, "categoricalCrossentropy");
  const withOptimizer = await saveModel(model, true);
  const withoutOptimizer = await saveModel(model, false);
  assert.ok("optimizerState" in withOptimizer.topology);
  assert.deepEqual(Object.keys(withoutOptimizer.topology), ["modelTopology"]);
  const restored = await loadModel(withoutOptimizer);
  assert.equal(restored.optimizer, undefined);
  tf.dispose([model, restored] as unknown as tf.Tensor[]);
});

test("suspended inside an epoch and resumed from that checkpoint, training ends bit for bit where the uninterrupted run ends", async () => {
  for (const optimizer of [OPTIMIZERS.adam, OPTIMIZERS.momentum]) {
    const straight = await straightRun(optimizer);
    // Suspend in epoch 4 before its 6th batch (5 done), as a pause or a worker shutting down does.
    const model = await withSeededRandom(deriveSeed(SEED, 0), () => buildModel(spec).model);
    compileForTraining(model, optimizer, "categoricalCrossentropy");
    let polls = 0;
    let mid: { checkpoint: StoredModel; epoch: number; within: import("../../lib/engine/train/trainer.ts").WithinEpoch } | undefined;
    const first = await train(model, data, config(optimizer), "categoricalCrossentropy", {
      shouldStop: () => (++polls === 3 * 15 + 6 ? "suspend" : polls % 7 === 0 ? "checkpoint" : false),
      onCheckpoint: async (epoch, within) => {
        mid = { checkpoint: await saveModel(model, true), epoch, within: JSON.parse(JSON.stringify(within)) };
      },
    });
    model.dispose();
    assert.deepEqual(first.suspended, { epoch: 4, within: mid!.within });
    assert.equal(mid!.within.batch, 5);
    assert.equal(first.lastEpoch, 3);
    const resumed = await loadModel(throughDatabase(mid!.checkpoint));
    const metrics: EpochMetrics[] = [];
    let last: StoredModel | undefined;
    await train(resumed, data, config(optimizer), "categoricalCrossentropy", {
      onEpochEnd: async (epoch, m) => {
        metrics[epoch] = m;
        last = await saveModel(resumed, true);
      },
    }, mid!.epoch - 1, mid!.within);
    resumed.dispose();
    assert.deepEqual(metrics[4], straight.metrics[4], "the interrupted epoch's metrics count the batches before and after the suspension");
    assert.deepEqual(metrics[EPOCHS], straight.metrics[EPOCHS]);
    // Every weight and optimizer slot, bit for bit (slot names may carry a suffix: a second model was built in this process).
    assert.deepEqual(last!.weightSpecs.map((w) => w.shape), straight.checkpoints[EPOCHS].weightSpecs.map((w) => w.shape));
    assert.ok(Buffer.from(last!.weights).equals(Buffer.from(straight.checkpoints[EPOCHS].weights)), "the weights and optimizer state differ");
  }
});
