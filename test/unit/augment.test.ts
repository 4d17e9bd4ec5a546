// Augmentation: the schema's bounds and the queue-time check, the geometry (exact where it moves
// whole pixels, masks moved with their images), the photometry's clipping, determinism in (seed,
// epoch, position), validation rows left alone, and a resumed job augmenting bit for bit as an
// uninterrupted one.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/engine/backend.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { loadModel, saveModel, type StoredModel } from "../../lib/engine/model-io.ts";
import { deriveSeed, mulberry32, withSeededRandom } from "../../lib/engine/seeded-random.ts";
import { Augmenter, sourceMap, warp, type ExampleTransform } from "../../lib/engine/train/augment.ts";
import { compileForTraining, train, type EpochMetrics, type OptimizerConfig, type TrainConfig, type TrainData } from "../../lib/engine/train/trainer.ts";
import { augmentationSchema, checkAugmentation, type Augmentation } from "../../lib/model-spec/augmentation-schema.ts";
import { modelSpecSchema } from "../../lib/model-spec/model-spec-schema.ts";
import { ValidationError } from "../../lib/errors.ts";

before(async () => {
  await initBackend("auto");
});

const H = 6;
const W = 5;
const C = 2;

/** `rows` images of H × W × C with distinct values, and a mask per image derived from it (channel 0 over a threshold). */
function images(rows: number, seed = 1): TrainData {
  const random = mulberry32(seed);
  const x = Float32Array.from({ length: rows * H * W * C }, () => Math.round(random() * 255));
  const mask = new Float32Array(rows * H * W);
  for (let p = 0; p < rows * H * W; p++) mask[p] = x[p * C] > 127 ? 1 : 0;
  return {
    rows,
    inputs: [{ data: x, shape: [H, W, C] }],
    targets: [{ name: "output", task: "classification", classes: ["0", "1"], data: mask, shape: [H, W] }],
  };
}

const identity: ExampleTransform = { flipX: false, flipY: false, angle: 0, scale: 1, shiftX: 0, shiftY: 0, pixelsX: 0, pixelsY: 0, brightness: 0, contrast: 1 };
const at = (data: Float32Array, y: number, x: number, k: number) => data[(y * W + x) * C + k];

describe("augmentation schema and the queue-time check", () => {
  test("every field is bounded, unknown fields are refused, and the error names the field", () => {
    const bad: [object, string][] = [
      [{ rotation: 181 }, "rotation"], [{ rotation: -1 }, "rotation"], [{ shift: 0.6 }, "shift"], [{ zoom: 0.9 }, "zoom"], [{ crop: 0.05 }, "crop"], [{ crop: 1.5 }, "crop"],
      [{ padCrop: 2.5 }, "padCrop"], [{ padCrop: 100 }, "padCrop"], [{ brightness: 2 }, "brightness"], [{ contrast: -0.1 }, "contrast"], [{ fill: "wrap" }, "fill"], [{ flipHorizontl: true }, ""],
    ];
    for (const [value, field] of bad) {
      const r = augmentationSchema.safeParse(value);
      assert.equal(r.success, false, JSON.stringify(value));
      const issue = r.error!.issues[0];
      assert.equal(field ? issue.path.join(".") : (issue as { keys?: string[] }).keys?.join(), field || "flipHorizontl", JSON.stringify(value));
    }
    assert.equal(augmentationSchema.safeParse({ flipHorizontal: true, rotation: 15, shift: 0.1, zoom: 0.1, crop: 0.8, padCrop: 4, brightness: 0.2, contrast: 0.2, fill: "constant" }).success, true);
  });

  test("augmentation on a dataset without an image input is a 400 at `augmentation`; with an image input (and metadata) it is fine", () => {
    const err = (() => {
      try {
        checkAugmentation({ flipHorizontal: true }, [{ name: "input", shape: [4] }]);
      } catch (e) {
        return e;
      }
    })();
    assert.ok(err instanceof ValidationError);
    assert.equal(err.problems[0].path, "augmentation");
    assert.match(err.message, /applies to images \(\[H, W, C\] inputs\); the dataset's inputs are 'input' \[4\]/);
    checkAugmentation({ flipHorizontal: true }, [{ name: "image", shape: [8, 8, 3] }, { name: "meta", shape: [3] }]);
    // Nothing switched on: nothing to check.
    checkAugmentation({}, [{ name: "input", shape: [4] }]);
    checkAugmentation(undefined, [{ name: "input", shape: [4] }]);
  });
});

describe("geometry", () => {
  const data = images(1).inputs[0].data;

  test("the identity, flips and pad-and-crop shifts move whole pixels exactly", () => {
    const out = new Float32Array(H * W * C);
    warp(data, 0, out, 0, H, W, C, sourceMap(identity, H, W), "reflect", false);
    assert.deepEqual(out, data);
    warp(data, 0, out, 0, H, W, C, sourceMap({ ...identity, flipX: true }, H, W), "reflect", false);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let k = 0; k < C; k++) assert.equal(at(out, y, x, k), at(data, y, W - 1 - x, k));
    warp(data, 0, out, 0, H, W, C, sourceMap({ ...identity, flipY: true }, H, W), "reflect", false);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) assert.equal(at(out, y, x, 1), at(data, H - 1 - y, x, 1));
    // Shifted by 2 columns: out(x) = in(x + 2); beyond the edge, fill.
    const shifted = { ...identity, pixelsX: 2 };
    warp(data, 0, out, 0, H, W, C, sourceMap(shifted, H, W), "constant", false);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) assert.equal(at(out, y, x, 0), x + 2 < W ? at(data, y, x + 2, 0) : 0);
    warp(data, 0, out, 0, H, W, C, sourceMap(shifted, H, W), "nearest", false);
    assert.equal(at(out, 0, W - 1, 0), at(data, 0, W - 1, 0));
    warp(data, 0, out, 0, H, W, C, sourceMap(shifted, H, W), "reflect", false);
    // reflect: … c d | d c …: column W (one past the edge) shows column W − 1, W + 1 shows W − 2.
    assert.equal(at(out, 0, W - 2, 0), at(data, 0, W - 1, 0));
    assert.equal(at(out, 0, W - 1, 0), at(data, 0, W - 2, 0));
  });

  test("a 180° rotation of a square image is its double mirror (to rounding)", () => {
    const n = 4;
    const sq = Float32Array.from({ length: n * n }, (_, i) => i * 3);
    const out = new Float32Array(n * n);
    warp(sq, 0, out, 0, n, n, 1, sourceMap({ ...identity, angle: Math.PI }, n, n), "reflect", false);
    for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) assert.ok(Math.abs(out[y * n + x] - sq[(n - 1 - y) * n + (n - 1 - x)]) < 1e-4);
  });

  test("masks get their image's geometry, at the nearest pixel: ids stay ids", () => {
    const d = images(4);
    for (const a of [{ flipHorizontal: true, flipVertical: true, padCrop: 2 }, { rotation: 40, zoom: 0.3, shift: 0.2, crop: 0.6 }] as Augmentation[]) {
      const aug = Augmenter.create(a, 9, d)!;
      const batch = aug.batch(1, 0, [0, 1, 2, 3]);
      const img = batch.inputs[0]!;
      const mask = batch.targets[0]!;
      assert.ok(mask.every((v) => v === 0 || v === 1), "class ids only");
      if (a.rotation) {
        // Bilinear and nearest sampling differ near edges; most pixels still agree.
        let agree = 0;
        for (let p = 0; p < 4 * H * W; p++) agree += Number((mask[p] === 1) === (img[p * C] > 127));
        assert.ok(agree / (4 * H * W) > 0.75, `agree ${agree}`);
      } else {
        for (let p = 0; p < 4 * H * W; p++) assert.equal(mask[p], img[p * C] > 127 ? 1 : 0, `pixel ${p}`);
      }
    }
  });
});

describe("photometry and determinism", () => {
  test("brightness and contrast stay within the input's value range", () => {
    const d = images(8);
    const aug = Augmenter.create({ brightness: 1, contrast: 1 }, 3, d)!;
    const { inputs, targets } = aug.batch(2, 0, [0, 1, 2, 3, 4, 5, 6, 7]);
    const lo = Math.min(...d.inputs[0].data);
    const hi = Math.max(...d.inputs[0].data);
    assert.ok(inputs[0]!.every((v) => v >= lo && v <= hi));
    assert.notDeepEqual(inputs[0], d.inputs[0].data);
    assert.equal(targets[0], undefined, "no geometry: masks are gathered as they are");
  });

  test("an example's transform depends only on (seed, epoch, position): not on the call order, nor on other batches", () => {
    const d = images(10);
    const a: Augmentation = { flipHorizontal: true, rotation: 20, shift: 0.1, brightness: 0.2 };
    const one = Augmenter.create(a, 5, d)!;
    const two = Augmenter.create(a, 5, d)!;
    const late = one.batch(3, 4, [7, 2]);
    two.batch(1, 0, [0, 1, 2, 3]);
    assert.deepEqual(two.batch(3, 4, [7, 2]), late);
    assert.deepEqual(one.transformAt(3, 5), two.transformAt(3, 5));
    assert.notDeepEqual(one.transformAt(3, 5), one.transformAt(4, 5));
    assert.notDeepEqual(one.batch(3, 4, [7, 2]).inputs, Augmenter.create(a, 6, d)!.batch(3, 4, [7, 2]).inputs, "another seed, other transforms");
  });

  test("nothing switched on: no augmenter; only [H, W, C] inputs are augmented", () => {
    assert.equal(Augmenter.create({}, 1, images(2)), undefined);
    assert.equal(Augmenter.create({ rotation: 0, crop: 1 }, 1, images(2)), undefined);
    assert.throws(() => Augmenter.create({ flipHorizontal: true }, 1, { rows: 1, inputs: [{ data: new Float32Array(4), shape: [4] }], targets: [] }), /applies to images/);
    const mixed: TrainData = { ...images(2), inputs: [images(2).inputs[0], { data: new Float32Array(6), shape: [3] }] };
    const b = Augmenter.create({ flipHorizontal: true }, 1, mixed)!.batch(1, 0, [0, 1]);
    assert.ok(b.inputs[0]);
    assert.equal(b.inputs[1], undefined);
  });
});

describe("in the training loop", () => {
  // Flatten + dense: deterministic on every backend, so resume can be compared bit for bit.
  const spec = modelSpecSchema.parse({
    input: { shape: [H, W, C] },
    layers: [{ type: "flatten" }, { type: "dense", units: 8, activation: "relu" }, { type: "dropout", rate: 0.2 }, { type: "dense", units: 2, activation: "softmax" }],
  });
  const d = images(40, 3);
  const labelled: TrainData = { ...d, targets: [{ name: "output", task: "classification", classes: ["a", "b"], data: Float32Array.from({ length: 40 }, (_, i) => i % 2), shape: [1] }] };
  const all: Augmentation = { flipHorizontal: true, flipVertical: true, rotation: 30, shift: 0.1, zoom: 0.2, crop: 0.8, padCrop: 1, brightness: 0.2, contrast: 0.3 };
  const config = (optimizer: OptimizerConfig, augmentation?: Augmentation, epochs = 6): TrainConfig => ({ epochs, batchSize: 8, optimizer, validationSplit: 0.25, seed: 11, augmentation });

  async function run(cfg: TrainConfig, from?: { checkpoint: StoredModel; epoch: number }) {
    const model = from ? await loadModel(from.checkpoint) : await withSeededRandom(deriveSeed(11, 0), () => buildModel(spec).model);
    if (!from) compileForTraining(model, cfg.optimizer, "categoricalCrossentropy");
    const checkpoints: StoredModel[] = [];
    const metrics: EpochMetrics[] = [];
    await train(model, labelled, cfg, "categoricalCrossentropy", {
      onEpochEnd: async (epoch, m) => {
        metrics[epoch] = m;
        checkpoints[epoch] = await saveModel(model, true);
      },
    }, from?.epoch ?? 0);
    model.dispose();
    return { checkpoints, metrics };
  }

  test("a job resumed from any epoch augments exactly as the uninterrupted one: the same bits", async () => {
    const adam: OptimizerConfig = { type: "adam", learningRate: 0.01 };
    const straight = await run(config(adam, all));
    const plain = await run(config(adam));
    assert.notDeepEqual(straight.metrics[6], plain.metrics[6], "augmentation changes training");
    for (const k of [1, 4]) {
      const resumed = await run(config(adam, all), { checkpoint: straight.checkpoints[k], epoch: k });
      for (let epoch = k + 1; epoch <= 6; epoch++) {
        assert.deepEqual(resumed.metrics[epoch], straight.metrics[epoch], `from epoch ${k}: metrics of epoch ${epoch}`);
        assert.ok(Buffer.from(resumed.checkpoints[epoch].weights).equals(Buffer.from(straight.checkpoints[epoch].weights)), `from epoch ${k}: weights after epoch ${epoch}`);
      }
    }
  });

  test("validation rows are never augmented", async () => {
    // A learning rate so small that the weights barely move: validation loss then only depends
    // on the validation rows. Strong augmentation changes the training loss, not the validation's.
    const tiny: OptimizerConfig = { type: "sgd", learningRate: 1e-12 };
    const strong: Augmentation = { brightness: 1, contrast: 1, rotation: 90, flipHorizontal: true };
    const a = await run(config(tiny, strong, 1));
    const b = await run(config(tiny, undefined, 1));
    // Relative: cross-entropy from logits is not capped, so a large loss moves by more in absolute terms.
    assert.ok(Math.abs(a.metrics[1].val_loss - b.metrics[1].val_loss) < 1e-6 * Math.max(1, Math.abs(a.metrics[1].val_loss)), `${a.metrics[1].val_loss} vs ${b.metrics[1].val_loss}`);
    assert.notEqual(a.metrics[1].loss, b.metrics[1].loss);
  });

  test("a segmentation model trains with its masks augmented along", async () => {
    const seg = modelSpecSchema.parse({ input: { shape: [H, W, C] }, layers: [{ type: "conv2d", filters: 4, kernelSize: 3, padding: "same", activation: "relu" }, { type: "conv2d", filters: 2, kernelSize: 1, activation: "softmax" }] });
    const model = await withSeededRandom(1, () => buildModel(seg).model);
    compileForTraining(model, { type: "adam", learningRate: 0.01 }, "categoricalCrossentropy");
    const r = await train(model, images(16), { ...config({ type: "adam", learningRate: 0.01 }, all, 2) }, "categoricalCrossentropy");
    assert.equal(r.lastEpoch, 2);
    assert.ok(Number.isFinite(r.metrics.loss) && r.metrics.accuracy > 0);
    tf.dispose(model as unknown as tf.Tensor);
  });
});
