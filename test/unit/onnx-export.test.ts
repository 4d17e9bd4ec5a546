// Every zoo template, the README's graph example, a shared layer, and graphs with the attention
// layers the zoo does not use, trained one step
// on data of their inputs' shapes, exported to ONNX and run by ONNX Runtime: their outputs match
// TensorFlow.js's within 1e-4 relative (plus 1e-6 absolute) at batch 1 and 16. A layer that has
// no exact ONNX form is a 409 naming it.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-node";
import { initBackend } from "../../lib/engine/backend.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { saveModel } from "../../lib/engine/model-io.ts";
import { ConflictError } from "../../lib/errors.ts";
import { modelSpecSchema } from "../../lib/model-spec/model-spec-schema.ts";
import { renderTemplate, TEMPLATES } from "../../lib/model-spec/templates/index.ts";
import { exportOnnx } from "../../lib/registry/export/onnx/export-onnx.ts";
import { checkOnnx } from "../../lib/registry/export/onnx/onnx-check.ts";
import type { Signature } from "../../lib/registry/signature.ts";

function signatureOf(model: tf.LayersModel): Signature {
  return {
    inputs: model.inputs.map((i) => ({ name: i.sourceLayer.name, shape: i.shape.slice(1) as number[] })),
    outputs: model.outputNames.map((name) => ({ name, task: "regression" as const, classes: [] })),
  };
}

/** Values of each input's kind: codes 0–9 for an integer input (a character model's), else floats in [0, 1). */
function randomInputs(model: tf.LayersModel, n: number, seed: number): tf.Tensor[] {
  return model.inputs.map((i, k) => {
    const shape = [n, ...(i.shape.slice(1) as number[])];
    return i.dtype === "int32" ? tf.randomUniform(shape, 0, 10, "int32", seed + k) : tf.randomUniform(shape, 0, 1, "float32", seed + k);
  });
}

/**
 * One step of SGD on random targets: weights and batch-norm statistics move off their initial
 * values. Not for the perceptron, whose step has no gradient (it trains by the perceptron rule).
 */
async function trainOneStep(model: tf.LayersModel): Promise<void> {
  if (model.layers.some((l) => l.getClassName() === "TrainyardStepActivation")) return;
  model.compile({ optimizer: tf.train.sgd(0.01), loss: "meanSquaredError" });
  const xs = randomInputs(model, 8, 1);
  const ys = model.outputs.map((o, k) => tf.randomUniform([8, ...(o.shape.slice(1) as number[])], 0, 1, "float32", 100 + k));
  await model.fit(xs.length === 1 ? xs[0] : xs, ys.length === 1 ? ys[0] : ys, { epochs: 1, batchSize: 8, verbose: 0 });
  tf.dispose([...xs, ...ys]);
}

before(async () => {
  await initBackend("auto");
});

/** Exports `model` (trained one step) and checks ONNX Runtime against TensorFlow.js at batch 1 and 16. */
async function assertParity(model: tf.LayersModel, what: string): Promise<void> {
  await trainOneStep(model);
  const saved = await saveModel(model);
  // The check registration runs (its own seeded inputs, network only) passes too: serving uses ONNX Runtime for it.
  const check = await checkOnnx(saved, signatureOf(model));
  assert.equal(check?.status, "passed", `${what}: ${check?.reason}`);
  assert.ok(check.maxRelativeError! <= 1e-4);
  const session = await ort.InferenceSession.create(await exportOnnx(saved, signatureOf(model), "test"), { intraOpNumThreads: 1 });
  try {
    assert.deepEqual(session.inputNames, model.inputs.map((i) => i.sourceLayer.name));
    for (const n of [1, 16]) {
      const xs = randomInputs(model, n, n);
      const want = [model.predict(xs.length === 1 ? xs[0] : xs)].flat() as tf.Tensor[];
      const feeds: Record<string, ort.Tensor> = {};
      // The exported graph takes float32 everywhere (codes included), as :predict's JSON does.
      session.inputNames.forEach((input, k) => (feeds[input] = new ort.Tensor("float32", Float32Array.from(xs[k].dataSync()), xs[k].shape)));
      const got = await session.run(feeds);
      session.outputNames.forEach((output, k) => {
        const a = got[output].data as Float32Array;
        const b = want[k].dataSync();
        assert.equal(a.length, b.length, `${what} ${output}`);
        for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= 1e-4 * Math.abs(b[i]) + 1e-6, `${what} batch ${n} ${output}[${i}]: ONNX ${a[i]} vs tfjs ${b[i]}`);
      });
      tf.dispose([...xs, ...want]);
    }
  } finally {
    await session.release();
  }
}

describe("ONNX export of the zoo", () => {
  for (const name of Object.keys(TEMPLATES)) {
    test(`${name}: ONNX Runtime predicts what TensorFlow.js does, batch 1 and 16`, async () => {
      const { model } = buildModel(renderTemplate(name, {}));
      try {
        await assertParity(model, name);
      } finally {
        model.dispose();
      }
    });
  }
});

describe("ONNX export of the README's graph example, a shared layer, and the layers the zoo does not use", () => {
  const SEQ = [6, 8];
  const cases: Record<string, object> = {
    "the README's graph (a residual block)": {
      inputs: { image: { shape: [32, 32, 16] } },
      nodes: {
        conv: { type: "conv2d", filters: 16, kernelSize: 3, padding: "same", activation: "relu", inputs: ["image"] },
        res: { type: "add", inputs: ["image", "conv"] },
        pool: { type: "globalAveragePooling2d", inputs: ["res"] },
        out: { type: "dense", units: 10, activation: "softmax", inputs: ["pool"] },
      },
      outputs: ["out"],
    },
    "a shared layer (one encoder, two inputs) and a cosine distance": {
      inputs: { left: { shape: [5] }, right: { shape: [5] } },
      nodes: {
        enc1: { type: "dense", units: 4, activation: "tanh", inputs: ["left"] },
        enc2: { type: "shared", of: "enc1", inputs: ["right"] },
        gap: { type: "distance", metric: "cosine", inputs: ["enc1", "enc2"] },
        out: { type: "dense", units: 1, activation: "sigmoid", inputs: ["gap"] },
      },
      outputs: ["out"],
    },
    "dot attention, causal, with a key": {
      inputs: { q: { shape: SEQ }, v: { shape: [6, 5] }, k: { shape: SEQ } },
      nodes: { at: { type: "attention", score: "dot", causal: true, inputs: ["q", "v", "k"] }, flat: { type: "flatten", inputs: ["at"] }, out: { type: "dense", units: 3, activation: "softmax", inputs: ["flat"] } },
      outputs: ["out"],
    },
    "additive attention": {
      inputs: { q: { shape: [4, 8] }, v: { shape: SEQ } },
      nodes: { at: { type: "attention", score: "additive", inputs: ["q", "v"] }, out: { type: "globalAveragePooling1d", inputs: ["at"] } },
      outputs: ["out"],
    },
    "causal multi-head self-attention, then an LSTM over its sequence": {
      input: { shape: SEQ },
      layers: [{ type: "multiHeadSelfAttention", numHeads: 2, keyDim: 3, causal: true }, { type: "lstm", units: 4 }, { type: "dense", units: 2, activation: "sigmoid" }],
    },
    "layer normalization": {
      input: { shape: [6] },
      layers: [{ type: "dense", units: 8, activation: "relu" }, { type: "layerNormalization" }, { type: "dense", units: 3, activation: "softmax" }],
    },
    "1-D convolutions (same, strided valid) and 1-D pooling": {
      input: { shape: [12, 3] },
      layers: [
        { type: "conv1d", filters: 4, kernelSize: 3, padding: "same", activation: "relu" },
        { type: "conv1d", filters: 5, kernelSize: 3, padding: "valid" },
        { type: "maxPooling1d", poolSize: 2 },
        { type: "conv1d", filters: 4, kernelSize: 2, strides: 2, padding: "valid", activation: "tanh" },
        { type: "averagePooling1d", poolSize: 2, padding: "same" },
        { type: "flatten" }, { type: "dense", units: 2 },
      ],
    },
    // A depth multiplier of 2 also needs model-io's repair: tfjs leaves it out of the saved config.
    "a separable convolution": {
      input: { shape: [9, 9, 3] },
      layers: [{ type: "separableConv2d", filters: 4, kernelSize: 3, depthMultiplier: 2, padding: "same", activation: "relu" }, { type: "separableConv2d", filters: 2, kernelSize: 2, strides: 2 }, { type: "flatten" }, { type: "dense", units: 3 }],
    },
    "a permutation": {
      input: { shape: [4, 6] },
      layers: [{ type: "permute", dims: [2, 1] }, { type: "dense", units: 3 }, { type: "flatten" }, { type: "dense", units: 2 }],
    },
    "masking before feed-forward layers": {
      input: { shape: [5, 3] },
      layers: [{ type: "masking", maskValue: 0.5 }, { type: "dense", units: 4, activation: "relu" }, { type: "flatten" }, { type: "dense", units: 2 }],
    },
    "bidirectional LSTM (concatenated sequences), GRU (summed) and simple RNN (averaged)": {
      inputs: { seq: { shape: SEQ } },
      nodes: {
        lstm: { type: "bidirectional", layer: { type: "lstm", units: 3, returnSequences: true }, inputs: ["seq"] },
        gru: { type: "bidirectional", layer: { type: "gru", units: 4 }, mergeMode: "sum", inputs: ["lstm"] },
        rnn: { type: "bidirectional", layer: { type: "simpleRNN", units: 4 }, mergeMode: "ave", inputs: ["seq"] },
        rnnMul: { type: "bidirectional", layer: { type: "lstm", units: 4 }, mergeMode: "mul", inputs: ["seq"] },
        both: { type: "concatenate", inputs: ["gru", "rnn", "rnnMul"] },
        out: { type: "dense", units: 2, inputs: ["both"] },
      },
      outputs: ["out"],
    },
  };
  for (const [what, spec] of Object.entries(cases)) {
    test(`${what}: ONNX Runtime predicts what TensorFlow.js does`, async () => {
      // Through the spec schema, as the API takes it: its defaults filled in.
      const { model } = buildModel(modelSpecSchema.parse(spec));
      try {
        await assertParity(model, what);
      } finally {
        model.dispose();
      }
    });
  }

  test("masking hides steps: rows equal to the mask value become zeros, as in TensorFlow.js", async () => {
    const { model } = buildModel(modelSpecSchema.parse({ input: { shape: [4, 2] }, layers: [{ type: "masking", maskValue: 0 }, { type: "dense", units: 3 }] }));
    try {
      const session = await ort.InferenceSession.create(await exportOnnx(await saveModel(model), signatureOf(model), "test"));
      const x = Float32Array.of(1, 2, 0, 0, 0, 3, 0, 0);
      const got = (await session.run({ [session.inputNames[0]]: new ort.Tensor("float32", x, [1, 4, 2]) }))[session.outputNames[0]].data as Float32Array;
      const want = (model.predict(tf.tensor(x, [1, 4, 2])) as tf.Tensor).dataSync();
      want.forEach((w, i) => assert.ok(Math.abs(got[i] - w) <= 1e-5, `${i}: ${got[i]} vs ${w}`));
      await session.release();
    } finally {
      model.dispose();
    }
  });

  test("a recurrent layer behind a mask is a 409 naming it: ONNX's recurrent operators take lengths, not masks", async () => {
    for (const first of [{ type: "masking", maskValue: 0 }, { type: "embedding", inputDim: 10, outputDim: 3, maskZero: true }]) {
      const input = first.type === "masking" ? { shape: [5, 3] } : { shape: [5], dtype: "int32" };
      const { model } = buildModel(modelSpecSchema.parse({ input, layers: [first, { type: "bidirectional", layer: { type: "gru", units: 2 } }, { type: "dense", units: 2 }] }));
      try {
        await assert.rejects(exportOnnx(await saveModel(model), signatureOf(model), "test"), (err: Error) => err instanceof ConflictError && /\(Bidirectional\) cannot be exported to ONNX: it skips the steps a mask hides/.test(err.message));
      } finally {
        model.dispose();
      }
    }
  });

  test("adaptive pooling into unequal bins has no exact form: a 409 naming the layer", async () => {
    const { model } = buildModel(modelSpecSchema.parse({ input: { shape: [7, 7, 1] }, layers: [{ type: "adaptiveAveragePooling2d", outputSize: 3 }, { type: "flatten" }, { type: "dense", units: 2 }] }));
    try {
      await assert.rejects(exportOnnx(await saveModel(model), signatureOf(model), "test"), (err: Error) => err instanceof ConflictError && /layer '[^']+' \(TrainyardAdaptivePooling2D\) cannot be exported: it pools 7 steps into 3 bins of unequal size/.test(err.message));
    } finally {
      model.dispose();
    }
  });
});
