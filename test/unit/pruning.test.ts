// Pruning (lib/engine/probes/pruning.ts): optimal brain damage against magnitude pruning on an MLP
// trained by the repo's loop, a curve of accuracy over sparsity for both, fine-tuning with the
// masks held, Hutchinson's diagonal checked on a loss whose Hessian is known, and the masks' rules.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/engine/backend.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { applyMasks, maskKeeper, obdSaliency, prunableWeights, pruneMasks, saliencyOf, sparsityOf, type Criterion } from "../../lib/engine/probes/pruning.ts";
import { withSeededRandom } from "../../lib/engine/seeded-random.ts";
import { targetTensor } from "../../lib/engine/train/losses.ts";
import { compileForTraining, evaluate, train, type OptimizerConfig, type TrainData } from "../../lib/engine/train/trainer.ts";
import { modelSpecSchema } from "../../lib/model-spec/model-spec-schema.ts";
import { seededRandom } from "../../lib/random/seeded-random.ts";

let tensorsAtStart = 0;
before(async () => {
  await initBackend("auto");
  tensorsAtStart = tf.memory().numTensors;
});

const D = 10;
const CLASSES = 3;

/**
 * Three classes in 10-D, each a mixture of two unit Gaussians about random centres (so no single
 * linear boundary separates a class): the same rows for the same seed.
 */
function blobs(rows: number, seed: number): TrainData {
  const centres = (() => {
    const r = seededRandom(1234);
    return Array.from({ length: 2 * CLASSES }, () => {
      const c = Array.from({ length: D }, () => r.gaussian());
      const norm = Math.hypot(...c);
      return c.map((v) => (3.5 * v) / norm);
    });
  })();
  const r = seededRandom(seed);
  const x = new Float32Array(rows * D);
  const y = new Float32Array(rows);
  for (let i = 0; i < rows; i++) {
    const cls = r.int(CLASSES);
    const centre = centres[2 * cls + r.int(2)];
    for (let j = 0; j < D; j++) x[i * D + j] = centre[j] + r.gaussian();
    y[i] = cls;
  }
  return { rows, inputs: [{ data: x, shape: [D] }], targets: [{ name: "output", task: "classification", classes: ["a", "b", "c"], data: y, shape: [CLASSES] }] };
}

const tensorsOf = (d: TrainData) => ({
  xs: [tf.tensor2d(d.inputs[0].data, [d.rows, D])],
  ys: [targetTensor(d.targets[0], d.rows, "categoricalCrossentropy", [CLASSES])],
});

const LOSS = "categoricalCrossentropy" as const;
const TRAIN_OPT: OptimizerConfig = { type: "adam", learningRate: 0.01 };
const TUNE_OPT: OptimizerConfig = { type: "adam", learningRate: 0.001 };

interface Trained {
  model: tf.LayersModel;
  data: TrainData;
  sample: { xs: tf.Tensor[]; ys: tf.Tensor[] };
  test: { xs: tf.Tensor[]; ys: tf.Tensor[] };
  /** The trained weights, to start each pruning from. */
  snapshot: tf.Tensor[];
}

let trained: Promise<Trained> | undefined;

/** The MLP trained once for the tests that prune it. */
function trainedMlp(): Promise<Trained> {
  trained ??= (async () => {
    const spec = modelSpecSchema.parse({
      input: { shape: [D] },
      layers: [
        { type: "dense", units: 32, activation: "relu" },
        { type: "dense", units: 32, activation: "relu" },
        { type: "dense", units: CLASSES, activation: "softmax" },
      ],
    });
    const model = await withSeededRandom(7, () => buildModel(spec).model);
    compileForTraining(model, TRAIN_OPT, LOSS);
    const data = blobs(1200, 1);
    await train(model, data, { epochs: 15, batchSize: 32, optimizer: TRAIN_OPT, validationSplit: 0, seed: 3, diagnostics: false }, LOSS);
    const all = tensorsOf(data);
    const sample = { xs: all.xs.map((x) => x.slice(0, 512)), ys: all.ys.map((y) => y.slice(0, 512)) };
    tf.dispose([...all.xs, ...all.ys]);
    return { model, data, sample, test: tensorsOf(blobs(600, 2)), snapshot: model.getWeights().map((w) => tf.clone(w)) };
  })();
  return trained;
}

const accuracy = (t: Trained) => evaluate(t.model, t.test.xs, t.test.ys, LOSS, 256).accuracy;
/** Loss on the sample of training rows: what fine-tuning lowers. */
const trainingLoss = (t: Trained) => evaluate(t.model, t.sample.xs, t.sample.ys, LOSS, 256).loss;
const restore = (t: Trained) => t.model.weights.forEach((w, i) => (w.read() as tf.Variable).assign(t.snapshot[i]));
const OBD = { samples: 64, seed: 11 };

test("pruning to 50% (global) by OBD and by magnitude: sparsity, biases untouched, accuracy kept, fine-tuning holds the masks", async (t) => {
  const m = await trainedMlp();
  const base = accuracy(m);
  t.diagnostic(`trained: test accuracy ${base.toFixed(3)}`);
  assert.ok(base >= 0.9, `trained accuracy ${base}`);
  const names = m.model.trainableWeights.map((w) => w.name);
  const prunable = new Set(prunableWeights(m.model).map((w) => w.name));
  assert.equal(prunable.size, 3);
  assert.ok(names.filter((n) => !prunable.has(n)).every((n) => /bias/.test(n)), names.join(", "));

  for (const criterion of ["obd", "magnitude"] as Criterion[]) {
    restore(m);
    const tensorsBefore = tf.memory().numTensors;
    const saliency = saliencyOf(criterion, m.model, m.sample.xs, m.sample.ys, LOSS, OBD);
    const masks = pruneMasks(saliency, 0.5, "global");
    const achieved = applyMasks(m.model, masks);
    const grown = tf.memory().numTensors - tensorsBefore;
    t.diagnostic(`${criterion}: tensors ${grown >= 0 ? "+" : ""}${grown} across saliency, masks and applyMasks`);
    assert.ok(grown <= 2, `${criterion}: ${grown} tensors more after a prune`);
    assert.ok(Math.abs(achieved - 0.5) <= 0.01, `${criterion}: sparsity ${achieved}`);
    m.model.weights.forEach((w, i) => {
      if (!prunable.has(w.name)) assert.deepEqual(w.read().dataSync(), m.snapshot[i].dataSync(), `${w.name} changed`);
    });
    const pruned = accuracy(m);
    const prunedLoss = trainingLoss(m);

    // Fine-tuning: a fresh optimizer, the masks put back after every step.
    m.model.optimizer.dispose();
    compileForTraining(m.model, TUNE_OPT, LOSS);
    const keeper = maskKeeper(m.model, masks);
    try {
      await train(m.model, m.data, { epochs: 2, batchSize: 32, optimizer: TUNE_OPT, validationSplit: 0, seed: 5, diagnostics: false }, LOSS, { onBatchEnd: () => keeper.reapply() });
    } finally {
      keeper.dispose();
    }
    const tuned = accuracy(m);
    const tunedLoss = trainingLoss(m);
    t.diagnostic(`${criterion}: accuracy ${base.toFixed(3)} → pruned to ${(100 * achieved).toFixed(1)}%: ${pruned.toFixed(3)} → fine-tuned 2 epochs: ${tuned.toFixed(3)} (training loss ${prunedLoss.toFixed(4)} → ${tunedLoss.toFixed(4)})`);
    assert.equal(sparsityOf(m.model), achieved, `${criterion}: sparsity after fine-tuning`);
    for (const w of prunableWeights(m.model)) {
      const mask = masks.get(w.name)!;
      const values = w.read().dataSync();
      assert.ok(mask.every((k, i) => k === 1 || values[i] === 0), `${criterion}: ${w.name} has pruned values back`);
    }
    assert.ok(pruned >= 0.8, `${criterion}: accuracy after pruning ${pruned}`);
    // Recovery: the loss fine-tuning minimizes goes down. Test accuracy may not rise when pruning
    // cost nothing (magnitude at 50% here), so it only must not fall by more than 6 of 600 rows.
    assert.ok(tunedLoss < prunedLoss, `${criterion}: training loss ${prunedLoss} → ${tunedLoss}`);
    assert.ok(tuned >= pruned - 0.01, `${criterion}: fine-tuned ${tuned} < pruned ${pruned}`);
  }
  m.model.optimizer.dispose();
  compileForTraining(m.model, TRAIN_OPT, LOSS);
  restore(m);
});

test("accuracy over sparsity, OBD (16, 64 and 256 Hutchinson vectors) and magnitude (reported, not compared)", async (t) => {
  const m = await trainedMlp();
  const sparsities = [0, 0.5, 0.7, 0.8, 0.9, 0.95];
  const runs: { label: string; criterion: Criterion; samples: number }[] = [
    { label: "obd r=16", criterion: "obd", samples: 16 },
    { label: "obd r=64", criterion: "obd", samples: 64 },
    { label: "obd r=256", criterion: "obd", samples: 256 },
    { label: "magnitude", criterion: "magnitude", samples: 0 },
  ];
  const rows = [`sparsity   ${sparsities.map((s) => s.toFixed(2).padStart(6)).join(" ")}`];
  const first: number[] = [];
  for (const run of runs) {
    restore(m);
    const saliency = saliencyOf(run.criterion, m.model, m.sample.xs, m.sample.ys, LOSS, { ...OBD, samples: run.samples });
    const accuracies = sparsities.map((s) => {
      restore(m);
      const achieved = applyMasks(m.model, pruneMasks(saliency, s, "global"));
      assert.ok(Math.abs(achieved - s) <= 0.01, `${run.label} at ${s}: ${achieved}`);
      return accuracy(m);
    });
    first.push(accuracies[0]);
    rows.push(`${run.label.padEnd(10)} ${accuracies.map((a) => a.toFixed(3).padStart(6)).join(" ")}`);
  }
  restore(m);
  for (const r of rows) t.diagnostic(r);
  // Sparsity 0 is the trained model whatever the criterion.
  assert.ok(first.every((a) => a === first[0]), first.join(", "));
});

test("Hutchinson's diagonal matches the exact Hessian of a linear layer under mean squared error, and the weights come back bit for bit", async (t) => {
  // L = 1/(2nm)·Σᵢⱼ (yᵢⱼ − Σₖ xᵢₖ Wₖⱼ)² (the repo's MSE is ½·mean over rows and outputs), so
  // ∂²L/∂Wₖⱼ² = (1/(nm))·Σᵢ xᵢₖ², the same for every output j, whatever W and y.
  const n = 400;
  const inputs = 5;
  const outputs = 2;
  const r = seededRandom(21);
  const x = new Float32Array(n * inputs);
  const y = new Float32Array(n * outputs);
  for (let i = 0; i < n; i++) {
    const shared = r.gaussian();
    // Features of different scales, some correlated: a Hessian with off-diagonal terms for the estimator's noise.
    for (let k = 0; k < inputs; k++) x[i * inputs + k] = (k + 1) * (r.gaussian() + (k % 2 ? 0.3 * shared : 0));
    for (let j = 0; j < outputs; j++) y[i * outputs + j] = r.gaussian();
  }
  const spec = modelSpecSchema.parse({ input: { shape: [inputs] }, layers: [{ type: "dense", units: outputs, activation: "linear", useBias: false }] });
  const model = await withSeededRandom(3, () => buildModel(spec).model);
  const xs = [tf.tensor2d(x, [n, inputs])];
  const ys = [tf.tensor2d(y, [n, outputs])];
  const [kernel] = prunableWeights(model);
  const w = kernel.read().dataSync().slice();
  const exact = Array.from({ length: inputs * outputs }, (_, idx) => {
    const k = Math.floor(idx / outputs);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += x[i * inputs + k] ** 2;
    return sum / (n * outputs);
  });
  const tensorsBefore = tf.memory().numTensors;
  const saliency = obdSaliency(model, xs, ys, "meanSquaredError", { samples: 256, seed: 5, batchSize: 128 });
  assert.ok(tf.memory().numTensors - tensorsBefore <= 2, `${tf.memory().numTensors - tensorsBefore} tensors more`);
  assert.deepEqual(kernel.read().dataSync(), w, "weights restored exactly");
  const s = saliency.get(kernel.name)!;
  // s = ½·h·w²: back to h where w is not tiny.
  const errors: number[] = [];
  s.forEach((v, idx) => {
    if (Math.abs(w[idx]) < 0.05) return;
    const h = (2 * v) / w[idx] ** 2;
    errors.push(Math.abs(h - exact[idx]) / exact[idx]);
  });
  assert.ok(errors.length >= 6, `only ${errors.length} weights away from 0`);
  const worst = Math.max(...errors);
  const mean = errors.reduce((a, e) => a + e, 0) / errors.length;
  t.diagnostic(`Hutchinson (256 vectors) vs exact diagonal over ${errors.length} of ${s.length} weights: mean relative error ${(100 * mean).toFixed(2)}%, worst ${(100 * worst).toFixed(2)}%`);
  assert.ok(worst < 0.1, `worst relative error ${worst}`);
  tf.dispose([...xs, ...ys]);
  model.dispose();
});

test("pruneMasks: per layer the same share of each, 0 keeps all, 1 prunes all, ties in order, bad sparsity is a RangeError", () => {
  const saliency = new Map([
    ["a/kernel", Float32Array.from([5, 1, 4, 2, 3, 6, 7, 8])],
    ["b/kernel", Float32Array.from([0.1, 0.3, 0.2, 0.4])],
  ]);
  const count = (m: Map<string, Float32Array>, name: string) => m.get(name)!.filter((v) => v === 0).length;
  const perLayer = pruneMasks(saliency, 0.5, "perLayer");
  assert.deepEqual([...perLayer.get("a/kernel")!], [1, 0, 0, 0, 0, 1, 1, 1]);
  assert.equal(count(perLayer, "b/kernel"), 2);
  assert.deepEqual([...perLayer.get("b/kernel")!], [0, 1, 0, 1]);
  // Global: one threshold, so the small saliencies of b go first.
  const global = pruneMasks(saliency, 0.5, "global");
  assert.equal(count(global, "b/kernel"), 4);
  assert.equal(count(global, "a/kernel"), 2);
  for (const scope of ["global", "perLayer"] as const) {
    const none = pruneMasks(saliency, 0, scope);
    const all = pruneMasks(saliency, 1, scope);
    for (const name of saliency.keys()) {
      assert.ok(none.get(name)!.every((v) => v === 1));
      assert.ok(all.get(name)!.every((v) => v === 0));
    }
    for (const bad of [-0.1, 1.5, Number.NaN, Infinity]) assert.throws(() => pruneMasks(saliency, bad, scope), RangeError);
  }
  // Ties: the earlier weight, then the earlier value.
  const tied = pruneMasks(new Map([["x/kernel", new Float32Array(4)], ["y/kernel", new Float32Array(4)]]), 0.5, "global");
  assert.deepEqual([...tied.get("x/kernel")!], [0, 0, 0, 0]);
  assert.deepEqual([...tied.get("y/kernel")!], [1, 1, 1, 1]);
  assert.deepEqual([...pruneMasks(new Map([["z/kernel", new Float32Array(4)]]), 0.5, "perLayer").get("z/kernel")!], [0, 0, 1, 1]);
});

after(async () => {
  if (!trained) return;
  const m = await trained;
  m.model.optimizer.dispose();
  m.model.dispose();
  tf.dispose([...m.sample.xs, ...m.sample.ys, ...m.test.xs, ...m.test.ys, ...m.snapshot]);
  const left = tf.memory().numTensors - tensorsAtStart;
  assert.ok(left <= 2, `${left} tensors left behind`);
});
