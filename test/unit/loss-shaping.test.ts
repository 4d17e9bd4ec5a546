// Steering the loss (issue 9): gradient clipping by value and by global norm, label smoothing and
// class weights, checked against hand-computed values, and clipping shown to tame a rate that
// otherwise explodes (the same setup that provokes the exploding-gradients warning).
import assert from "node:assert/strict";
import { before, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/engine/backend.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { withSeededRandom } from "../../lib/engine/seeded-random.ts";
import type { DiagnosticWarning } from "../../lib/engine/train/diagnostics.ts";
import { lossFromLogits } from "../../lib/engine/train/losses.ts";
import { clipGradients, compileForTraining, train, type TrainData } from "../../lib/engine/train/trainer.ts";
import { modelSpecSchema } from "../../lib/model-spec/model-spec-schema.ts";
import { mulberry32 } from "../../lib/random/seeded-random.ts";

before(async () => {
  await initBackend("auto");
});

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-5, `${what}: ${a} vs ${b}`);

test("clipping: each value into [−v, v], then the global norm to at most n, the direction kept", () => {
  const grads = { a: tf.tensor1d([3, -4]), b: tf.tensor1d([12]) };
  const byValue = clipGradients(grads, { value: 5 });
  assert.deepEqual([...byValue.a.dataSync(), ...byValue.b.dataSync()], [3, -4, 5]);
  // ‖(3, −4, 12)‖ = 13: scaled by 1.3/13 = 0.1.
  const byNorm = clipGradients(grads, { norm: 1.3 });
  [0.3, -0.4, 1.2].forEach((v, i) => close([...byNorm.a.dataSync(), ...byNorm.b.dataSync()][i], v, `norm-clipped ${i}`));
  // Under the norm: unchanged.
  const small = clipGradients(grads, { norm: 100 });
  assert.deepEqual([...small.a.dataSync(), ...small.b.dataSync()], [3, -4, 12]);
});

test("label smoothing and class weights shape the cross-entropy as the formulas say", () => {
  const z = tf.tensor2d([[2, 0, -1], [0.5, 1.5, 0]]);
  const y = tf.tensor2d([[1, 0, 0], [0, 0, 1]]);
  const logp = tf.logSoftmax(z).arraySync() as number[][];
  const eps = 0.3;
  const smoothed = (row: number[], target: number) => -row.reduce((s, l, j) => s + ((j === target ? 1 - eps : 0) + eps / 3) * l, 0);
  close(lossFromLogits("categoricalCrossentropy", y, z, { labelSmoothing: eps }).dataSync()[0], (smoothed(logp[0], 0) + smoothed(logp[1], 2)) / 2, "smoothed CCE");
  const w = [2, 1, 0.5];
  close(lossFromLogits("categoricalCrossentropy", y, z, { classWeights: w }).dataSync()[0], (2 * -logp[0][0] + 0.5 * -logp[1][2]) / 2, "weighted CCE");
  const s = (v: number) => 1 / (1 + Math.exp(-v));
  const zb = tf.tensor2d([[1], [-2]]);
  const yb = tf.tensor2d([[1], [0]]);
  const bce = (yv: number, zv: number) => -(yv * Math.log(s(zv)) + (1 - yv) * Math.log(1 - s(zv)));
  close(lossFromLogits("binaryCrossentropy", yb, zb, { labelSmoothing: 0.2, classWeights: [3, 0.5] }).dataSync()[0], (0.5 * bce(0.9, 1) + 3 * bce(0.1, -2)) / 2, "smoothed, weighted BCE");
});

test("a rate that explodes without clipping trains with gradientClipping {norm: 1}, and no warning", async () => {
  const random = mulberry32(4);
  const n = 128;
  const x = new Float32Array(n * 4);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 4; j++) x[4 * i + j] = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    y[i] = 2 * x[4 * i];
  }
  const data: TrainData = { rows: n, inputs: [{ data: x, shape: [4] }], targets: [{ data: y, classes: [], shape: [1] } as never] };
  const runWith = async (clip?: { norm: number }) => {
    const model = await withSeededRandom(7, () => buildModel(modelSpecSchema.parse({ input: { shape: [4] }, layers: [{ type: "dense", units: 1, activation: "linear" }] })).model);
    const optimizer = { type: "sgd" as const, learningRate: 4 };
    compileForTraining(model, optimizer, "meanSquaredError");
    const warnings: DiagnosticWarning[] = [];
    const losses: number[] = [];
    await train(model, data, { epochs: 8, batchSize: 1000, optimizer, validationSplit: 0.25, seed: 2, ...(clip ? { gradientClipping: clip } : {}) }, "meanSquaredError", {
      onEpochEnd: async (_e, m, _v, health) => {
        losses.push(m.loss);
        warnings.push(...(health?.warnings ?? []));
      },
    });
    return { warnings, losses };
  };
  const wild = await runWith();
  assert.ok(wild.warnings.some((w) => w.kind === "explodingGradients"), `unclipped: ${wild.losses.map((l) => l.toExponential(1)).join(", ")}`);
  const tame = await runWith({ norm: 1 });
  assert.deepEqual(tame.warnings, []);
  assert.ok(tame.losses.every(Number.isFinite) && tame.losses.at(-1)! < 10 * tame.losses[0], `clipped: ${tame.losses.map((l) => l.toExponential(1)).join(", ")}`);
});
