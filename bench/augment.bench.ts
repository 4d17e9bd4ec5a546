// `npm run bench:augment`: what image augmentation costs per training batch (32 images), by image
// size and by what is switched on, next to what the batch costs without it (tf.gather of the
// rows) and next to TensorFlow.js's own Transform kernel on the same affine maps (bilinear,
// reflect). Trainyard's is plain typed-array math: the same bits on every backend. A small CNN's
// training step on the same batch is given for scale.
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/engine/backend.ts";
import { buildModel } from "../lib/engine/build/build-model.ts";
import { mulberry32 } from "../lib/engine/seeded-random.ts";
import { Augmenter, sourceMap } from "../lib/engine/train/augment.ts";
import { compileForTraining, train, type TrainData } from "../lib/engine/train/trainer.ts";
import type { Augmentation } from "../lib/model-spec/augmentation-schema.ts";
import { modelSpecSchema } from "../lib/model-spec/model-spec-schema.ts";

const BATCH = 32;
const ROWS = 256;
const quick = process.argv.includes("--quick");
const SIZES: [number, number, number][] = quick ? [[28, 28, 1], [32, 32, 3]] : [[28, 28, 1], [32, 32, 3], [64, 64, 3], [128, 128, 3]];
const SETS: [string, Augmentation][] = [
  ["flips", { flipHorizontal: true }],
  ["geometry (flip, rotate, shift, zoom)", { flipHorizontal: true, rotation: 15, shift: 0.1, zoom: 0.1 }],
  ["colour (brightness, contrast)", { brightness: 0.2, contrast: 0.2 }],
  ["everything", { flipHorizontal: true, flipVertical: true, rotation: 15, shift: 0.1, zoom: 0.1, crop: 0.8, padCrop: 2, brightness: 0.2, contrast: 0.2 }],
];

/** Median milliseconds of fn over enough repetitions (after a warm-up). */
function time(fn: () => void, reps = quick ? 10 : 30): number {
  fn();
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const s = performance.now();
    fn();
    t.push(performance.now() - s);
  }
  return t.sort((a, b) => a - b)[Math.floor(reps / 2)];
}

function data([h, w, c]: [number, number, number]): TrainData {
  const random = mulberry32(1);
  return {
    rows: ROWS,
    inputs: [{ data: Float32Array.from({ length: ROWS * h * w * c }, () => Math.floor(random() * 256)), shape: [h, w, c] }],
    targets: [{ name: "output", task: "classification", classes: ["a", "b"], data: Float32Array.from({ length: ROWS }, (_, i) => i % 2), shape: [1] }],
  };
}

/** One epoch of a small CNN over `d`, in ms per batch (with or without augmentation). */
async function stepMs(d: TrainData, augmentation?: Augmentation): Promise<number> {
  const [h, w, c] = d.inputs[0].shape;
  const spec = modelSpecSchema.parse({
    input: { shape: [h, w, c] },
    layers: [
      { type: "conv2d", filters: 8, kernelSize: 3, activation: "relu" }, { type: "maxPooling2d", poolSize: 2 },
      { type: "conv2d", filters: 16, kernelSize: 3, activation: "relu" }, { type: "globalAveragePooling2d" }, { type: "dense", units: 2, activation: "softmax" },
    ],
  });
  const model = buildModel(spec).model;
  compileForTraining(model, { type: "adam", learningRate: 0.001 }, "categoricalCrossentropy");
  const cfg = { epochs: 1, batchSize: BATCH, optimizer: { type: "adam" as const, learningRate: 0.001 }, validationSplit: 0, seed: 1, augmentation };
  await train(model, d, cfg, "categoricalCrossentropy");
  // The median of three epochs: the machine's cores may be shared.
  const times: number[] = [];
  for (let epoch = 1; epoch <= 3; epoch++) {
    const s = performance.now();
    await train(model, d, { ...cfg, epochs: epoch + 1 }, "categoricalCrossentropy", {}, epoch);
    times.push((performance.now() - s) / (ROWS / BATCH));
  }
  model.dispose();
  return times.sort((a, b) => a - b)[1];
}

const backend = await initBackend((process.env.TRAINYARD_BACKEND as "auto") ?? "auto");
console.log(`\nAugmentation cost per batch of ${BATCH} images, milliseconds (median; backend ${backend.name})\n`);
console.log("| image | augmentation | Trainyard (typed arrays) | per image | tfjs Transform kernel | no augmentation (gather) | CNN training step, plain → augmented |");
console.log("|---|---|---:|---:|---:|---:|---:|");
for (const size of SIZES) {
  const d = data(size);
  const [h, w, c] = size;
  const rows = Int32Array.from({ length: BATCH }, (_, i) => (i * 7) % ROWS);
  const all = tf.tensor(d.inputs[0].data, [ROWS, h, w, c]);
  const idx = tf.tensor1d(rows, "int32");
  // (A tidy that returned the typed array would walk every element of it looking for tensors.)
  const gather = time(() => tf.tidy(() => void tf.gather(all, idx).dataSync()));
  const plainStep = await stepMs(d);
  for (const [label, a] of SETS) {
    const aug = Augmenter.create(a, 1, d)!;
    let epoch = 0;
    const ours = time(() => {
      const b = aug.batch(++epoch, 0, rows);
      tf.tidy(() => void tf.tensor(b.inputs[0]!, [BATCH, h, w, c]).dataSync());
    });
    let theirs = NaN;
    if (label.startsWith("geometry")) {
      // The same maps through tf.image.transform (bilinear, reflect), for comparison.
      theirs = time(() =>
        tf.tidy(() => {
          const maps = Array.from({ length: BATCH }, (_, j) => {
            const [p, q, r, s, t, u] = sourceMap(aug.transformAt(++epoch, j), h, w);
            return [p, q, r, s, t, u, 0, 0];
          });
          tf.image.transform(tf.gather(all, idx) as tf.Tensor4D, tf.tensor2d(maps), "bilinear", "reflect").dataSync();
        }),
      );
    }
    const step = label === "everything" ? await stepMs(d, a) : NaN;
    const f = (v: number) => (Number.isNaN(v) ? "" : v < 10 ? v.toFixed(2) : v.toFixed(1));
    console.log(`| ${h}×${w}×${c} | ${label} | ${f(ours)} | ${f((ours * 1000) / BATCH)} µs | ${f(theirs)} | ${f(gather)} | ${Number.isNaN(step) ? "" : `${f(plainStep)} → ${f(step)}`} |`);
  }
  tf.dispose([all, idx]);
}
