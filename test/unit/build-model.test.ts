// The spec language end to end at the engine level: graphs, shared weights, every error pointing
// at its node and field, the summary, and that each family of layers trains.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/engine/backend.ts";
import { loadModel, saveModel } from "../../lib/engine/model-io.ts";
import { withSeededRandom } from "../../lib/engine/seeded-random.ts";
import { compileForTraining, train, type TrainData } from "../../lib/engine/train/trainer.ts";
import { ValidationError } from "../../lib/errors.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { checkTraining, lossFor } from "../../lib/model-spec/objectives.ts";
import { modelSpecSchema, type ModelSpec } from "../../lib/model-spec/model-spec-schema.ts";

before(async () => {
  await initBackend("auto");
});

const parse = (v: unknown): ModelSpec => modelSpecSchema.parse(v);
const problemAt = (fn: () => unknown, path: string, message: RegExp) =>
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ValidationError, String(e));
    const p = e.problems.find((x) => x.path === path);
    assert.ok(p, `expected a problem at ${path}, got ${JSON.stringify(e.problems)}`);
    assert.match(p.message, message);
    return true;
  });

describe("graph validation", () => {
  test("a residual block whose branches disagree names the node and both shapes", () => {
    const spec = parse({
      inputs: { image: { shape: [16, 16, 64] } },
      nodes: {
        res2_conv: { type: "conv2d", filters: 64, kernelSize: 3, strides: 2, padding: "same", inputs: ["image"] },
        res2_add: { type: "add", inputs: ["image", "res2_conv"] },
      },
      outputs: ["res2_add"],
    });
    problemAt(() => buildModel(spec), "spec.nodes.res2_add", /inputs have shapes \[null, 16, 16, 64\] and \[null, 8, 8, 64\]/);
  });

  test("missing inputs, cycles, dangling nodes and bad outputs are named", () => {
    problemAt(() => buildModel(parse({ inputs: { x: { shape: [4] } }, nodes: { a: { type: "dense", units: 2, inputs: ["y"] } }, outputs: ["a"] })), "spec.nodes.a.inputs[0]", /no input or node named 'y'/);
    problemAt(
      () => buildModel(parse({ inputs: { x: { shape: [4] } }, nodes: { a: { type: "dense", units: 4, inputs: ["b"] }, b: { type: "dense", units: 4, inputs: ["a"] } }, outputs: ["a"] })),
      "spec.nodes.a", /cycle: a → b → a/,
    );
    problemAt(
      () => buildModel(parse({ inputs: { x: { shape: [4] } }, nodes: { a: { type: "dense", units: 2, inputs: ["x"] }, lost: { type: "dense", units: 2, inputs: ["x"] } }, outputs: ["a"] })),
      "spec.nodes.lost", /not connected to any output/,
    );
    problemAt(() => buildModel(parse({ inputs: { x: { shape: [4] } }, nodes: { a: { type: "dense", units: 2, inputs: ["x"] } }, outputs: ["zz"] })), "spec.outputs[0]", /no node named 'zz'/);
    problemAt(() => buildModel(parse({ inputs: { x: { shape: [4] } }, nodes: { a: { type: "add", inputs: ["x"] } }, outputs: ["a"] })), "spec.nodes.a.inputs", /add takes at least 2 inputs, got 1/);
  });

  test("a layer that does not fit its input says which shape it got", () => {
    problemAt(() => buildModel(parse({ input: { shape: [4] }, layers: [{ type: "conv2d", filters: 2, kernelSize: 3 }] })), "spec.layers[0]", /cannot be applied to input of shape \[null, 4\]/);
    problemAt(() => buildModel(parse({ input: { shape: [4] }, layers: [{ type: "add" }] })), "spec.layers[0].type", /use a graph spec/);
  });

  test("shared nodes reuse the same weights (siamese)", () => {
    const spec = parse({
      inputs: { left: { shape: [6] }, right: { shape: [6] } },
      nodes: {
        encL: { type: "dense", units: 4, activation: "tanh", inputs: ["left"] },
        encR: { type: "shared", of: "encL", inputs: ["right"] },
        dist: { type: "distance", metric: "euclidean", inputs: ["encL", "encR"] },
      },
      outputs: ["dist"],
    });
    const { model, paramCount, outputShape, summary } = buildModel(spec);
    assert.equal(paramCount, 6 * 4 + 4, "one set of encoder weights");
    assert.deepEqual(outputShape, [1]);
    assert.equal(summary.layers.find((l) => l.name === "encR")!.params, 0);
    const x = tf.randomNormal([3, 6]);
    const d = model.predict([x, x]) as tf.Tensor;
    assert.ok(Math.max(...d.dataSync()) < 1e-2, "identical inputs are at distance ~0 through shared weights");
    model.dispose();
  });

  test("the summary gives shapes, parameters, FLOPs and memory per layer", () => {
    const { summary } = buildModel(parse({ input: { shape: [28, 28, 1] }, layers: [{ type: "conv2d", filters: 8, kernelSize: 3, padding: "same" }, { type: "maxPooling2d" }, { type: "flatten" }, { type: "dense", units: 10, activation: "softmax" }] }));
    assert.deepEqual(summary.layers.map((l) => l.outputShape), [[28, 28, 8], [14, 14, 8], [1568], [10]]);
    assert.deepEqual(summary.layers.map((l) => l.params), [80, 0, 0, 15690]);
    assert.equal(summary.layers[0].flops, 2 * 28 * 28 * 8 * 9);
    assert.equal(summary.layers[3].flops, 2 * 1568 * 10);
    assert.equal(summary.weightBytes, (80 + 15690) * 4);
    assert.equal(summary.activationBytesPerSample, 4 * (784 + 28 * 28 * 8 + 14 * 14 * 8 + 1568 + 10));
  });
});

describe("training rules", () => {
  test("a step activation needs the perceptron mode, and the perceptron mode a single step unit layer", () => {
    const stepped = parse({ input: { shape: [2] }, layers: [{ type: "dense", units: 1, activation: "step" }] });
    assert.match(checkTraining(stepped)[0].message, /binary step has no gradient/);
    assert.equal(checkTraining({ ...stepped, mode: "perceptron" }).length, 0);
    const deep = parse({ input: { shape: [2] }, layers: [{ type: "dense", units: 3 }, { type: "dense", units: 1, activation: "step" }], mode: "perceptron" });
    assert.equal(checkTraining(deep)[0].path, "spec.mode");
  });

  test("the loss must match the output activation", () => {
    const spec = parse({ input: { shape: [2] }, layers: [{ type: "dense", units: 3, activation: "relu" }], loss: "categoricalCrossentropy" });
    const [p] = checkTraining(spec);
    assert.equal(p.path, "spec.loss");
    assert.match(p.message, /categoricalCrossentropy needs a softmax output; the output \(spec.layers\[0\].activation\) ends in relu/);
    assert.equal(checkTraining({ ...spec, loss: "meanSquaredError" }).length, 0);
  });
});

/** Random data shaped for a model: `rows` rows, class ids in [0, k). */
function randomData(inputShapes: number[][], k: number, rows = 8, targetShape = [1], dtype: "float32" | "int32" = "float32", vocab = 10): TrainData {
  const inputs = inputShapes.map((shape) => {
    const n = rows * shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = dtype === "int32" ? (i * 7) % vocab : Math.sin(i);
    return { data, shape, dtype };
  });
  const t = rows * targetShape.reduce((a, b) => a * b, 1);
  const target = Float32Array.from({ length: t }, (_, i) => i % k);
  return { rows, inputs, targets: [{ name: "output", task: "classification", classes: Array.from({ length: k }, (_, i) => String(i)), data: target, shape: targetShape }] };
}

/** Builds, trains two epochs, and checks the weights moved and a save/load round trip predicts the same. */
async function trainsAndRoundTrips(spec: ModelSpec, data: TrainData) {
  const built = await withSeededRandom(1, () => buildModel(spec));
  const loss = lossFor({ ...data.targets[0], targetShape: data.targets[0].shape }, built.outputShape, spec.loss);
  compileForTraining(built.model, { type: "adam", learningRate: 0.01 }, loss);
  const before = built.model.getWeights().map((w) => w.dataSync().slice());
  const result = await train(built.model, data, { epochs: 2, batchSize: 4, optimizer: { type: "adam", learningRate: 0.01 }, validationSplit: 0, seed: 1 }, loss);
  assert.ok(Number.isFinite(result.metrics.loss), JSON.stringify(result.metrics));
  const after = built.model.getWeights().map((w) => w.dataSync());
  assert.ok(after.some((w, i) => w.some((v, j) => v !== before[i][j])), "some weights changed");
  const restored = await loadModel(await saveModel(built.model));
  const xs = data.inputs.map((t) => tf.tensor(t.data.slice(0, 2 * t.shape.reduce((a, b) => a * b, 1)), [2, ...t.shape], t.dtype));
  const a = (built.model.predict(xs.length === 1 ? xs[0] : xs) as tf.Tensor).dataSync();
  const b = (restored.predict(xs.length === 1 ? xs[0] : xs) as tf.Tensor).dataSync();
  assert.deepEqual([...a], [...b]);
  built.model.dispose();
  restored.dispose();
}

describe("every family of layers trains and round-trips", () => {
  test("dense with initializers and regularizers, every activation, normalization", async () => {
    const acts = ["sigmoid", "tanh", "relu", "leakyRelu", "elu", "selu", "gelu", "swish", "linear"];
    await trainsAndRoundTrips(
      parse({
        input: { shape: [6] },
        layers: [
          ...acts.map((activation) => ({ type: "dense", units: 6, activation, kernelInitializer: "heNormal", kernelRegularizer: { l2: 1e-3 } })),
          { type: "batchNormalization" }, { type: "layerNormalization" }, { type: "dropout", rate: 0.2 },
          { type: "activation", activation: "leakyRelu", alpha: 0.1 },
          { type: "dense", units: 3, activation: "softmax", useBias: false },
        ],
      }),
      randomData([[6]], 3),
    );
  });

  test("convolutions, pooling, coordConv, adaptive pooling, transposed convs and shape layers", async () => {
    await trainsAndRoundTrips(
      parse({
        input: { shape: [12, 12, 2] },
        layers: [
          { type: "coordConv", filters: 4, kernelSize: 3, padding: "same", activation: "relu" },
          { type: "conv2d", filters: 4, kernelSize: [3, 3], dilationRate: 1, padding: "same" },
          { type: "spatialDropout", rate: 0.1 },
          { type: "separableConv2d", filters: 4, kernelSize: 3, padding: "same" },
          { type: "depthwiseConv2d", kernelSize: 3, padding: "same" },
          { type: "conv2d", filters: 4, kernelSize: 1 },
          { type: "maxPooling2d", poolSize: 2 },
          { type: "conv2dTranspose", filters: 4, kernelSize: 2, strides: 2 },
          { type: "upSampling2d", size: 2 },
          { type: "averagePooling2d", poolSize: 2, strides: 2 },
          { type: "zeroPadding2d", padding: 1 },
          { type: "cropping2d", cropping: 1 },
          { type: "adaptiveAveragePooling2d", outputSize: 3 },
          { type: "permute", dims: [2, 1, 3] },
          { type: "reshape", targetShape: [9, 4] },
          { type: "conv1d", filters: 4, kernelSize: 2, padding: "same" },
          { type: "maxPooling1d", poolSize: 2 },
          { type: "globalAveragePooling1d" },
          { type: "dense", units: 2, activation: "softmax" },
        ],
      }),
      randomData([[12, 12, 2]], 2),
    );
  });

  test("sequences: embedding, masking, RNN, LSTM, GRU, bidirectional, attention, transformer", async () => {
    await trainsAndRoundTrips(
      parse({
        input: { shape: [6], dtype: "int32" },
        layers: [
          { type: "embedding", inputDim: 10, outputDim: 8, maskZero: false },
          { type: "positionalEncoding", maxLength: 16 },
          { type: "multiHeadSelfAttention", numHeads: 2, keyDim: 4, causal: true },
          { type: "transformerEncoder", numHeads: 2, keyDim: 4, ffDim: 16, dropout: 0.1 },
          { type: "simpleRNN", units: 8, returnSequences: true },
          { type: "gru", units: 8, returnSequences: true },
          { type: "bidirectional", layer: { type: "lstm", units: 4, returnSequences: false } },
          { type: "dense", units: 3, activation: "softmax" },
        ],
      }),
      randomData([[6]], 3, 8, [1], "int32"),
    );
  });

  test("masking skips padded time steps in recurrent layers", async () => {
    await trainsAndRoundTrips(
      parse({ input: { shape: [6, 3] }, layers: [{ type: "masking", maskValue: 0 }, { type: "lstm", units: 4 }, { type: "dense", units: 2, activation: "softmax" }] }),
      randomData([[6, 3]], 2),
    );
    // A sequence padded with masked steps gives the same output as the unpadded prefix.
    const { model } = buildModel(parse({ input: { shape: [null, 2] }, layers: [{ type: "masking", maskValue: 0 }, { type: "simpleRNN", units: 3 }] }));
    const short = model.predict(tf.tensor3d([[[1, 2], [3, 4]]])) as tf.Tensor;
    const padded = model.predict(tf.tensor3d([[[1, 2], [3, 4], [0, 0], [0, 0]]])) as tf.Tensor;
    assert.ok(tf.max(tf.abs(tf.sub(short, padded))).dataSync()[0] < 1e-6);
    model.dispose();
  });

  test("graphs: concatenate, multiply, attention over two sequences", async () => {
    await trainsAndRoundTrips(
      parse({
        inputs: { q: { shape: [5, 4] }, v: { shape: [7, 4] } },
        nodes: {
          att: { type: "attention", score: "additive", inputs: ["q", "v"] },
          gate: { type: "dense", units: 4, activation: "sigmoid", inputs: ["att"] },
          gated: { type: "multiply", inputs: ["att", "gate"] },
          both: { type: "concatenate", axis: -1, inputs: ["gated", "q"] },
          pooled: { type: "globalMaxPooling1d", inputs: ["both"] },
          out: { type: "dense", units: 2, activation: "softmax", inputs: ["pooled"] },
        },
        outputs: ["out"],
      }),
      randomData([[5, 4], [7, 4]], 2),
    );
  });

  test("per-pixel outputs train on per-pixel class ids", async () => {
    await trainsAndRoundTrips(
      parse({ input: { shape: [8, 8, 1] }, layers: [{ type: "conv2d", filters: 4, kernelSize: 3, padding: "same", activation: "relu" }, { type: "conv2d", filters: 3, kernelSize: 1, activation: "softmax" }] }),
      randomData([[8, 8, 1]], 3, 8, [8, 8]),
    );
  });
});

describe("dilated convolutions", () => {
  test("equal tfjs's own dilated conv forward, and train (tfjs cannot differentiate its own)", async () => {
    for (const [shape, layer] of [
      [[11, 11, 2], { type: "conv2d", filters: 3, kernelSize: 3, dilationRate: 2, padding: "same" }],
      [[11, 9, 2], { type: "conv2d", filters: 3, kernelSize: [2, 3], dilationRate: [3, 2], padding: "valid" }],
      [[12, 2], { type: "conv1d", filters: 3, kernelSize: 3, dilationRate: 2, padding: "same" }],
    ] as const) {
      const spec = parse({ input: { shape }, layers: [layer] });
      const { model } = buildModel(spec);
      const x = tf.randomNormal([2, ...shape]);
      const [kernel, bias] = model.getWeights();
      const l = layer as unknown as { kernelSize: number | number[]; dilationRate: number | number[]; strides?: number; padding: "same" | "valid" };
      const expected = shape.length === 3
        ? tf.add(tf.conv2d(x as tf.Tensor4D, kernel as tf.Tensor4D, l.strides ?? 1, l.padding, "NHWC", l.dilationRate as [number, number]), bias)
        : tf.add(tf.conv1d(x as tf.Tensor3D, kernel.squeeze([1]) as tf.Tensor3D, 1, l.padding, "NWC", l.dilationRate as number), bias);
      const got = model.predict(x) as tf.Tensor;
      assert.deepEqual(got.shape, expected.shape);
      const diff = tf.max(tf.abs(tf.sub(got, expected))).dataSync()[0];
      assert.ok(diff < 1e-4, `${JSON.stringify(layer)}: max difference ${diff}`);
      model.dispose();
    }
    // Strides with dilation too, which tfjs's own conv2d refuses even forward.
    await trainsAndRoundTrips(
      parse({ input: { shape: [10, 10, 1] }, layers: [{ type: "conv2d", filters: 2, kernelSize: 3, dilationRate: 2, strides: 2, activation: "relu" }, { type: "flatten" }, { type: "dense", units: 2, activation: "softmax" }] }),
      randomData([[10, 10, 1]], 2),
    );
  });
});

describe("losses and optimizers", () => {
  test("½(y−ŷ)²: the reported MSE is half the mean squared error", async () => {
    const spec = parse({ input: { shape: [1] }, layers: [{ type: "dense", units: 1, kernelInitializer: "zeros", biasInitializer: "zeros" }] });
    const { model } = buildModel(spec);
    compileForTraining(model, { type: "sgd", learningRate: 0 }, "meanSquaredError");
    const data: TrainData = { rows: 2, inputs: [{ data: new Float32Array([1, 2]), shape: [1] }],
    targets: [{ name: "output", task: "regression", classes: [], data: new Float32Array([2, 4]), shape: [1] }] };
    const r = await train(model, data, { epochs: 1, batchSize: 2, optimizer: { type: "sgd", learningRate: 0 }, validationSplit: 0, seed: 1 }, "meanSquaredError");
    assert.ok(Math.abs(r.metrics.loss - 0.5 * (4 + 16) / 2) < 1e-6, String(r.metrics.loss));
  });

  for (const optimizer of [
    { type: "sgd" as const, learningRate: 0.05, momentum: 0.9, nesterov: true },
    { type: "sgd" as const, learningRate: 0.05, momentum: 0.9 },
    { type: "adam" as const, learningRate: 0.01, weightDecay: 0.01 },
    { type: "rmsprop" as const, learningRate: 0.01, momentum: 0.5 },
    { type: "adagrad" as const, learningRate: 0.1 },
  ]) {
    test(`${optimizer.type}${optimizer.momentum ? " with momentum" : ""}${"nesterov" in optimizer ? " (Nesterov)" : ""}${"weightDecay" in optimizer ? " with weight decay" : ""} lowers the loss`, async () => {
      const spec = parse({ input: { shape: [4] }, layers: [{ type: "dense", units: 8, activation: "tanh" }, { type: "dense", units: 2, activation: "softmax" }] });
      const { model } = await withSeededRandom(2, () => buildModel(spec));
      compileForTraining(model, optimizer, "categoricalCrossentropy");
      const n = 64;
      const x = Float32Array.from({ length: n * 4 }, (_, i) => Math.sin(i * 1.3));
      const y = Float32Array.from({ length: n }, (_, r) => (x[r * 4] + x[r * 4 + 1] > 0 ? 1 : 0));
      const data: TrainData = { rows: n, inputs: [{ data: x, shape: [4] }],
    targets: [{ name: "output", task: "classification", classes: ["0", "1"], data: y, shape: [1] }] };
      const losses: number[] = [];
      await train(model, data, { epochs: 15, batchSize: 16, optimizer, validationSplit: 0, seed: 1 }, "categoricalCrossentropy", { onEpochEnd: async (_e, m) => void losses.push(m.loss) });
      assert.ok(losses[losses.length - 1] < losses[0] * 0.9, losses.join(", "));
      model.dispose();
    });
  }

  test("the perceptron rule learns a linearly separable problem with a step unit", async () => {
    const spec = parse({ input: { shape: [2] }, layers: [{ type: "dense", units: 1, activation: "step" }], mode: "perceptron" });
    const { model } = await withSeededRandom(1, () => buildModel(spec));
    compileForTraining(model, { type: "sgd", learningRate: 0.1 }, "binaryCrossentropy");
    const n = 100;
    const x = Float32Array.from({ length: 2 * n }, (_, i) => Math.sin(i * 2.7) * 2);
    const y = Float32Array.from({ length: n }, (_, r) => (x[2 * r] - 0.5 * x[2 * r + 1] > 0.1 ? 1 : 0));
    const data: TrainData = { rows: n, inputs: [{ data: x, shape: [2] }],
    targets: [{ name: "output", task: "classification", classes: ["0", "1"], data: y, shape: [1] }] };
    const r = await train(model, data, { epochs: 40, batchSize: 1, optimizer: { type: "sgd", learningRate: 0.1 }, validationSplit: 0, seed: 1, mode: "perceptron" }, "binaryCrossentropy");
    assert.ok(r.metrics.accuracy >= 0.95, JSON.stringify(r.metrics));
    const out = (model.predict(tf.tensor2d([[3, 0], [-3, 0]])) as tf.Tensor).dataSync();
    assert.deepEqual([...out], [1, 0], "the step output is 0 or 1");
  });
});
