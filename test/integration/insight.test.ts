// Model insight (issue 12) against the real Postgres, inference threads and TensorFlow.js, on
// models trained in the test through the job runner:
// - FGSM lowers the accuracy of an MNIST MLP as ε grows, PGD lowers it further, and a targeted
//   attack reaches its class; adversarial inputs stay in 0–255;
// - on synthetic images whose class is decided by a bright square in one corner, saliency and
//   occlusion point at that corner;
// - a layer's activations and a convolution's filters, as data and as PNGs; bad requests are 400s
//   that name the field.
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { mulberry32 } from "../../lib/engine/seeded-random.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { npy, npz } from "../helpers/numpy.ts";
import { createModel, waitForJob } from "../helpers/training.ts";
import { trainInProcess } from "../helpers/train-in-process.ts";
import { envOf, WorkerProcess } from "../helpers/worker-control.ts";
import { createTrainingWorker, type TrainingWorker } from "../../workers/training-worker.ts";

let env: TestEnv;
let auth: Record<string, string>;
let digits: { features: number[][][][]; labels: string[] };
let mnistId: string;

const SIDE = 12;
/** The informative corner: rows and columns 1–4. */
const SQUARE = { from: 1, to: 4 };

/** Class "1": a bright square in the top-left corner over noise; class "0": noise only. */
function cornerImage(on: boolean, random: () => number): number[] {
  const px: number[] = [];
  for (let r = 0; r < SIDE; r++) for (let c = 0; c < SIDE; c++) px.push(on && r >= SQUARE.from && r <= SQUARE.to && c >= SQUARE.from && c <= SQUARE.to ? 255 : Math.floor(random() * 90));
  return px;
}
const nestImage = (px: number[]) => Array.from({ length: SIDE }, (_, r) => Array.from({ length: SIDE }, (_, c) => [px[r * SIDE + c]]));

/** With TRAINYARD_PICTURES_DIR set, the pictures are kept there (how the README's are made: `TRAINYARD_PICTURES_DIR=docs/images node --import tsx --test test/integration/insight.test.ts`). */
function keep(name: string, png: Buffer): void {
  const dir = process.env.TRAINYARD_PICTURES_DIR;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, name), png);
}

async function post(url: string, payload: object) {
  return env.app.inject({ method: "POST", url, headers: auth, payload });
}

before(async () => {
  env = await createTestEnv();
  auth = await env.tenant();
  const inject = env.app.inject.bind(env.app);

  // MNIST: an MLP on 1,000 real digits, then 64 of them (raw 0–255) to attack.
  const mnist = (await post("/v1/datasets/builtin/mnist", { name: "digits", rows: 1000 })).json();
  mnistId = mnist.id;
  await createModel(inject, auth, "digits", { input: { shape: [28, 28, 1] }, layers: [{ type: "flatten" }, { type: "dense", units: 64, activation: "relu" }, { type: "dense", units: 10, activation: "softmax" }] });
  await trainInProcess(env, auth, "digits", mnist.id, { epochs: 8, batchSize: 32, optimizer: { type: "adam", learningRate: 0.003 }, seed: 3 });
  // The same, trained adversarially: half of each batch replaced by FGSM examples at ε = 25 grey levels.
  await createModel(inject, auth, "digits-robust", { input: { shape: [28, 28, 1] }, layers: [{ type: "flatten" }, { type: "dense", units: 64, activation: "relu" }, { type: "dense", units: 10, activation: "softmax" }] });
  await trainInProcess(env, auth, "digits-robust", mnist.id, { epochs: 8, batchSize: 32, optimizer: { type: "adam", learningRate: 0.003 }, seed: 3, adversarial: { epsilon: 25, fraction: 0.5 } });
  const rows = (await env.app.inject({ url: `/v1/datasets/${mnist.id}/rows?offset=500&limit=64`, headers: auth })).json();
  digits = { features: rows.items.map((i: { features: number[][][] }) => i.features), labels: rows.items.map((i: { label: string }) => i.label) };

  // Corner squares: uint8 images, so the fitted scaling is 1/255 and the valid range 0–255.
  const random = mulberry32(7);
  const n = 240;
  const labels = Array.from({ length: n }, (_, i) => i % 2);
  const pixels = labels.flatMap((l) => cornerImage(l === 1, random));
  const body = npz({ x: npy("|u1", [n, SIDE, SIDE, 1], pixels), y: npy("<i4", [n], labels) });
  const corner = await env.app.inject({ method: "POST", url: "/v1/datasets?name=corner", headers: { ...auth, "content-type": "application/x-npz" }, payload: body });
  assert.equal(corner.statusCode, 201, corner.body);
  await createModel(inject, auth, "corner", { input: { shape: [SIDE, SIDE, 1] }, layers: [{ type: "conv2d", filters: 4, kernelSize: 3, padding: "same", activation: "relu" }, { type: "flatten" }, { type: "dense", units: 2, activation: "softmax" }] });
  await trainInProcess(env, auth, "corner", corner.json().id, { epochs: 12, batchSize: 16, optimizer: { type: "adam", learningRate: 0.01 }, seed: 1 });
});

after(async () => {
  await env?.close();
});

describe("adversarial examples", () => {
  test("FGSM lowers an MNIST MLP's accuracy as ε grows, PGD lowers it further, inputs stay in 0–255", async (t) => {
    const res = await post("/v1/models/digits/versions/1/adversarial", { method: "fgsm", epsilon: [0, 8, 25, 50], instances: digits.features, labels: digits.labels });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    t.diagnostic(`FGSM: ${body.results.map((r: { epsilon: number; accuracy: number }) => `ε=${r.epsilon}: ${r.accuracy.toFixed(2)}`).join(", ")}`);
    assert.deepEqual(body.range, [0, 255]);
    const acc = body.results.map((r: { accuracy: number }) => r.accuracy);
    assert.ok(acc[0] >= 0.8, `clean accuracy ${acc[0]}`);
    for (let i = 1; i < acc.length; i++) assert.ok(acc[i] <= acc[i - 1] + 1e-9, `accuracy rose from ε ${i - 1} to ${i}: ${acc}`);
    assert.ok(acc[3] <= acc[0] - 0.4, `ε = 50 left accuracy at ${acc[3]} (clean ${acc[0]})`);
    assert.ok(body.results[3].successRate >= 0.4);
    // Each adversarial input is within ε of its original, and within 0–255.
    const original = digits.features[0].flat(2);
    const adv = body.instances[0].after[2].adversarial.flat(2) as number[];
    assert.equal(adv.length, 784);
    adv.forEach((v, i) => assert.ok(v >= 0 && v <= 255 && Math.abs(v - original[i]) <= 25 + 1e-3, `pixel ${i}: ${v} from ${original[i]}`));
    assert.equal(body.instances[0].label, digits.labels[0]);

    const pgd = (await post("/v1/models/digits/versions/1/adversarial", { method: "pgd", epsilon: 25, steps: 10, instances: digits.features, labels: digits.labels })).json();
    t.diagnostic(`PGD ε=25: ${pgd.results[0].accuracy.toFixed(2)} (FGSM ${acc[2].toFixed(2)})`);
    assert.ok(pgd.results[0].accuracy <= acc[2] + 1e-9, `PGD ${pgd.results[0].accuracy} vs FGSM ${acc[2]}`);
  });

  test("a targeted attack reaches its class; the curve is a PNG", async () => {
    const payload = { method: "pgd", epsilon: [10, 60], steps: 20, targetClass: "3", instances: digits.features.slice(0, 16), labels: digits.labels.slice(0, 16) };
    const body = (await post("/v1/models/digits/versions/1/adversarial", payload)).json();
    assert.equal(body.targetClass, "3");
    assert.ok(body.results[1].successRate >= 0.8, `success towards 3 at ε 60: ${body.results[1].successRate}`);
    assert.ok(body.results[1].successRate >= body.results[0].successRate);
    const picture = await post("/v1/models/digits/versions/1/adversarial.png", { ...payload, targetClass: undefined, method: "fgsm", epsilon: [0, 4, 8, 16, 25, 35, 50, 75], instances: digits.features, labels: digits.labels });
    assert.equal(picture.statusCode, 200);
    keep("insight-adversarial.png", picture.rawPayload);
    assert.equal(picture.headers["content-type"], "image/png");
    assert.equal((await sharp(picture.rawPayload).metadata()).format, "png");
  });

  test("adversarial training raises accuracy under attack", async (t) => {
    const attack = { method: "fgsm", epsilon: [0, 25], instances: digits.features, labels: digits.labels };
    const plain = (await post("/v1/models/digits/versions/1/adversarial", attack)).json().results;
    const robust = (await post("/v1/models/digits-robust/versions/1/adversarial", attack)).json().results;
    t.diagnostic(`FGSM ε=25: plain ${plain[1].accuracy.toFixed(2)}, adversarially trained ${robust[1].accuracy.toFixed(2)} (clean ${plain[0].accuracy.toFixed(2)} and ${robust[0].accuracy.toFixed(2)})`);
    assert.ok(robust[0].accuracy >= 0.8, `clean accuracy of the robust model ${robust[0].accuracy}`);
    assert.ok(robust[1].accuracy >= plain[1].accuracy + 0.2, `under attack: robust ${robust[1].accuracy} vs plain ${plain[1].accuracy}`);
    const bad = await env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "digits", dataset: (await env.app.inject({ url: "/v1/datasets", headers: auth })).json().datasets[0].id, adversarial: { epsilon: 0 } } });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().detail, /adversarial\.epsilon: must be > 0/);
  });

  test("bad requests are 400s naming the field", async () => {
    const cases: [object, RegExp][] = [
      [{ epsilon: 1, instances: digits.features.slice(0, 2), labels: ["1"] }, /labels: has 1 labels for 2 instances/],
      [{ epsilon: 1, instances: digits.features.slice(0, 1), labels: ["eleven"] }, /labels\[0\]: no class "eleven"/],
      [{ epsilon: 1, targetClass: 10, instances: digits.features.slice(0, 1), labels: ["1"] }, /targetClass: no class 10/],
      [{ epsilon: -1, instances: digits.features.slice(0, 1), labels: ["1"] }, /epsilon/],
      [{ epsilon: 1, instances: [[[1]]], labels: ["1"] }, /instances\[0\]/],
      // Found by the fuzz test (seed 534062650): a JSON number beyond float32 made NaN gradients and a 500.
      [{ epsilon: 1, instances: [digits.features[1], digits.features[0].map((row, r) => row.map((px, c) => (r === 3 && c === 3 ? [1e308] : px)))], labels: ["1", "2"] }, /instances\[1\]: holds a value beyond float32's range/],
      [{ method: "pgd", steps: 100, epsilon: [1, 2, 3, 4], instances: digits.features, labels: digits.labels }, /epsilon: instances × ε values × steps is 25600; at most 20000/],
    ];
    for (const [payload, want] of cases) {
      const res = await post("/v1/models/digits/versions/1/adversarial", payload);
      assert.equal(res.statusCode, 400, `${JSON.stringify(payload).slice(0, 80)}: ${res.body.slice(0, 200)}`);
      assert.match(res.json().detail, want);
    }
    assert.equal((await post("/v1/models/digits/versions/9/adversarial", { epsilon: 1, instances: digits.features.slice(0, 1), labels: ["1"] })).statusCode, 404);
  });
});

describe("what the network looks at", () => {
  const random = mulberry32(99);
  const image = nestImage(cornerImage(true, random));
  const inside = (r: number, c: number) => r >= SQUARE.from && r <= SQUARE.to && c >= SQUARE.from && c <= SQUARE.to;

  test("saliency is strongest on the corner square that decides the class", async () => {
    const res = await post("/v1/models/corner/versions/1/saliency", { instances: [image] });
    assert.equal(res.statusCode, 200, res.body);
    const [map] = res.json().maps;
    assert.equal(map.class, "1");
    assert.ok(map.probability > 0.9, `p = ${map.probability}`);
    let inSum = 0, inN = 0, outSum = 0, outN = 0;
    map.values.forEach((row: number[], r: number) => row.forEach((v, c) => (inside(r, c) ? ((inSum += v), inN++) : ((outSum += v), outN++))));
    assert.ok(inSum / inN > 2 * (outSum / outN), `mean saliency inside ${inSum / inN} vs outside ${outSum / outN}`);
  });

  test("occlusion: hiding the corner costs the class most", async () => {
    // By default the patch is grey, the middle of the pixels' range, a seventh of the image wide.
    const grey = (await post("/v1/models/corner/versions/1/occlusion", { instances: [image] })).json();
    assert.deepEqual([grey.fill, grey.patch, grey.stride], [127.5, 2, 1]);
    // Here the square is what is brighter than the noise, so hiding it takes a dark patch.
    const res = await post("/v1/models/corner/versions/1/occlusion", { instances: [image], patch: 4, stride: 1, fill: 0 });
    assert.equal(res.statusCode, 200, res.body);
    const [map] = res.json().maps;
    assert.deepEqual([map.height, map.width], [SIDE - 3, SIDE - 3]);
    let best = { v: -Infinity, r: -1, c: -1 };
    map.values.forEach((row: number[], r: number) => row.forEach((v, c) => v > best.v && (best = { v, r, c })));
    // The patch at (r, c) covers rows r..r+3 and columns c..c+3: it must overlap the square.
    assert.ok(best.r <= SQUARE.to && best.r + 3 >= SQUARE.from && best.c <= SQUARE.to && best.c + 3 >= SQUARE.from, `largest drop at ${JSON.stringify(best)}`);
    assert.ok(best.v > 0.5, `largest drop ${best.v}`);
    // Far from the square, hiding costs next to nothing.
    assert.ok(Math.abs(map.values[SIDE - 4][SIDE - 4]) < 0.1, `drop in the far corner ${map.values[SIDE - 4][SIDE - 4]}`);
  });

  test("maps, activations and filters as PNGs; activations and filters as data", async () => {
    for (const kind of ["saliency", "occlusion"]) {
      for (const instances of [[image], [image, image]]) {
        const res = await post(`/v1/models/corner/versions/1/${kind}.png`, { instances, ...(kind === "occlusion" ? { patch: 4, stride: 1, fill: 0 } : {}) });
        assert.equal(res.statusCode, 200, res.body);
        assert.equal((await sharp(res.rawPayload).metadata()).format, "png");
        if (instances.length === 1) keep(`insight-${kind}.png`, res.rawPayload);
      }
    }
    const digit = await post("/v1/models/digits/versions/1/saliency.png", { instances: digits.features.slice(0, 1) });
    assert.equal(digit.statusCode, 200, digit.body);
    keep("insight-saliency-digit.png", digit.rawPayload);
    const conv = "l0_conv2d";
    const act = await post("/v1/models/corner/versions/1/activations", { layer: conv, instances: [image, image] });
    assert.equal(act.statusCode, 200, act.body);
    assert.deepEqual(act.json().shape, [2, SIDE, SIDE, 4]);
    const actPng = await post("/v1/models/corner/versions/1/activations.png", { layer: conv, instances: [image] });
    assert.equal((await sharp(actPng.rawPayload).metadata()).format, "png");
    keep("insight-activations.png", actPng.rawPayload);
    const filters = await env.app.inject({ url: `/v1/models/corner/versions/1/filters?layer=${conv}`, headers: auth });
    assert.equal(filters.statusCode, 200, filters.body);
    assert.deepEqual(filters.json().shape, [3, 3, 1, 4]);
    const filtersPng = await env.app.inject({ url: `/v1/models/corner/versions/1/filters.png?layer=${conv}`, headers: auth });
    assert.equal(filtersPng.headers["content-type"], "image/png");
    keep("insight-filters.png", filtersPng.rawPayload);
    // A layer that is not there, or not a convolution: 400s that say which there are.
    const missing = await post("/v1/models/corner/versions/1/activations", { layer: "nope", instances: [image] });
    assert.equal(missing.statusCode, 400);
    assert.match(missing.json().detail, /layer: no layer 'nope'; the layers are .*l0_conv2d/);
    const dense = await env.app.inject({ url: "/v1/models/corner/versions/1/filters?layer=l2_dense", headers: auth });
    assert.equal(dense.statusCode, 400);
    assert.match(dense.json().detail, /is not a convolution/);
  });
});

describe("what the network learned", () => {
  test("a first convolution trained on colour images learns colour detectors (the README's filters picture)", async (t) => {
    // Shapes in one of three colours on grey noise; the class is the colour and the shape (6 classes),
    // so the first layer needs both colour and edges.
    const side = 16;
    const colours = [[220, 40, 40], [40, 200, 60], [50, 80, 230]];
    const shapes = ["disc", "bar"];
    const random = mulberry32(5);
    const n = 480;
    const pixels: number[] = [];
    const labels: number[] = [];
    for (let i = 0; i < n; i++) {
      const c = i % 3;
      const s = Math.floor(i / 3) % 2;
      const cx = 4 + random() * 8;
      const cy = 4 + random() * 8;
      for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) {
        const inside = s === 0 ? (x - cx) ** 2 + (y - cy) ** 2 <= 9 : Math.abs(x - cx) <= 1.2 && Math.abs(y - cy) <= 5;
        const grey = 60 + random() * 80;
        for (let k = 0; k < 3; k++) pixels.push(Math.round(inside ? colours[c][k] : grey));
      }
      labels.push(c * 2 + s);
    }
    const body = npz({ x: npy("|u1", [n, side, side, 3], pixels), y: npy("<i4", [n], labels) });
    const up = await env.app.inject({ method: "POST", url: "/v1/datasets?name=colours", headers: { ...auth, "content-type": "application/x-npz" }, payload: body });
    assert.equal(up.statusCode, 201, up.body);
    await createModel(env.app.inject.bind(env.app), auth, "colours", {
      input: { shape: [side, side, 3] },
      layers: [{ type: "conv2d", filters: 8, kernelSize: 5, padding: "same", activation: "relu" }, { type: "maxPooling2d", poolSize: 2 }, { type: "conv2d", filters: 8, kernelSize: 3, activation: "relu" }, { type: "flatten" }, { type: "dense", units: 6, activation: "softmax" }],
    });
    await trainInProcess(env, auth, "colours", up.json().id, { epochs: 15, batchSize: 16, optimizer: { type: "adam", learningRate: 0.005 }, seed: 2 });
    const v = (await env.app.inject({ url: "/v1/models/colours/versions/1", headers: auth })).json();
    assert.ok(v.metrics.val_accuracy >= 0.9, `validation accuracy ${v.metrics.val_accuracy}`);
    const kernel = (await env.app.inject({ url: "/v1/models/colours/versions/1/filters?layer=l0_conv2d", headers: auth })).json();
    assert.deepEqual(kernel.shape, [5, 5, 3, 8]);
    // Colour selectivity: a filter whose summed weights differ by channel far more than noise would.
    const w = kernel.values as number[][][][];
    const chroma = Array.from({ length: 8 }, (_, f) => {
      const sums = [0, 1, 2].map((c) => w.flat().reduce((a, cell) => a + cell[c][f], 0));
      const size = w.flat().reduce((a, cell) => a + Math.abs(cell[0][f]) + Math.abs(cell[1][f]) + Math.abs(cell[2][f]), 0) / 3;
      return (Math.max(...sums) - Math.min(...sums)) / size;
    });
    t.diagnostic(`val_accuracy ${v.metrics.val_accuracy.toFixed(3)}; per filter, channel sums' spread over mean |w| per channel: ${chroma.map((x) => x.toFixed(2)).join(", ")}`);
    assert.ok(Math.max(...chroma) > 0.5, "some filter is colour-selective");
    const png = await env.app.inject({ url: "/v1/models/colours/versions/1/filters.png?layer=l0_conv2d", headers: auth });
    assert.equal(png.statusCode, 200);
    const { channels } = await sharp(png.rawPayload).metadata();
    assert.ok(channels >= 3);
    keep("insight-filters-colour.png", png.rawPayload);
  });
});

describe("pruning", () => {
  test("a pruning job whose worker is killed mid-fine-tuning resumes with its pruned weights still held at zero", async () => {
    const doomed = await new WorkerProcess(envOf(env.workerConfig)).start();
    let rescuer: TrainingWorker | undefined;
    try {
      // A model of its own (the digits MLP's spec, started from its version 1), so the versions of 'digits' stay as the other tests number them.
      await createModel(env.app.inject.bind(env.app), auth, "digits-pruned", { input: { shape: [28, 28, 1] }, layers: [{ type: "flatten" }, { type: "dense", units: 64, activation: "relu" }, { type: "dense", units: 10, activation: "softmax" }] });
      const res = await post("/v1/training-jobs", { model: "digits-pruned", dataset: mnistId, epochs: 12, batchSize: 8, optimizer: { type: "adam", learningRate: 0.001 }, seed: 4, initFrom: { model: "digits", version: 1 }, prune: { criterion: "magnitude", sparsity: 0.5 } });
      assert.equal(res.statusCode, 202, res.body);
      const id = res.json().id;
      const inject = env.app.inject.bind(env.app);
      await waitForJob(inject, auth, id, (j) => j.progress.epoch >= 2);
      await doomed.kill();
      const atDeath = (await waitForJob(inject, auth, id, () => true)).progress.epoch;
      assert.ok(atDeath < 12, "killed mid-fine-tuning");
      rescuer = createTrainingWorker(env.workerConfig, () => {});
      const done = await waitForJob(inject, auth, id, undefined, 120_000);
      assert.equal(done.status, "succeeded", JSON.stringify(done));
      const row = await env.app.db.trainingJob.findUniqueOrThrow({ where: { id }, select: { attempts: true, version: { select: { metrics: true } } } });
      assert.equal(row.attempts, 2, "claimed once by each worker");
      // Without its masks the resumed attempt's Adam steps would move the zeros: sparsity would fall far below 0.5.
      const sparsity = (row.version!.metrics as { sparsity: number }).sparsity;
      assert.ok(Math.abs(sparsity - 0.5) < 0.005, `sparsity after the resumed fine-tuning: ${sparsity}`);
    } finally {
      await doomed.stop();
      await rescuer?.close();
    }
  });


  test("OBD and magnitude each prune the MNIST MLP to 50% as a job from a version: a new version, its sparsity and accuracy, and the curve of both criteria", async (t) => {
    const base = (await env.app.inject({ url: "/v1/models/digits/versions/1", headers: auth })).json().metrics;
    for (const [criterion, version] of [["obd", 2], ["magnitude", 3]] as const) {
      await trainInProcess(env, auth, "digits", mnistId, { epochs: 1, batchSize: 32, optimizer: { type: "adam", learningRate: 0.001 }, seed: 3, initFrom: { version: 1 }, prune: { criterion, sparsity: 0.5, samples: 8 } });
      const v = (await env.app.inject({ url: `/v1/models/digits/versions/${version}`, headers: auth })).json();
      assert.ok(Math.abs(v.metrics.sparsity - 0.5) < 0.005, `${criterion}: sparsity ${v.metrics.sparsity}`);
      const job = await env.app.db.trainingJob.findFirstOrThrow({ where: { version: { version } }, select: { id: true } });
      const report = (await env.app.inject({ url: `/v1/training-jobs/${job.id}`, headers: auth })).json().pruning;
      assert.equal(report.criterion, criterion);
      assert.ok(Math.abs(report.achieved - 0.5) < 0.005);
      const at = (c: string, s: number) => report.curve.find((p: { criterion: string; sparsity: number }) => p.criterion === c && p.sparsity === s).metrics.val_accuracy;
      t.diagnostic(`${criterion}: val_accuracy ${base.val_accuracy.toFixed(3)} → pruned to 50% ${at(criterion, 0.5).toFixed(3)} (obd ${at("obd", 0.5).toFixed(3)}, magnitude ${at("magnitude", 0.5).toFixed(3)}; at 90%: obd ${at("obd", 0.9).toFixed(3)}, magnitude ${at("magnitude", 0.9).toFixed(3)}) → fine-tuned one epoch ${v.metrics.val_accuracy.toFixed(3)}`);
      assert.equal(at("obd", 0), at("magnitude", 0), "no pruning is no pruning, whichever criterion");
      assert.ok(v.metrics.val_accuracy >= 0.8, `${criterion}: fine-tuned accuracy ${v.metrics.val_accuracy}`);
      const picture = await env.app.inject({ url: `/v1/training-jobs/${job.id}/pruning.png`, headers: auth });
      assert.equal(picture.statusCode, 200);
      if (criterion === "obd") keep("insight-pruning.png", picture.rawPayload);
    }
    // Pruned and not fine-tuned (epochs 0): the version is the pruned weights, and its accuracy is the curve's at that sparsity.
    await trainInProcess(env, auth, "digits", mnistId, { epochs: 0, batchSize: 32, seed: 3, initFrom: { version: 1 }, prune: { criterion: "magnitude", sparsity: 0.5 } });
    const unTuned = (await env.app.inject({ url: "/v1/models/digits/versions/4", headers: auth })).json();
    const unTunedJob = await env.app.db.trainingJob.findFirstOrThrow({ where: { version: { version: 4 } }, select: { id: true } });
    const unTunedReport = (await env.app.inject({ url: `/v1/training-jobs/${unTunedJob.id}`, headers: auth })).json().pruning;
    const onCurve = unTunedReport.curve.find((p: { criterion: string; sparsity: number }) => p.criterion === "magnitude" && p.sparsity === 0.5).metrics.val_accuracy;
    assert.ok(Math.abs(unTuned.metrics.sparsity - 0.5) < 0.005);
    assert.equal(unTuned.metrics.val_accuracy, onCurve, "the version's accuracy is the pruned weights' own");
    const noEpochs = await env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "digits", dataset: mnistId, epochs: 0 } });
    assert.equal(noEpochs.statusCode, 400);
    assert.match(noEpochs.json().detail, /epochs: must be >= 1 \(0 only with prune/);
    const noBase = await env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "digits", dataset: mnistId, prune: { sparsity: 0.5 } } });
    assert.equal(noBase.statusCode, 400);
    assert.match(noBase.json().detail, /prune: pruning starts from a trained version: name it with initFrom/);
  });
});
