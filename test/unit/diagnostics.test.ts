// Diagnostics (issue 9, "Diagnose"): each textbook failure mode provoked on purpose raises its
// warning, through the real training loop on the real tfjs backend, and a healthy run stays quiet.
// - vanishing gradients: a deep sigmoid MLP;
// - exploding gradients: gradient descent on a quadratic with a rate past its stability limit;
// - dead ReLUs: a ReLU layer whose bias is hugely negative;
// plus the measurements themselves (per-layer norms, update ratios, dead and saturated shares).
import assert from "node:assert/strict";
import { before, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/engine/backend.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { withSeededRandom } from "../../lib/engine/seeded-random.ts";
import type { DiagnosticWarning, EpochDiagnostics } from "../../lib/engine/train/diagnostics.ts";
import { compileForTraining, train, type TrainData } from "../../lib/engine/train/trainer.ts";
import type { LossName, OptimizerConfig } from "../../lib/engine/train/train-types.ts";
import { modelSpecSchema } from "../../lib/model-spec/model-spec-schema.ts";
import { mulberry32 } from "../../lib/random/seeded-random.ts";

before(async () => {
  await initBackend("auto");
});

/** Two classes in 4 features (class = sign of the first), or a regression y = 2·x0 (standardized x). */
function data(n: number, task: "classification" | "regression"): TrainData {
  const random = mulberry32(4);
  const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const x = new Float32Array(n * 4);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 4; j++) x[4 * i + j] = normal();
    y[i] = task === "classification" ? (x[4 * i] > 0 ? 1 : 0) : 2 * x[4 * i];
  }
  const target = task === "classification" ? { data: y, classes: ["a", "b"], shape: [1] } : { data: y, classes: [], shape: [1] };
  return { rows: n, inputs: [{ data: x, shape: [4] }], targets: [target as never] };
}

async function run(layers: object[], d: TrainData, loss: LossName, optimizer: OptimizerConfig, epochs: number, batchSize: number, prepare?: (m: tf.LayersModel) => void) {
  const spec = modelSpecSchema.parse({ input: { shape: [4] }, layers });
  const model = await withSeededRandom(7, () => buildModel(spec).model);
  prepare?.(model);
  compileForTraining(model, optimizer, loss);
  const series: EpochDiagnostics[] = [];
  const warnings: DiagnosticWarning[] = [];
  await train(model, d, { epochs, batchSize, optimizer, validationSplit: 0.25, seed: 2 }, loss, {
    onEpochEnd: async (_e, _m, _v, health) => {
      series.push(health!.diagnostics);
      warnings.push(...health!.warnings);
    },
  });
  model.dispose();
  return { series, warnings };
}

test("a deep sigmoid MLP: vanishing gradients, first layer orders of magnitude below the last", async () => {
  const deep = [...Array.from({ length: 8 }, () => ({ type: "dense", units: 16, activation: "sigmoid" })), { type: "dense", units: 2, activation: "softmax" }];
  const { series, warnings } = await run(deep, data(256, "classification"), "categoricalCrossentropy", { type: "sgd", learningRate: 0.1 }, 1, 32);
  const grads = series[0].layers.filter((l) => l.gradNorm !== undefined).map((l) => l.gradNorm!);
  assert.equal(grads.length, 9);
  assert.ok(grads[0] < 1e-3 * grads[8], `grad norms by layer: ${grads.map((g) => g.toExponential(1)).join(", ")}`);
  const w = warnings.find((x) => x.kind === "vanishingGradients");
  assert.ok(w, JSON.stringify(warnings));
  assert.equal(w.epoch, 1);
  assert.match(w.message, /vanishing gradients: the first layer '.+' gets a gradient .* times the last layer's/);
});

test("a rate past the stability limit: exploding gradients, raised before the loss overflows", async () => {
  // ½·mean((w·x + b − y)²) with unit-variance x: each full-batch step multiplies the error by |1 − rate| = 3.
  const { series, warnings } = await run([{ type: "dense", units: 1, activation: "linear" }], data(128, "regression"), "meanSquaredError", { type: "sgd", learningRate: 4 }, 6, 1000);
  const norms = series.map((s) => s.gradNorm);
  assert.ok(norms.every((g, i) => i === 0 || g > norms[i - 1]), `norms ${norms.map((g) => g.toExponential(1)).join(", ")}`);
  const w = warnings.find((x) => x.kind === "explodingGradients");
  assert.ok(w, `${JSON.stringify(warnings)}; norms ${norms.map((g) => g.toExponential(1)).join(", ")}`);
  assert.ok(w.epoch >= 4 && w.epoch <= 6, `raised at epoch ${w.epoch}`);
  assert.match(w.message, /lower the learning rate/);
  // Raised once, not every epoch after.
  assert.equal(warnings.filter((x) => x.kind === "explodingGradients").length, 1);
});

test("a ReLU layer with a huge negative bias: dead ReLUs, every unit silent", async () => {
  const layers = [{ type: "dense", units: 16, activation: "relu" }, { type: "dense", units: 2, activation: "softmax" }];
  const { series, warnings } = await run(layers, data(256, "classification"), "categoricalCrossentropy", { type: "adam", learningRate: 0.01 }, 1, 32, (m) => {
    const relu = m.layers.find((l) => l.getConfig().activation === "relu")!;
    const [kernel, bias] = relu.getWeights();
    relu.setWeights([kernel, tf.fill(bias.shape, -100)]);
  });
  const relu = series[0].layers.find((l) => l.deadFraction !== undefined)!;
  assert.equal(relu.deadFraction, 1);
  const w = warnings.find((x) => x.kind === "deadRelu");
  assert.ok(w, JSON.stringify(warnings));
  assert.match(w.message, /dead ReLUs: 100% of layer '.+''s units are never active/);
});

test("a healthy run stays quiet, and its measurements are in range", async () => {
  const layers = [{ type: "dense", units: 16, activation: "relu" }, { type: "dense", units: 16, activation: "tanh" }, { type: "dense", units: 2, activation: "softmax" }];
  const { series, warnings } = await run(layers, data(256, "classification"), "categoricalCrossentropy", { type: "adam", learningRate: 0.01 }, 5, 32);
  assert.deepEqual(warnings, []);
  assert.equal(series.length, 5);
  for (const s of series) {
    assert.ok(Number.isFinite(s.gradNorm) && s.gradNorm > 0);
    for (const l of s.layers) {
      if (l.updateRatio !== undefined) assert.ok(l.updateRatio > 0 && l.updateRatio < 1, `${l.layer}: update ratio ${l.updateRatio}`);
      if (l.deadFraction !== undefined) assert.ok(l.deadFraction < 0.5, `${l.layer}: ${l.deadFraction} dead`);
      if (l.saturatedFraction !== undefined) assert.ok(l.saturatedFraction >= 0 && l.saturatedFraction <= 1);
    }
  }
});
