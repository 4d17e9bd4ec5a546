// Images end to end: a zip of class folders (circles, squares and crosses drawn in the test and
// encoded as PNG) uploaded through the API, a small CNN trained on it with augmentation by a real
// worker (sandboxed child, real Redis and Postgres, TensorFlow.js), and predictions from raw
// 0–255 pixels. Bad zips and bad augmentation are 4xx that name where, and store nothing.
import assert from "node:assert/strict";
import { availableParallelism } from "node:os";
import { after, before, describe, test } from "node:test";
import { mulberry32 } from "../../lib/engine/seeded-random.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { useTrainingEnv } from "../helpers/training-env.ts";
import { drawShape, encode, makeZip, SHAPES, type Shape, type ZipEntry } from "../helpers/image-zips.ts";
import { createModel, uploadIris, waitForJob } from "../helpers/training.ts";

const SIZE = 16;
const PER_CLASS = 36;

const ctx = useTrainingEnv("acme");

const inject = () => ctx.env.app.inject.bind(ctx.env.app);
const upload = (zip: Buffer, query = "name=shapes") =>
  ctx.env.app.inject({ method: "POST", url: `/v1/datasets?${query}`, headers: { ...ctx.auth, "content-type": "application/zip" }, payload: zip });
const datasetCount = async () => (await ctx.env.app.inject({ url: "/v1/datasets", headers: ctx.auth })).json().datasets.length;

async function shapesZip(): Promise<Buffer> {
  const random = mulberry32(2024);
  const entries: ZipEntry[] = [{ name: "shapes/" }, { name: "__MACOSX/shapes/._circle", data: Buffer.from("junk") }];
  for (const shape of SHAPES) {
    for (let i = 0; i < PER_CLASS; i++) entries.push({ name: `shapes/${shape}/${String(i).padStart(3, "0")}.png`, data: await encode(drawShape(shape, SIZE, random), SIZE, SIZE, 3) });
  }
  return makeZip(entries);
}

/** Raw pixels as a predict instance: [H][W][3] numbers 0–255. */
function nested(px: Uint8Array): number[][][] {
  return Array.from({ length: SIZE }, (_, y) => Array.from({ length: SIZE }, (_, x) => [0, 1, 2].map((c) => px[(y * SIZE + x) * 3 + c])));
}

describe("image zips through the API", () => {
  test("upload, train a CNN with augmentation through a real worker, predict from raw pixels", async () => {
    const res = await upload(await shapesZip());
    assert.equal(res.statusCode, 201, res.body);
    const dataset = res.json();
    assert.equal(dataset.rows, SHAPES.length * PER_CLASS);
    assert.deepEqual(dataset.inputs[0], { name: "input", shape: [SIZE, SIZE, 3], kind: "image" });
    assert.deepEqual(dataset.classes, ["circle", "cross", "square"]);
    assert.deepEqual(dataset.targetShape, [1]);

    await createModel(inject(), ctx.auth, "shapes", {
      input: { shape: [SIZE, SIZE, 3] },
      layers: [
        { type: "conv2d", filters: 8, kernelSize: 3, padding: "same", activation: "relu" },
        { type: "maxPooling2d", poolSize: 2 },
        { type: "conv2d", filters: 16, kernelSize: 3, padding: "same", activation: "relu" },
        { type: "maxPooling2d", poolSize: 2 },
        { type: "flatten" },
        { type: "dense", units: 32, activation: "relu" },
        { type: "dense", units: 3, activation: "softmax" },
      ],
    });
    // Circles, squares and crosses stay what they are when mirrored, turned a little or moved.
    const augmentation = { flipHorizontal: true, flipVertical: true, rotation: 10, shift: 0.08, brightness: 0.1, contrast: 0.1 };
    const job = await ctx.env.app.inject({
      method: "POST", url: "/v1/training-jobs", headers: ctx.auth,
      payload: { model: "shapes", dataset: dataset.id, epochs: 25, batchSize: 16, optimizer: { type: "adam", learningRate: 0.005 }, validationSplit: 0.25, seed: 7, augmentation },
    });
    assert.equal(job.statusCode, 202, job.body);
    assert.deepEqual(job.json().hyperparameters.augmentation, augmentation);
    const done = await waitForJob(inject(), ctx.auth, job.json().id, undefined, 300_000);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    // Chance is 1/3.
    assert.ok(done.metrics.val_accuracy >= 0.8, `val_accuracy ${done.metrics.val_accuracy}`);
    console.log(`# shapes: val_accuracy ${done.metrics.val_accuracy.toFixed(3)}, accuracy ${done.metrics.accuracy.toFixed(3)} (augmented training batches)`);

    // New drawings, never seen, as raw 0–255 pixels.
    const random = mulberry32(99);
    const fresh: { shape: Shape; px: Uint8Array }[] = SHAPES.flatMap((shape) => Array.from({ length: 4 }, () => ({ shape, px: drawShape(shape, SIZE, random) })));
    const predict = await ctx.env.app.inject({ method: "POST", url: "/v1/models/shapes:predict", headers: ctx.auth, payload: { instances: fresh.map((f) => nested(f.px)) } });
    assert.equal(predict.statusCode, 200, predict.body);
    const classes = dataset.classes as string[];
    const guessed = predict.json().predictions.map((p: number[]) => classes[p.indexOf(Math.max(...p))]);
    const right = guessed.filter((g: string, i: number) => g === fresh[i].shape).length;
    console.log(`# shapes: ${right} of ${fresh.length} fresh drawings predicted right`);
    assert.ok(right >= 9, `${right} of ${fresh.length} right: ${guessed.join(", ")}`);
  });

  test("threads: a job on two threads (data parallel, worker threads in the worker's child) trains what one thread trains, up to rounding", async () => {
    const datasets = (await ctx.env.app.inject({ url: "/v1/datasets", headers: ctx.auth })).json().datasets as { id: string; name: string }[];
    const shapes = datasets.find((d) => d.name === "shapes");
    assert.ok(shapes, "the shapes dataset of the first test");
    const run = async (threads: number | "auto") => {
      const job = await ctx.env.app.inject({
        method: "POST", url: "/v1/training-jobs", headers: ctx.auth,
        payload: { model: "shapes", dataset: shapes.id, epochs: 3, batchSize: 32, optimizer: { type: "adam", learningRate: 0.005 }, validationSplit: 0.25, seed: 11, threads, augmentation: { flipHorizontal: true, shift: 0.08 } },
      });
      assert.equal(job.statusCode, 202, job.body);
      assert.equal(job.json().hyperparameters.threads, threads);
      const done = await waitForJob(inject(), ctx.auth, job.json().id, undefined, 300_000);
      assert.equal(done.status, "succeeded", JSON.stringify(done));
      return done.metrics as Record<string, number>;
    };
    const one = await run(1);
    // "auto": the model has convolutions and 32 rows make two shares of 16: two threads on a two-core worker.
    const two = await run(availableParallelism() >= 2 ? "auto" : 2);
    console.log(`# shapes, 3 epochs: loss ${one.loss} on one thread, ${two.loss} on two`);
    assert.notEqual(two.loss, one.loss, "the same bits: did the batches go to two threads?");
    assert.ok(Math.abs(two.loss - one.loss) < 1e-4 * one.loss, `loss ${one.loss} (one thread) against ${two.loss} (two)`);
    assert.equal(two.accuracy, one.accuracy);

    // One thread is what truncated BPTT and adversarial training run on: asked for more, a 400 at threads.
    const refused = await ctx.env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: ctx.auth, payload: { model: "shapes", dataset: shapes.id, threads: 2, adversarial: { epsilon: 8 } } });
    assert.equal(refused.statusCode, 400, refused.body);
    assert.equal(refused.json().errors[0].path, "threads");
    assert.match(refused.json().errors[0].message, /adversarial trains on one thread/);
  });

  test("augmentation on a tabular dataset: a 400 naming augmentation, and no job", async () => {
    const iris = await uploadIris(inject(), ctx.auth);
    await createModel(inject(), ctx.auth, "iris");
    const before = await ctx.env.app.db.trainingJob.count();
    const res = await ctx.env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: ctx.auth, payload: { model: "iris", dataset: iris, augmentation: { flipHorizontal: true } } });
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().errors[0].path, "augmentation");
    assert.match(res.json().detail, /applies to images \(\[H, W, C\] inputs\); the dataset's inputs are 'input' \[4\]/);
    assert.equal(await ctx.env.app.db.trainingJob.count(), before);
  });

  test("an augmentation field out of bounds or unknown: a 400 at its path", async () => {
    for (const [augmentation, path] of [[{ rotation: 500 }, "augmentation.rotation"], [{ flipHorizontl: true }, "augmentation"]] as const) {
      const res = await ctx.env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: ctx.auth, payload: { model: "shapes", dataset: "00000000-0000-4000-8000-000000000000", augmentation } });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.json().errors[0].path, path, res.body);
    }
  });

  test("a corrupt image: a 400 naming the file inside the zip, and nothing stored", async () => {
    const before = await datasetCount();
    const good = await encode(drawShape("circle", SIZE, mulberry32(1)), SIZE, SIZE, 3);
    const zip = makeZip([{ name: "a/1.png", data: good }, { name: "b/1.png", data: good }, { name: "b/broken.png", data: good.subarray(0, 60) }]);
    const res = await upload(zip);
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().errors[0].path, "b/broken.png");
    assert.equal(await datasetCount(), before);
  });

  test("images of two sizes without ?imageSize: a 400 naming both files and their sizes", async () => {
    const zip = makeZip([
      { name: "a/1.png", data: await encode(new Uint8Array(8 * 8 * 3), 8, 8, 3) },
      { name: "b/1.png", data: await encode(new Uint8Array(8 * 9 * 3), 8, 9, 3) },
    ]);
    const res = await upload(zip);
    assert.equal(res.statusCode, 400, res.body);
    assert.match(res.json().detail, /b\/1\.png: is 8×9 \(H×W\), a\/1\.png is 8×8/);
    const resized = await upload(zip, "name=two&imageSize=4,4&channels=1");
    assert.equal(resized.statusCode, 201, resized.body);
    assert.deepEqual(resized.json().inputs[0].shape, [4, 4, 1]);
  });

  test("not a zip: a 400 at zip", async () => {
    const res = await upload(Buffer.from("PK but not really a zip"));
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().errors[0].path, "zip");
  });
});

describe("image zips against the dataset file limit", () => {
  let small: TestEnv;
  before(async () => {
    // An image zip streams: the dataset file limit bounds it, the body limit does not.
    small = await createTestEnv({ TRAINYARD_MAX_DATASET_BYTES: "200000" });
  });
  after(async () => {
    await small?.close();
  });

  test("a small zip of huge blank images (a pixel bomb): a 413 before decoding, and nothing stored", async () => {
    const key = await small.tenant("bombed");
    const blank = await encode(new Uint8Array(1500 * 1500), 1500, 1500, 1);
    const zip = makeZip([0, 1].flatMap((i) => [{ name: `a/${i}.png`, data: blank }, { name: `b/${i}.png`, data: blank }]));
    assert.ok(zip.length < 200_000, `the zip is ${zip.length} bytes`);
    const res = await small.app.inject({ method: "POST", url: "/v1/datasets?name=bomb", headers: { ...key, "content-type": "application/zip" }, payload: zip });
    assert.equal(res.statusCode, 413, res.body);
    assert.match(res.json().detail, /hold 9,000,000 pixels, more than 3,200,000 \(16 per byte of the dataset file limit\)/);
    assert.equal((await small.app.inject({ url: "/v1/datasets", headers: key })).json().datasets.length, 0);
  });

  test("a zip whose entries declare more than the dataset file limit: a 413", async () => {
    const key = await small.tenant("declared");
    const png = await encode(new Uint8Array(4 * 4 * 3), 4, 4, 3);
    const zip = makeZip([{ name: "a/1.png", data: png }, { name: "b/1.png", data: png, declaredSize: 400_000 }]);
    const res = await small.app.inject({ method: "POST", url: "/v1/datasets?name=bomb", headers: { ...key, "content-type": "application/zip" }, payload: zip });
    assert.equal(res.statusCode, 413, res.body);
    assert.match(res.json().detail, /decompress to 0\.4 MiB, more than the dataset file limit of 0\.2 MiB/);
  });
});
