// Export in the standard TensorFlow.js format: the exported graph (raw inputs, preprocessing and
// custom layers as stock layers) predicts what serving predicts (preprocessing in typed arrays,
// then the stored model), custom layers that cannot travel are refused by name, and the zip
// writer's output reads back.
// Run: node --import tsx --test test/unit/model-export.test.ts
import assert from "node:assert/strict";
import { before, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { applyPreprocessing } from "../../lib/data/preprocessing/preprocessor.ts";
import type { FittedPreprocessing } from "../../lib/data/preprocessing/preprocessing-schema.ts";
import { initBackend } from "../../lib/engine/backend.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { loadModel, saveModel, type StoredModel } from "../../lib/engine/model-io.ts";
import { ConflictError } from "../../lib/errors.ts";
import { exportModel, SHARD_BYTES, type ExportedModel } from "../../lib/registry/export/export-model.ts";
import { readZip, writeZip } from "../../lib/registry/export/model-zip.ts";
import type { Signature } from "../../lib/registry/signature.ts";
import { modelSpecSchema } from "../../lib/model-spec/model-spec-schema.ts";

before(async () => {
  await initBackend("auto");
});

async function stored(spec: unknown): Promise<StoredModel> {
  const { model } = buildModel(modelSpecSchema.parse(spec));
  // Non-zero biases everywhere, so that a lost bias shows.
  model.setWeights(model.getWeights().map((w, i) => tf.tidy(() => tf.randomNormal(w.shape, 0, 0.5, "float32", 7 + i))));
  const saved = await saveModel(model);
  model.dispose();
  return saved;
}

/** What :predict computes: preprocessing on the raw rows, then the stored model. */
async function servicePredict(s: StoredModel, signature: Signature, raws: Float32Array[], n: number): Promise<number[]> {
  const model = await loadModel(s);
  const xs = signature.inputs.map((input, k) => {
    const p = input.preprocessing;
    const data = p ? applyPreprocessing(p, raws[k], n) : raws[k];
    return tf.tensor(data, [n, ...(model.inputs[k].shape.slice(1) as number[])]);
  });
  const y = model.predict(xs.length === 1 ? xs[0] : xs) as tf.Tensor;
  const out = Array.from(await y.data());
  tf.dispose([...xs, y]);
  model.dispose();
  return out;
}

async function exportedPredict(e: ExportedModel, signature: Signature, raws: Float32Array[], n: number): Promise<number[]> {
  const weights = tf.io.concatenateArrayBuffers([...e.shards.values()].map((b) => b.slice().buffer));
  const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: e.modelJson.modelTopology, weightSpecs: e.modelJson.weightsManifest[0].weights, weightData: weights }));
  const xs = signature.inputs.map((input, k) => tf.tensor(raws[k], [n, ...input.shape]));
  const y = model.predict(xs.length === 1 ? xs[0] : xs) as tf.Tensor;
  const out = Array.from(await y.data());
  tf.dispose([...xs, y]);
  model.dispose();
  return out;
}

function assertClose(a: number[], b: number[], tol = 1e-5) {
  assert.equal(a.length, b.length);
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) <= tol, `value ${i}: ${v} vs ${b[i]}`));
}

const classes = (k: number) => ({ name: "label", task: "classification" as const, classes: Array.from({ length: k }, (_, i) => `c${i}`) });
const random = (n: number, seed: number, scale = 1, offset = 0) => {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 16807) % 2147483647) / 2147483647) * scale + offset);
};

function assertStock(e: ExportedModel) {
  const json = JSON.stringify(e.modelJson.modelTopology);
  assert.ok(!json.includes("Trainyard"), "no custom class in the exported topology");
  assert.equal(e.modelJson.format, "layers-model");
  assert.deepEqual(e.modelJson.weightsManifest[0].paths, [...e.shards.keys()]);
}

test("tabular: standardized numbers, one-hot and ordinal categories travel as stock layers; codes in, same predictions", async () => {
  const tabular: FittedPreprocessing = {
    kind: "tabular",
    columns: [
      { type: "numeric", name: "age", shift: 41.5, scale: 1 / 12.25 },
      { type: "categorical", name: "color", categories: ["blue", "green", "red"], encoding: "onehot" },
      { type: "numeric", name: "income", shift: 52000, scale: 1 / 18000 },
      { type: "categorical", name: "size", categories: ["L", "M", "S", "XL"], encoding: "ordinal" },
    ],
  };
  const signature: Signature = { inputs: [{ name: "x", shape: [4], preprocessing: tabular }], outputs: [classes(3)] };
  const s = await stored({ input: { shape: [6] }, layers: [{ type: "dense", units: 8, activation: "relu" }, { type: "dense", units: 3, activation: "softmax" }] });
  const n = 6;
  const raw = new Float32Array(n * 4);
  for (let r = 0; r < n; r++) raw.set([20 + 7 * r, r % 3, 30000 + 9000 * r, (r * 3) % 4], r * 4);
  const exported = await exportModel(s, signature, "test");
  assertStock(exported);
  assert.deepEqual(exported.modelJson.userDefinedMetadata?.signature.inputs, [{ name: "x", shape: [4] }], "the exported graph takes the raw row");
  assert.deepEqual(exported.modelJson.userDefinedMetadata?.preprocessing.x, tabular, "with the categories whose codes it takes");
  assertClose(await exportedPredict(exported, signature, [raw], n), await servicePredict(s, signature, [raw], n));
});

test("images: scaling, per-channel and mean-image centering; coordConv, dilated conv, spatial dropout and divisible adaptive pooling travel", async () => {
  const spec = {
    input: { shape: [8, 8, 3] },
    layers: [
      { type: "coordConv", filters: 4, kernelSize: 3, padding: "same", activation: "relu", withRadius: true },
      { type: "conv2d", filters: 4, kernelSize: 3, dilationRate: 2, padding: "same", activation: "relu" },
      { type: "spatialDropout", rate: 0.2 },
      { type: "adaptiveAveragePooling2d", outputSize: 2 },
      { type: "flatten" },
      { type: "dense", units: 3, activation: "softmax" },
    ],
  };
  const s = await stored(spec);
  const n = 3;
  const raw = random(n * 8 * 8 * 3, 11, 255);
  for (const image of [
    { kind: "image", scale: 1 / 255, center: "none" },
    { kind: "image", scale: 1 / 255, center: "perChannel", mean: [0.4, 0.5, 0.6] },
    { kind: "image", scale: 1 / 255, center: "meanImage", mean: Array.from(random(192, 5)) },
  ] as FittedPreprocessing[]) {
    const signature: Signature = { inputs: [{ name: "image", shape: [8, 8, 3], preprocessing: image }], outputs: [classes(3)] };
    const exported = await exportModel(s, signature, "test");
    assertStock(exported);
    assertClose(await exportedPredict(exported, signature, [raw], n), await servicePredict(s, signature, [raw], n));
  }
});

test("sequences: positional encoding and a dilated conv1d travel; several inputs keep their names", async () => {
  const spec = {
    inputs: { tokens: { shape: [6, 4] }, meta: { shape: [2] } },
    nodes: {
      pe: { type: "positionalEncoding", maxLength: 16, inputs: ["tokens"] },
      conv: { type: "conv1d", filters: 3, kernelSize: 2, dilationRate: 2, padding: "same", inputs: ["pe"] },
      pool: { type: "globalAveragePooling1d", inputs: ["conv"] },
      joined: { type: "concatenate", inputs: ["pool", "meta"] },
      out: { type: "dense", units: 1, inputs: ["joined"] },
    },
    outputs: ["out"],
  };
  const s = await stored(spec);
  const signature: Signature = {
    inputs: [{ name: "tokens", shape: [6, 4] }, { name: "meta", shape: [2], preprocessing: { kind: "tabular", columns: [{ type: "numeric", name: "a", shift: 3, scale: 0.5 }, { type: "numeric", name: "b", shift: -1, scale: 2 }] } }],
    outputs: [{ name: "out", task: "regression", classes: [] }],
  };
  const n = 4;
  const raws = [random(n * 24, 3, 2, -1), random(n * 2, 9, 10)];
  const exported = await exportModel(s, signature, "test");
  assertStock(exported);
  const topology = exported.modelJson.modelTopology as { config: { input_layers: [string][] } };
  assert.deepEqual(topology.config.input_layers.map((l) => l[0]), ["tokens", "meta"]);
  assertClose(await exportedPredict(exported, signature, raws, n), await servicePredict(s, signature, raws, n));
});

test("a custom layer that cannot travel is a 409 naming it and why", async () => {
  const cases: [unknown, RegExp][] = [
    [{ input: { shape: [4] }, layers: [{ type: "dense", units: 3, activation: "step" }] }, /'l0_dense_act' \(TrainyardStepActivation\).*binary step/],
    [{ input: { shape: [5, 4] }, layers: [{ type: "multiHeadSelfAttention", numHeads: 2, keyDim: 2 }, { type: "flatten" }, { type: "dense", units: 1 }] }, /TrainyardMultiHeadSelfAttention/],
    [{ input: { shape: [6, 6, 1] }, layers: [{ type: "adaptiveMaxPooling2d", outputSize: 4 }, { type: "flatten" }, { type: "dense", units: 1 }] }, /pools 6 steps into 4 bins of unequal size/],
  ];
  for (const [spec, message] of cases) {
    const s = await stored(spec);
    const signature: Signature = { inputs: [{ name: "x", shape: (spec as { input: { shape: number[] } }).input.shape }], outputs: [{ name: "y", task: "regression", classes: [] }] };
    await assert.rejects(exportModel(s, signature, "test"), (err: Error) => err instanceof ConflictError && message.test(err.message), String(message));
  }
});

test("weights over 4 MB are split into shards in order; the zip reads back byte for byte", async () => {
  const s = await stored({ input: { shape: [1100] }, layers: [{ type: "dense", units: 1000 }] });
  const exported = await exportModel(s, { inputs: [{ name: "x", shape: [1100] }], outputs: [{ name: "y", task: "regression", classes: [] }] }, "test");
  assert.deepEqual([...exported.shards.keys()], ["group1-shard1of2.bin", "group1-shard2of2.bin"]);
  assert.equal(exported.shards.get("group1-shard1of2.bin")!.length, SHARD_BYTES);
  const files = new Map<string, Uint8Array>([["model.json", Buffer.from(JSON.stringify(exported.modelJson))], ...exported.shards]);
  const back = await readZip(await writeZip(files), 64 * 1024 * 1024);
  assert.deepEqual([...back.keys()], [...files.keys()]);
  for (const [name, data] of files) assert.ok(Buffer.from(data).equals(back.get(name)!), name);
});
