// Per-class and regression scores (output-scores.ts, metrics.ts): hand-computed values first, then
// evaluate() on small real models against a direct computation from model.predict.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/engine/backend.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { withSeededRandom, mulberry32 } from "../../lib/engine/seeded-random.ts";
import { batchConfusion, evaluate, evaluateReport, evaluateRowsReport, PER_CLASS_LIMIT } from "../../lib/engine/train/metrics.ts";
import { classScores, ConfusionCounts, RegressionSums } from "../../lib/engine/train/output-scores.ts";
import type { OutputObjective, TrainData } from "../../lib/engine/train/train-types.ts";
import { modelSpecSchema } from "../../lib/model-spec/model-spec-schema.ts";

before(async () => {
  await initBackend("auto");
});

const close = (a: number, b: number, what: string, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a}, expected ${b}`);

describe("scores by hand", () => {
  test("precision, recall, F1: a class never predicted, a class with no support, a class absent from both", () => {
    // true: a a a b b c c; predicted: a a b b d a b (c is never predicted, d never true, e neither).
    const m = [
      [2, 1, 0, 0, 0],
      [0, 1, 0, 1, 0],
      [1, 1, 0, 0, 0],
      [0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0],
    ];
    const s = classScores(m);
    assert.deepEqual(s.support, [3, 2, 2, 0, 0]);
    [2 / 3, 1 / 3, 0, 0, 0].forEach((v, i) => close(s.precision[i], v, `precision ${i}`));
    [2 / 3, 1 / 2, 0, 0, 0].forEach((v, i) => close(s.recall[i], v, `recall ${i}`));
    [2 / 3, 2 / 5, 0, 0, 0].forEach((v, i) => close(s.f1[i], v, `f1 ${i}`));
    // Macro over a, b, c, d (e occurs nowhere and is left out), zero_division=0 for c's precision and d's recall.
    close(s.macro.precision, (2 / 3 + 1 / 3) / 4, "macro precision");
    close(s.macro.recall, (2 / 3 + 1 / 2) / 4, "macro recall");
    close(s.macro.f1, (2 / 3 + 2 / 5) / 4, "macro f1");
  });

  test("a confusion matrix adds up flat per-batch counts (true·k + predicted)", () => {
    const c = new ConfusionCounts(2);
    c.add([1, 2, 3, 4]);
    c.add(Int32Array.from([10, 0, 0, 10]));
    assert.deepEqual(c.matrix(), [[11, 2], [3, 14]]);
  });

  test("MSE, MAE and R² over batches; R² about each column's own mean; a constant target", () => {
    // y = 1 2 3 4, ŷ = 1.5 2 2 5, in two batches, shifted by the first row (1).
    const r = new RegressionSums(1);
    r.add({ rows: 2, squaredError: 0.25 + 0, absoluteError: 0.5 + 0, shiftedSum: [0 + 1], shiftedSquares: [0 + 1] });
    r.add({ rows: 2, squaredError: 1 + 1, absoluteError: 1 + 1, shiftedSum: [2 + 3], shiftedSquares: [4 + 9] });
    const s = r.scores();
    close(s.mse, 2.25 / 4, "mse");
    close(s.mae, 2.5 / 4, "mae");
    close(s.r2, 1 - 2.25 / 5, "r2"); // SS_tot about the mean 2.5: 2.25 + 0.25 + 0.25 + 2.25

    // Two columns, y = (0, 10) and (2, 14), ŷ = (1, 10) and (1, 14): SS_res 2, SS_tot 2 + 8 (not about one pooled mean).
    const two = new RegressionSums(2);
    two.add({ rows: 2, squaredError: 2, absoluteError: 2, shiftedSum: [2, 4], shiftedSquares: [4, 16] });
    close(two.scores().r2, 1 - 2 / 10, "variance-weighted r2");
    close(two.scores().mse, 2 / 4, "mse over every value");

    const flat = (squaredError: number) => {
      const c = new RegressionSums(1);
      c.add({ rows: 3, squaredError, absoluteError: Math.sqrt(squaredError), shiftedSum: [0], shiftedSquares: [0] });
      return c.scores().r2;
    };
    assert.equal(flat(0), 1, "a constant target predicted exactly");
    assert.equal(flat(0.5), 0, "a constant target missed: 0, not -Infinity or NaN");
  });
});

describe("counting with tf ops", () => {
  test("binary outputs split at 0.5; per-pixel softmax outputs count every position", () => {
    const binary = batchConfusion("binaryCrossentropy", tf.tensor2d([[1], [1], [0], [0], [1]]), tf.tensor2d([[0.9], [0.2], [0.5], [0.7], [0.51]]), 2);
    // true 1→1, 1→0, 0→0 (0.5 is not above the threshold), 0→1, 1→1
    assert.deepEqual([...binary.dataSync()], [1, 1, 1, 2]);

    // One 2×2 image with 3 classes: true ids [[0, 1], [2, 2]], predicted [[0, 2], [2, 1]].
    const oneHot = (ids: number[]) => tf.oneHot(tf.tensor1d(ids, "int32"), 3).reshape([1, 2, 2, 3]);
    const probs = tf.tensor4d([[[[0.8, 0.1, 0.1], [0.2, 0.3, 0.5]], [[0.1, 0.1, 0.8], [0.3, 0.6, 0.1]]]]);
    const pixels = batchConfusion("categoricalCrossentropy", tf.cast(oneHot([0, 1, 2, 2]), "float32"), probs, 3);
    assert.deepEqual([...pixels.dataSync()], [1, 0, 0, 0, 0, 1, 0, 1, 1]);
    assert.equal(binary.dtype, "int32", "counts stay exact in int32");
  });
});

/** Per-class scores written out from true and predicted ids, as scikit-learn defines them with zero_division=0. */
function reference(trueIds: number[], predIds: number[], k: number) {
  const per = Array.from({ length: k }, (_, c) => {
    let tp = 0, fp = 0, fn = 0;
    trueIds.forEach((t, i) => {
      const p = predIds[i];
      if (t === c && p === c) tp++;
      else if (p === c) fp++;
      else if (t === c) fn++;
    });
    const precision = tp + fp ? tp / (tp + fp) : 0;
    const recall = tp + fn ? tp / (tp + fn) : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    return { precision, recall, f1, present: tp + fp + fn > 0 };
  });
  const present = per.filter((c) => c.present);
  const macro = (key: "precision" | "recall" | "f1") => present.reduce((a, c) => a + c[key], 0) / present.length;
  const matrix = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  trueIds.forEach((t, i) => matrix[t][predIds[i]]++);
  return { per, macro: { precision: macro("precision"), recall: macro("recall"), f1: macro("f1") }, matrix };
}

const argMaxRows = (t: tf.Tensor) => [...tf.argMax(t, -1).reshape([-1]).dataSync()];

function randomRows(n: number, width: number, seed: number): Float32Array {
  const random = mulberry32(seed);
  return Float32Array.from({ length: n * width }, () => random() * 4 - 2);
}

describe("evaluate on real models", () => {
  test("softmax: macro and per-class metrics named by class, and the confusion matrix, as from model.predict", async () => {
    const spec = modelSpecSchema.parse({ input: { shape: [4] }, layers: [{ type: "dense", units: 6, activation: "tanh" }, { type: "dense", units: 3, activation: "softmax" }] });
    const model = await withSeededRandom(5, () => buildModel(spec).model);
    const n = 23;
    const x = tf.tensor2d(randomRows(n, 4, 1), [n, 4]);
    const random = mulberry32(2);
    const ids = Array.from({ length: n }, () => Math.floor(random() * 3));
    const y = tf.cast(tf.oneHot(tf.tensor1d(ids, "int32"), 3), "float32");
    const classes = ["cat", "dog", "eel"];
    // Batches of 5 that do not divide 23: counts must add up across an uneven last batch.
    const { metrics, confusion } = evaluateReport(model, [x], [y], "categoricalCrossentropy", 5, "val_", { classNames: [classes] });

    const want = reference(ids, argMaxRows(model.predict(x) as tf.Tensor), 3);
    assert.deepEqual(confusion, [{ output: "output", classes, matrix: want.matrix }]);
    close(metrics.val_precision, want.macro.precision, "val_precision");
    close(metrics.val_recall, want.macro.recall, "val_recall");
    close(metrics.val_f1, want.macro.f1, "val_f1");
    classes.forEach((c, i) => {
      close(metrics[`val_precision/${c}`], want.per[i].precision, `precision of ${c}`);
      close(metrics[`val_recall/${c}`], want.per[i].recall, `recall of ${c}`);
      close(metrics[`val_f1/${c}`], want.per[i].f1, `f1 of ${c}`);
    });
    const accuracy = want.matrix.reduce((a, row, i) => a + row[i], 0) / n;
    close(metrics.val_accuracy, accuracy, "accuracy agrees with the matrix's diagonal");
    assert.deepEqual(Object.keys(metrics).sort(), ["val_accuracy", "val_f1", "val_loss", "val_precision", "val_recall", ...["f1", "precision", "recall"].flatMap((m) => classes.map((c) => `val_${m}/${c}`))].sort());
    tf.dispose([x, y]);
    model.dispose();
  });

  test("two outputs, a sigmoid and a two-column regression: each scored under its own name", async () => {
    const spec = modelSpecSchema.parse({
      inputs: { x: { shape: [3] } },
      nodes: {
        trunk: { type: "dense", units: 8, activation: "tanh", inputs: ["x"] },
        kind: { type: "dense", units: 1, activation: "sigmoid", inputs: ["trunk"] },
        size: { type: "dense", units: 2, inputs: ["trunk"] },
      },
      outputs: ["kind", "size"],
    });
    const model = await withSeededRandom(7, () => buildModel(spec).model);
    const n = 17;
    const x = tf.tensor2d(randomRows(n, 3, 3), [n, 3]);
    const random = mulberry32(4);
    const kindIds = Array.from({ length: n }, () => (random() > 0.5 ? 1 : 0));
    const kind = tf.tensor2d(kindIds, [n, 1]);
    const sizeValues = Float32Array.from({ length: n * 2 }, (_, i) => (i % 2 ? 10 : 0) + random() * 3);
    const size = tf.tensor2d(sizeValues, [n, 2]);
    const objectives: OutputObjective[] = [{ name: "kind", loss: "binaryCrossentropy", weight: 1 }, { name: "size", loss: "meanSquaredError", weight: 1 }];
    const { metrics, confusion } = evaluateReport(model, [x], [kind, size], objectives, 4, "val_", { classNames: [["no", "yes"], []] });

    const [pKind, pSize] = model.predict(x) as tf.Tensor[];
    const want = reference(kindIds, [...pKind.dataSync()].map((p) => (p > 0.5 ? 1 : 0)), 2);
    assert.deepEqual(confusion, [{ output: "kind", classes: ["no", "yes"], matrix: want.matrix }]);
    close(metrics.val_kind_f1, want.macro.f1, "val_kind_f1");
    close(metrics["val_kind_recall/yes"], want.per[1].recall, "recall of yes");

    const p = pSize.dataSync();
    const e = sizeValues.map((v, i) => v - p[i]);
    const mse = e.reduce((a, v) => a + v * v, 0) / e.length;
    const mae = e.reduce((a, v) => a + Math.abs(v), 0) / e.length;
    const columnMean = [0, 1].map((j) => sizeValues.filter((_, i) => i % 2 === j).reduce((a, v) => a + v, 0) / n);
    const ssTot = sizeValues.reduce((a, v, i) => a + (v - columnMean[i % 2]) ** 2, 0);
    close(metrics.val_size_mse, mse, "val_size_mse", 1e-5);
    close(metrics.val_size_mae, mae, "val_size_mae", 1e-5);
    close(metrics.val_size_r2, 1 - (mse * e.length) / ssTot, "val_size_r2", 1e-5);
    close(metrics.val_size_mse, 2 * metrics.val_size_loss, "the loss is ½·MSE", 1e-5);
    assert.equal(metrics.val_mse, undefined, "with several outputs, every score carries its output's name");
    tf.dispose([x, kind, size, pKind, pSize]);
    model.dispose();
  });

  test("per-pixel softmax: every pixel is a sample; a test split names classes from the data", async () => {
    const spec = modelSpecSchema.parse({ input: { shape: [4, 4, 1] }, layers: [{ type: "conv2d", filters: 4, kernelSize: 3, padding: "same", activation: "relu" }, { type: "conv2d", filters: 3, kernelSize: 1, activation: "softmax" }] });
    const model = await withSeededRandom(11, () => buildModel(spec).model);
    const n = 6;
    const random = mulberry32(6);
    const data: TrainData = {
      rows: n,
      inputs: [{ data: randomRows(n, 16, 5), shape: [4, 4, 1] }],
      targets: [{ name: "output", task: "classification", classes: ["sky", "road", "tree"], data: Float32Array.from({ length: n * 16 }, () => Math.floor(random() * 3)), shape: [4, 4] }],
    };
    const rows = Int32Array.from([0, 2, 3, 5]);
    const { metrics, confusion } = evaluateRowsReport(model, data, rows, "categoricalCrossentropy", 3, "test_");

    const x = tf.tensor(data.inputs[0].data, [n, 4, 4, 1]);
    const pred = argMaxRows(tf.gather(model.predict(x) as tf.Tensor, tf.tensor1d(rows, "int32")));
    const trueIds = [...rows].flatMap((r) => [...data.targets[0].data.subarray(r * 16, (r + 1) * 16)]);
    const want = reference(trueIds, pred, 3);
    assert.deepEqual(confusion[0].matrix, want.matrix);
    assert.equal(want.matrix.flat().reduce((a, b) => a + b, 0), rows.length * 16);
    close(metrics.test_f1, want.macro.f1, "test_f1");
    close(metrics["test_precision/tree"], want.per[2].precision, "precision of tree");
    tf.dispose(x);
    model.dispose();
  });

  test(`more than ${PER_CLASS_LIMIT} classes: macro scores and the matrix, no per-class metrics; class ids without names`, async () => {
    const k = PER_CLASS_LIMIT + 1;
    const spec = modelSpecSchema.parse({ input: { shape: [2] }, layers: [{ type: "dense", units: k, activation: "softmax" }] });
    const model = await withSeededRandom(13, () => buildModel(spec).model);
    const x = tf.tensor2d(randomRows(8, 2, 7), [8, 2]);
    const y = tf.cast(tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 20], "int32"), k), "float32");
    const { metrics, confusion } = evaluateReport(model, [x], [y], "categoricalCrossentropy", 8, "val_");
    assert.deepEqual(Object.keys(metrics).sort(), ["val_accuracy", "val_f1", "val_loss", "val_precision", "val_recall"]);
    assert.equal(confusion[0].matrix.length, k);
    assert.equal(confusion[0].classes[20], "20");
    // evaluate is evaluateReport's metrics.
    assert.deepEqual(evaluate(model, [x], [y], "categoricalCrossentropy", 8, "val_"), metrics);
    tf.dispose([x, y]);
    model.dispose();
  });

  test("contrastive outputs keep only loss and accuracy; evaluate leaks no tensors", async () => {
    const spec = modelSpecSchema.parse({ input: { shape: [2] }, layers: [{ type: "dense", units: 1, activation: "relu" }] });
    const model = await withSeededRandom(17, () => buildModel(spec).model);
    const x = tf.tensor2d(randomRows(6, 2, 8), [6, 2]);
    const y = tf.tensor2d([0, 1, 0, 1, 1, 0], [6, 1]);
    const before = tf.memory().numTensors;
    const m = evaluate(model, [x], [y], [{ name: "output", loss: "contrastive", weight: 1, margin: 1 }], 4, "val_");
    assert.deepEqual(Object.keys(m).sort(), ["val_accuracy", "val_loss"]);
    assert.deepEqual(Object.keys(evaluate(model, [x], [y], "meanSquaredError", 4, "val_")).sort(), ["val_loss", "val_mae", "val_mse", "val_r2"]);
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([x, y]);
    model.dispose();
  });
});
