// Graph models trained through the API by a real worker: a siamese network on pairs (a dataset with
// two named inputs) and a U-Net on per-pixel masks (nested labels), then served by :predict.
import assert from "node:assert/strict";
import type { InjectOptions } from "fastify";
import { describe, test } from "node:test";
import { parseCsv } from "../../lib/data/formats/csv.ts";
import { useTrainingEnv } from "../helpers/training-env.ts";
import { IRIS_CSV, waitForJob } from "../helpers/training.ts";

const ctx = useTrainingEnv("acme");

/** A small deterministic generator (tests must not depend on Math.random). */
function lcg(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

const inject = (opts: InjectOptions) => ctx.env.app.inject(opts);
const wait = (id: string, timeoutMs?: number) => waitForJob(ctx.env.app.inject.bind(ctx.env.app), ctx.auth, id, undefined, timeoutMs);

async function template(name: string, query: string) {
  const res = await inject({ url: `/v1/templates/${name}?${query}` });
  assert.equal(res.statusCode, 200, res.body);
  return res.json().spec;
}

async function post(url: string, payload: object, status: number) {
  const res = await inject({ method: "POST", url, headers: ctx.auth, payload });
  assert.equal(res.statusCode, status, res.body);
  return res.json();
}

/** Iris as [features, species] pairs, in file order. */
function irisRows(): { x: number[]; species: string }[] {
  const t = parseCsv(IRIS_CSV);
  return t.rows.map((r) => ({ x: r.slice(0, 4).map(Number), species: r[4] }));
}

/** Pairs of Iris flowers: target 0 when both are the same species, 1 when not; half of each. */
function irisPairs(n: number, seed: number) {
  const rows = irisRows();
  const rand = lcg(seed);
  const left: number[][] = [];
  const right: number[][] = [];
  const labels: number[] = [];
  while (labels.length < n) {
    const a = rows[Math.floor(rand() * rows.length)];
    const b = rows[Math.floor(rand() * rows.length)];
    const same = a.species === b.species;
    if (same !== (labels.length % 2 === 0)) continue;
    left.push(a.x);
    right.push(b.x);
    labels.push(same ? 0 : 1);
  }
  return { left, right, labels };
}

/** 16×16 grey images with one bright square on dim noise; the mask marks the square's pixels. */
function squares(n: number, seed: number) {
  const rand = lcg(seed);
  const images: number[][][][] = [];
  const masks: number[][][] = [];
  for (let k = 0; k < n; k++) {
    const size = 3 + Math.floor(rand() * 5);
    const top = Math.floor(rand() * (16 - size));
    const left = Math.floor(rand() * (16 - size));
    const inside = (i: number, j: number) => i >= top && i < top + size && j >= left && j < left + size;
    images.push(Array.from({ length: 16 }, (_, i) => Array.from({ length: 16 }, (_, j) => [inside(i, j) ? 0.6 + 0.4 * rand() : 0.35 * rand()])));
    masks.push(Array.from({ length: 16 }, (_, i) => Array.from({ length: 16 }, (_, j) => (inside(i, j) ? 1 : 0))));
  }
  return { images, masks };
}

describe("graph models train through the API", () => {
  test("a siamese network learns from a two-input dataset of Iris pairs and serves {left, right} instances", async (t) => {
    const train = irisPairs(240, 1);
    const ds = await post("/v1/datasets", { name: "iris-pairs", inputs: { left: train.left, right: train.right }, labels: train.labels }, 201);
    assert.deepEqual(ds.inputs, [{ name: "left", shape: [4] }, { name: "right", shape: [4] }]);
    assert.equal(ds.task, "regression");
    assert.deepEqual(ds.targetShape, [1]);

    const spec = await template("siamese", "inputShape=4&embeddingSize=8");
    const model = await post("/v1/models", { name: "iris-siamese", spec }, 201);
    assert.deepEqual(model.inputs.map((i: { name: string }) => i.name), ["left", "right"]);

    const job = await post("/v1/training-jobs", { model: "iris-siamese", dataset: ds.id, epochs: 30, batchSize: 16, optimizer: { type: "adam", learningRate: 0.01 }, validationSplit: 0.2, seed: 3 }, 202);
    const done = await wait(job.id);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    const metrics = (await inject({ url: `/v1/training-jobs/${job.id}/metrics`, headers: ctx.auth })).json().epochs;
    assert.ok(metrics.at(-1).metrics.loss < metrics[0].metrics.loss * 0.8, `loss falls: ${JSON.stringify([metrics[0], metrics.at(-1)])}`);

    // The template trains with the contrastive loss, which reports how many pairs it judges right.
    assert.equal(spec.loss, "contrastive");
    assert.ok(done.metrics.val_accuracy >= 0.85, JSON.stringify(done.metrics));
    // Unseen pairs: a same-species pair should come out closer than half the margin, a different one farther.
    const test = irisPairs(100, 99);
    const pred = await post("/v1/models/iris-siamese:predict", { instances: test.left.map((l, i) => ({ left: l, right: test.right[i] })) }, 200);
    assert.equal(pred.predictions.length, 100);
    const right = pred.predictions.filter((p: number[], i: number) => (p[0] < 0.5 ? 0 : 1) === test.labels[i]).length;
    t.diagnostic(`siamese: loss ${metrics[0].metrics.loss.toFixed(3)} → ${metrics.at(-1).metrics.loss.toFixed(3)}, val_accuracy ${done.metrics.val_accuracy.toFixed(3)}, ${right}/100 held-out pairs right`);
    assert.ok(right >= 85, `${right}/100 held-out pairs judged right`);

    // A pair without its right half, or a plain array for a two-input model, answers 400 and says why.
    const missing = await post("/v1/models/iris-siamese:predict", { instances: [{ left: [5, 3, 1, 0.2] }] }, 400);
    assert.match(missing.detail, /instances\[0\]: lacks input 'right'/);
    const plain = await post("/v1/models/iris-siamese:predict", { instances: [[5, 3, 1, 0.2]] }, 400);
    assert.match(plain.detail, /instances\[0\]: the model has 2 inputs \(left, right\): expected an object of them by name/);
    const extra = await post("/v1/models/iris-siamese:predict", { instances: [{ left: [5, 3, 1, 0.2], right: [5, 3, 1, 0.2], middle: [1] }] }, 400);
    assert.match(extra.detail, /instances\[0\]\.middle: is not an input of the model/);
  });

  test("a U-Net learns per-pixel masks (nested labels) and predicts [H, W, classes] per image", async (t) => {
    const { images, masks } = squares(96, 7);
    const ds = await post("/v1/datasets", { name: "squares", features: images, labels: masks, task: "classification" }, 201);
    assert.deepEqual(ds.targetShape, [16, 16]);
    assert.deepEqual(ds.classes, ["0", "1"]);

    const spec = await template("unet", "inputShape=16,16,1&classes=2&depth=2&filters=8");
    await post("/v1/models", { name: "squares-unet", spec }, 201);
    const job = await post("/v1/training-jobs", { model: "squares-unet", dataset: ds.id, epochs: 12, batchSize: 8, optimizer: { type: "adam", learningRate: 0.01 }, validationSplit: 0.25, seed: 5 }, 202);
    const done = await wait(job.id, 300_000);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    // The background alone is ~85% of the pixels: per-pixel accuracy must beat that by far.
    const background = masks.flat(2).filter((v) => v === 0).length / masks.flat(2).length;
    assert.ok(done.metrics.val_accuracy >= 0.97 && done.metrics.val_accuracy > background + 0.05, `val_accuracy ${done.metrics.val_accuracy}, background ${background}`);

    // SegNet (no skip connections; max-unpooling by upsampling) trains on the same masks.
    await post("/v1/models", { name: "squares-segnet", spec: await template("segnet", "inputShape=16,16,1&classes=2&depth=2&filters=8") }, 201);
    const segJob = await post("/v1/training-jobs", { model: "squares-segnet", dataset: ds.id, epochs: 4, batchSize: 16, optimizer: { type: "adam", learningRate: 0.01 }, validationSplit: 0.25, seed: 5 }, 202);
    const seg = await wait(segJob.id, 300_000);
    assert.equal(seg.status, "succeeded", JSON.stringify(seg));
    // Its batch norms' moving statistics need hundreds of steps to settle, so after a few dozen the
    // inference-mode val_accuracy says little; the training accuracy shows it learns the masks.
    assert.ok(Number.isFinite(seg.metrics.val_loss) && seg.metrics.accuracy > background, JSON.stringify(seg.metrics));

    const fresh = squares(4, 1234);
    const pred = await post("/v1/models/squares-unet:predict", { instances: fresh.images }, 200);
    assert.equal(pred.predictions.length, 4);
    assert.equal(pred.predictions[0].length, 16);
    assert.equal(pred.predictions[0][0].length, 16);
    assert.equal(pred.predictions[0][0][0].length, 2, "two class probabilities per pixel");
    let right = 0;
    pred.predictions.forEach((img: number[][][], k: number) =>
      img.forEach((row, i) => row.forEach((p, j) => (right += Number((p[1] > p[0] ? 1 : 0) === fresh.masks[k][i][j])))),
    );
    t.diagnostic(`U-Net: val_accuracy ${done.metrics.val_accuracy.toFixed(4)} (background ${background.toFixed(3)}), ${right}/1024 fresh pixels right`);
    assert.ok(right / (4 * 256) >= 0.95, `${right}/1024 fresh pixels right`);
  });

  test("vector labels train a model with several regression outputs", async () => {
    const rand = lcg(11);
    const features = Array.from({ length: 120 }, () => [rand() * 2 - 1, rand() * 2 - 1]);
    const labels = features.map(([a, b]) => [a + b, a - 2 * b]);
    const ds = await post("/v1/datasets", { name: "two-targets", features, labels }, 201);
    assert.equal(ds.task, "regression");
    assert.deepEqual(ds.targetShape, [2]);
    await post("/v1/models", { name: "linear2", spec: { input: { shape: [2] }, layers: [{ type: "dense", units: 2 }] } }, 201);
    const job = await post("/v1/training-jobs", { model: "linear2", dataset: ds.id, epochs: 40, batchSize: 8, optimizer: { type: "sgd", learningRate: 0.1 }, validationSplit: 0.2, seed: 1 }, 202);
    const done = await wait(job.id);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    assert.ok(done.metrics.val_loss < 1e-3, JSON.stringify(done.metrics));
    const pred = await post("/v1/models/linear2:predict", { instances: [[0.5, 0.25]] }, 200);
    assert.ok(Math.abs(pred.predictions[0][0] - 0.75) < 0.05 && Math.abs(pred.predictions[0][1] - 0) < 0.05, JSON.stringify(pred));
  });

  test("a two-headed model trains on two named sets of labels, weighted, and predicts both by name", async (t) => {
    // One trunk, two heads: the species (classification) and the petal width (regression) from
    // the other three measurements.
    const rows = irisRows();
    const ds = await post("/v1/datasets", {
      name: "iris-two-heads",
      features: rows.map((r) => r.x.slice(0, 3)),
      outputs: { species: rows.map((r) => r.species), petal_width: rows.map((r) => r.x[3]) },
    }, 201);
    assert.deepEqual(ds.outputs, [
      { name: "species", task: "classification", classes: ["setosa", "versicolor", "virginica"], shape: [1], counts: [50, 50, 50] },
      { name: "petal_width", task: "regression", classes: [], shape: [1] },
    ]);
    const spec = {
      inputs: { x: { shape: [3] } },
      nodes: {
        trunk: { type: "dense", units: 16, activation: "relu", inputs: ["x"] },
        species: { type: "dense", units: 3, activation: "softmax", inputs: ["trunk"] },
        petal_width: { type: "dense", units: 1, inputs: ["trunk"] },
      },
      outputs: ["species", "petal_width"],
      lossWeights: { petal_width: 2 },
    };
    const model = await post("/v1/models", { name: "iris-two-heads", spec }, 201);
    assert.deepEqual(model.outputs, [{ name: "species", shape: [3] }, { name: "petal_width", shape: [1] }]);
    const job = await post("/v1/training-jobs", { model: "iris-two-heads", dataset: ds.id, epochs: 60, batchSize: 16, optimizer: { type: "adam", learningRate: 0.02 }, validationSplit: 0.2, seed: 4 }, 202);
    const done = await wait(job.id);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    const m = done.metrics;
    t.diagnostic(`two heads: ${JSON.stringify(m)}`);
    const perClass = ["precision", "recall", "f1"].flatMap((s) => ["setosa", "versicolor", "virginica"].map((c) => `val_species_${s}/${c}`));
    assert.deepEqual(Object.keys(m).sort(), [
      "loss", "petal_width_loss", "species_accuracy", "species_loss", "val_loss", "val_petal_width_loss", "val_petal_width_mae", "val_petal_width_mse", "val_petal_width_r2",
      "val_species_accuracy", "val_species_f1", "val_species_loss", "val_species_precision", "val_species_recall", ...perClass,
    ].sort());
    assert.ok(Math.abs(m.loss - (m.species_loss + 2 * m.petal_width_loss)) < 1e-4, "the total is the weighted sum");
    assert.ok(m.val_species_accuracy >= 0.9, `species ${m.val_species_accuracy}`);
    // Petal width spans 0.1–2.5 cm; ½·MSE of 0.05 is an RMS error of about 0.3 cm.
    assert.ok(m.val_petal_width_loss < 0.05, `petal width ½MSE ${m.val_petal_width_loss}`);

    const pred = await post("/v1/models/iris-two-heads:predict", { instances: [[5.1, 3.5, 1.4], [7.7, 3.8, 6.7]] }, 200);
    assert.deepEqual(Object.keys(pred.predictions[0]), ["species", "petal_width"]);
    assert.equal(pred.predictions[0].species.length, 3);
    assert.ok(pred.predictions[0].species[0] > 0.8 && pred.predictions[1].species[2] > 0.5, JSON.stringify(pred.predictions));
    assert.ok(Math.abs(pred.predictions[0].petal_width[0] - 0.2) < 0.4 && Math.abs(pred.predictions[1].petal_width[0] - 2.2) < 0.6, JSON.stringify(pred.predictions));

    // Labels for only one of the heads, or a loss the spec gives an output it does not have.
    const oneHead = await post("/v1/datasets", { name: "species-only", features: rows.map((r) => r.x.slice(0, 3)), outputs: { species: rows.map((r) => r.species), sepal: rows.map((r) => r.x[0]) } }, 201);
    const missing = await post("/v1/training-jobs", { model: "iris-two-heads", dataset: oneHead.id, epochs: 1, batchSize: 8, optimizer: { type: "sgd", learningRate: 0.1 }, validationSplit: 0 }, 400);
    assert.match(missing.detail, /dataset: has no labels for the model's output 'petal_width' \(the model's outputs: species, petal_width; the dataset's: species, sepal\)/);
    const badLoss = await post("/v1/models:validate", { spec: { ...spec, losses: { petal: "meanSquaredError", species: "binaryCrossentropy" } } }, 400);
    assert.match(badLoss.detail, /spec\.losses\.petal: is not an output of the spec \(outputs: species, petal_width\)/);
    const wrongAct = await post("/v1/models:validate", { spec: { ...spec, losses: { species: "binaryCrossentropy" } } }, 400);
    assert.match(wrongAct.detail, /spec\.losses\.species: binaryCrossentropy needs a sigmoid output; the output \(spec\.nodes\.species\.activation\) ends in softmax/);
  });

  test("datasets and jobs that do not fit say where", async () => {
    const pairs = irisPairs(10, 5);
    const both = await post("/v1/datasets", { name: "x", features: pairs.left, inputs: { left: pairs.left }, labels: pairs.labels }, 400);
    assert.match(both.detail, /give either `features` \(one input\) or `inputs`/);
    const neither = await post("/v1/datasets", { name: "x", labels: pairs.labels }, 400);
    assert.match(neither.detail, /features: is required: give `features` \(one input\) or `inputs`/);
    const noLabels = await post("/v1/datasets", { name: "x", features: pairs.left }, 400);
    assert.match(noLabels.detail, /labels: is required: give `labels` \(one output\) or `outputs`/);
    const short = await post("/v1/datasets", { name: "x", inputs: { left: pairs.left, right: pairs.right.slice(1) }, labels: pairs.labels }, 400);
    assert.match(short.detail, /inputs\.right: has 9 rows, inputs\.left has 10/);
    const badName = await post("/v1/datasets", { name: "x", inputs: { "left image": pairs.left }, labels: pairs.labels }, 400);
    assert.match(badName.detail, /inputs/);

    const { images, masks } = squares(3, 2);
    masks[2][5] = masks[2][5].slice(1);
    const ragged = await post("/v1/datasets", { name: "x", features: images, labels: masks, task: "classification" }, 400);
    assert.match(ragged.detail, /labels\[2\]\[5\]: expected 16 labels, got 15/);
    const mixed = await post("/v1/datasets", { name: "x", features: images, labels: [masks[0], 1, masks[1]], task: "classification" }, 400);
    assert.match(mixed.detail, /labels\[1\]: expected an array of 16 arrays/);
    const notNumber = await post("/v1/datasets", { name: "x", features: [[1], [2]], labels: [[1, 2], [3, "a"]], task: "regression" }, 400);
    assert.match(notNumber.detail, /labels\[1\]\[1\]: label 'a' is not a number/);

    // A two-input model needs both inputs, by name; a per-pixel model needs per-pixel labels.
    const leftOnly = await post("/v1/datasets", { name: "left-only", inputs: { left: pairs.left, other: pairs.right }, labels: pairs.labels }, 201);
    await post("/v1/models", { name: "pairs", spec: await template("siamese", "inputShape=4") }, 201);
    const noRight = await post("/v1/training-jobs", { model: "pairs", dataset: leftOnly.id, epochs: 1, batchSize: 4, optimizer: { type: "sgd", learningRate: 0.1 }, validationSplit: 0 }, 400);
    assert.match(noRight.detail, /dataset: has no input named 'right' for the model's input of that name \(the dataset's inputs: left, other\)/);
    const flatLabels = await post("/v1/datasets", { name: "flat-labels", features: images, labels: ["a", "b", "a"] }, 201);
    await post("/v1/models", { name: "seg", spec: await template("unet", "inputShape=16,16,1&classes=2&depth=1&filters=2") }, 201);
    const perImage = await post("/v1/training-jobs", { model: "seg", dataset: flatLabels.id, epochs: 1, batchSize: 4, optimizer: { type: "sgd", learningRate: 0.1 }, validationSplit: 0 }, 400);
    assert.match(perImage.detail, /model: output \[16, 16, 2\] does not fit targets of shape \[1\] with 2 classes/);

    // Classes need a softmax (or, for two, a sigmoid) output: a linear one is refused before queueing.
    const iris = await post("/v1/datasets", { name: "iris-rows", features: irisRows().map((r) => r.x), labels: irisRows().map((r) => r.species) }, 201);
    await post("/v1/models", { name: "linear-head", spec: { input: { shape: [4] }, layers: [{ type: "dense", units: 3 }] } }, 201);
    const linear = await post("/v1/training-jobs", { model: "linear-head", dataset: iris.id, epochs: 1, batchSize: 4, optimizer: { type: "sgd", learningRate: 0.1 }, validationSplit: 0 }, 400);
    assert.match(linear.detail, /model: 3 classes train with categoricalCrossentropy, which needs a softmax output; the output \(spec\.layers\[0\]\.activation\) ends in linear/);

    // Plain labels and named outputs do not mix; a task per name only goes with named outputs.
    const bothLabels = await post("/v1/datasets", { name: "x", features: [[1], [2]], labels: ["a", "b"], outputs: { y: ["a", "b"] } }, 400);
    assert.match(bothLabels.detail, /give either `labels` \(one output\) or `outputs`/);
    const taskFor = await post("/v1/datasets", { name: "x", features: [[1], [2]], outputs: { y: [1, 2] }, task: { z: "classification" } }, 400);
    assert.match(taskFor.detail, /task\.z: is not one of the outputs \(y\)/);
  });
});
