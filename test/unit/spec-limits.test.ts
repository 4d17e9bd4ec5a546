// A spec must never freeze the API (issue 7): the parameter, FLOPs and layer limits are checked
// from shapes before any weight exists, graph walks are iterative, and validation builds nothing
// it does not need. Allocation is observed by tensor ids, not time (timings are in bench/validate.bench.ts).
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/engine/backend.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { preflight } from "../../lib/engine/build/preflight.ts";
import { ValidationError } from "../../lib/errors.ts";
import { planOf, topologicalOrder, type Plan, type PlanNode } from "../../lib/model-spec/graph-plan.ts";
import { LAYER_TYPES, modelSpecSchema, type ModelSpec } from "../../lib/model-spec/model-spec-schema.ts";
import { renderTemplate, TEMPLATES } from "../../lib/model-spec/templates/index.ts";
import { inspectSpec } from "../../lib/registry/model-service.ts";

before(async () => {
  await initBackend("auto");
});

/** The API's defaults (lib/config/env.ts). */
const LIMITS = { maxParams: 50_000_000, maxLayers: 1000, maxFlopsPerSample: 2e10 };
const parse = (v: unknown): ModelSpec => modelSpecSchema.parse(v);

/** How many tensors tfjs has created so far (weights, initial values, kernel outputs): each takes the next id. */
function tensorsCreated(): number {
  const probe = tf.scalar(0);
  probe.dispose();
  return probe.id;
}

/** Runs fn, which must throw a ValidationError; returns its problems and how many tensors it created before it did. */
function refused(fn: () => unknown): { problems: ValidationError["problems"]; tensors: number } {
  const before = tensorsCreated();
  let error: unknown;
  try {
    fn();
  } catch (err) {
    error = err;
  }
  const tensors = tensorsCreated() - before - 1;
  assert.ok(error instanceof ValidationError, `expected a ValidationError, got ${String(error)}`);
  return { problems: error.problems, tensors };
}

/** A graph spec that is a chain of n relu nodes. */
function chain(n: number): ModelSpec {
  const nodes: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) nodes[`n${i}`] = { type: "activation", activation: "relu", inputs: [i ? `n${i - 1}` : "x"] };
  return { inputs: { x: { shape: [4], dtype: "float32" } }, nodes, outputs: [`n${n - 1}`], mode: "backprop" } as ModelSpec;
}

describe("limits are checked from shapes, before any weight is allocated", () => {
  test("a dense layer of 10,000 units on 10,000 inputs (1e8 parameters) is refused at the layer, allocating nothing", () => {
    const spec = parse({ input: { shape: [10000] }, layers: [{ type: "dense", units: 10000 }] });
    const { problems, tensors } = refused(() => inspectSpec(spec, LIMITS));
    assert.equal(tensors, 0, "no tensor was created");
    assert.equal(problems[0].path, "spec.layers[0]");
    assert.match(problems[0].message, /the model has 100010000 parameters, the limit is 50000000; this dense layer has 100010000/);
  });

  test("a dense layer of 1e9 units is refused the same way (it used to allocate for minutes)", () => {
    const spec = parse({ input: { shape: [4] }, layers: [{ type: "dense", units: 1e9 }] });
    const { problems, tensors } = refused(() => inspectSpec(spec, LIMITS));
    assert.equal(tensors, 0, "no tensor was created");
    assert.equal(problems[0].path, "spec.layers[0]");
    assert.match(problems[0].message, /the model has 5000000000 parameters, the limit is 50000000/);
  });

  test("the largest layer is named, wherever it sits; an embedding counts inputDim × outputDim", () => {
    const spec = parse({
      input: { shape: [12], dtype: "int32" },
      layers: [{ type: "embedding", inputDim: 1e9, outputDim: 16 }, { type: "flatten" }, { type: "dense", units: 10, activation: "softmax" }],
    });
    const { problems, tensors } = refused(() => inspectSpec(spec, LIMITS));
    assert.equal(tensors, 0, "no tensor was created");
    assert.equal(problems[0].path, "spec.layers[0]");
    assert.match(problems[0].message, /the model has 16000001930 parameters, the limit is 50000000; this embedding layer has 16000000000/);
  });

  test("a huge image into a convolution is refused by its FLOPs at the layer; tfjs allocates no activations for it", () => {
    const spec = parse({ input: { shape: [100000, 100000, 3] }, layers: [{ type: "conv2d", filters: 8, kernelSize: 3 }, { type: "globalAveragePooling2d" }] });
    const { problems, tensors } = refused(() => inspectSpec(spec, LIMITS));
    assert.equal(tensors, 0, "no tensor was created");
    assert.equal(problems.length, 1);
    assert.equal(problems[0].path, "spec.layers[0]");
    assert.match(problems[0].message, /the model needs about 4\.40e\+12 FLOPs per sample, the limit is 2\.00e\+10; this conv2d layer needs 4\.32e\+12/);
  });

  test("a positional encoding computes its table for the sequences it sees, not for maxLength", async () => {
    const spec = parse({ input: { shape: [null, 8] }, layers: [{ type: "positionalEncoding", maxLength: 7_000_000 }] });
    assert.equal(inspectSpec(spec, LIMITS).paramCount, 0, "7e6 × 8 would be 5.6e7 values if precomputed");
    const { model } = buildModel(spec);
    try {
      const y = model.predict(tf.zeros([1, 10, 8])) as tf.Tensor;
      assert.deepEqual(y.shape, [1, 10, 8]);
      y.dispose();
      const table = (model.layers[1] as unknown as { table: Float32Array }).table;
      assert.equal(table.length, 10 * 8, "rows for the 10 steps seen");
    } finally {
      model.dispose();
    }
  });

  test("a model exactly at a limit passes; one value over does not", () => {
    const spec = parse({ input: { shape: [100] }, layers: [{ type: "dense", units: 100 }] });
    assert.equal(inspectSpec(spec, { ...LIMITS, maxParams: 10100 }).paramCount, 10100);
    const { problems } = refused(() => inspectSpec(spec, { ...LIMITS, maxParams: 10099 }));
    assert.match(problems[0].message, /the model has 10100 parameters, the limit is 10099/);
    assert.equal(inspectSpec(spec, { ...LIMITS, maxFlopsPerSample: 20000 }).summary.flopsPerSample, 20000);
    refused(() => inspectSpec(spec, { ...LIMITS, maxFlopsPerSample: 19999 }));
  });
});

describe("graphs: the node count first, then iterative walks", () => {
  test("the schema takes at most 1000 graph nodes, as it takes at most 1000 layers", () => {
    const ok = modelSpecSchema.safeParse(chain(1000));
    assert.ok(ok.success);
    const tooMany = modelSpecSchema.safeParse(chain(1001));
    assert.ok(!tooMany.success);
    assert.deepEqual(tooMany.error.issues.map((i) => [i.path.join("."), i.message]), [["nodes", "at most 1000 nodes"]]);
  });

  test("TRAINYARD_MAX_LAYERS is checked before the graph is planned", () => {
    const { problems } = refused(() => inspectSpec(chain(5000), LIMITS));
    assert.deepEqual(problems, [{ path: "spec", message: "has 5000 layers, the limit is 1000" }]);
    const small = refused(() => inspectSpec(chain(11), { ...LIMITS, maxLayers: 10 }));
    assert.deepEqual(small.problems, [{ path: "spec", message: "has 11 layers, the limit is 10" }]);
  });

  test("a chain of 1000 nodes, the most the schema allows, builds", () => {
    const { model, summary } = buildModel(parse(chain(1000)));
    assert.equal(summary.layers.length, 1000);
    model.dispose();
  });

  test("topologicalOrder walks a 100,000-node chain without recursion, in dependency order", () => {
    const plan = planOf(chain(100_000), "spec");
    const order = topologicalOrder(plan);
    assert.equal(order.length, 100_000);
    assert.equal(order[0].name, "n0");
    assert.equal(order.at(-1)!.name, "n99999");
  });

  test("a cycle is still named along its trail, however long", () => {
    const spec = chain(50_000);
    (spec.nodes as Record<string, { inputs: string[] }>).n0.inputs = ["n49999"];
    assert.throws(() => topologicalOrder(planOf(spec, "spec")), (e: unknown) => {
      assert.ok(e instanceof ValidationError);
      assert.equal(e.problems[0].path, "spec.nodes.n49999");
      assert.match(e.problems[0].message, /^is part of a cycle: n49999 → n49998 → .* → n1 → n0 → n49999$/);
      return true;
    });
    // Through a shared node's `of` too.
    const shared = parse({
      inputs: { x: { shape: [4] } },
      nodes: { a: { type: "dense", units: 4, inputs: ["x"] }, b: { type: "shared", of: "c", inputs: ["a"] }, c: { type: "dense", units: 4, inputs: ["b"] } },
      outputs: ["c"],
    });
    assert.throws(() => topologicalOrder(planOf(shared, "spec")), /spec.nodes.c: is part of a cycle: c → b → c/);
  });

  test("the order is the one the recursive walk gave, for every template", () => {
    // The recursive depth-first walk topologicalOrder used to be, as the reference.
    const recursive = (plan: Plan): string[] => {
      const byName = new Map(plan.nodes.map((n) => [n.name, n]));
      const done = new Set<string>();
      const order: string[] = [];
      const visit = (name: string) => {
        const node = byName.get(name);
        if (!node || done.has(name)) return;
        done.add(name);
        for (const dep of node.inputs) visit(dep);
        if (node.spec.type === "shared") visit(node.spec.of);
        order.push(name);
      };
      for (const o of plan.outputs) visit(o);
      return order;
    };
    for (const name of Object.keys(TEMPLATES)) {
      const plan = planOf(renderTemplate(name, {}), "spec");
      assert.deepEqual(topologicalOrder(plan).map((n: PlanNode) => n.name), recursive(plan), name);
    }
  });
});

/** One case per layer type and variant that changes its weights or shape. Graph specs for the layers that merge. */
const seq = (shape: (number | null)[], layers: unknown[], dtype = "float32") => ({ input: { shape, dtype }, layers });
const IMG = [12, 10, 3];
const SEQ = [7, 5];
const LAYER_CASES: Record<string, unknown> = {
  dense: seq([6], [{ type: "dense", units: 4 }]),
  "dense on a sequence, no bias, leakyRelu": seq(SEQ, [{ type: "dense", units: 3, useBias: false, activation: "leakyRelu" }]),
  activation: seq([6], [{ type: "activation", activation: "step" }]),
  dropout: seq([6], [{ type: "dropout", rate: 0.5 }]),
  spatialDropout: seq(IMG, [{ type: "spatialDropout", rate: 0.2 }]),
  batchNormalization: seq(IMG, [{ type: "batchNormalization" }]),
  layerNormalization: seq(SEQ, [{ type: "layerNormalization" }]),
  conv1d: seq(SEQ, [{ type: "conv1d", filters: 4, kernelSize: 3, strides: 2, padding: "same" }]),
  "conv1d dilated, no bias": seq([11, 5], [{ type: "conv1d", filters: 4, kernelSize: 3, dilationRate: 2, useBias: false }]),
  conv2d: seq(IMG, [{ type: "conv2d", filters: 4, kernelSize: [3, 2], strides: [2, 1] }]),
  "conv2d dilated, gelu": seq(IMG, [{ type: "conv2d", filters: 4, kernelSize: 3, dilationRate: [2, 1], padding: "same", activation: "gelu" }]),
  separableConv2d: seq(IMG, [{ type: "separableConv2d", filters: 5, kernelSize: 3, depthMultiplier: 2 }]),
  "separableConv2d, no bias": seq(IMG, [{ type: "separableConv2d", filters: 5, kernelSize: [2, 3], useBias: false, strides: 2, padding: "same" }]),
  depthwiseConv2d: seq(IMG, [{ type: "depthwiseConv2d", kernelSize: 3, depthMultiplier: 3 }]),
  "depthwiseConv2d, no bias": seq(IMG, [{ type: "depthwiseConv2d", kernelSize: [1, 3], useBias: false }]),
  conv2dTranspose: seq(IMG, [{ type: "conv2dTranspose", filters: 4, kernelSize: 3, strides: 2, padding: "same" }]),
  "conv2dTranspose valid": seq(IMG, [{ type: "conv2dTranspose", filters: 2, kernelSize: [3, 2] }]),
  coordConv: seq(IMG, [{ type: "coordConv", filters: 4, kernelSize: 3 }]),
  "coordConv with radius, swish": seq(IMG, [{ type: "coordConv", filters: 4, kernelSize: 3, withRadius: true, activation: "swish" }]),
  upSampling2d: seq(IMG, [{ type: "upSampling2d", size: [2, 3] }]),
  "upSampling2d bilinear": seq(IMG, [{ type: "upSampling2d", interpolation: "bilinear" }]),
  maxPooling1d: seq(SEQ, [{ type: "maxPooling1d" }]),
  averagePooling1d: seq(SEQ, [{ type: "averagePooling1d", poolSize: 3, strides: 1, padding: "same" }]),
  maxPooling2d: seq(IMG, [{ type: "maxPooling2d", poolSize: [3, 2] }]),
  averagePooling2d: seq(IMG, [{ type: "averagePooling2d", strides: 1, padding: "same" }]),
  globalMaxPooling1d: seq(SEQ, [{ type: "globalMaxPooling1d" }]),
  globalAveragePooling1d: seq(SEQ, [{ type: "globalAveragePooling1d" }]),
  globalMaxPooling2d: seq(IMG, [{ type: "globalMaxPooling2d" }]),
  globalAveragePooling2d: seq(IMG, [{ type: "globalAveragePooling2d" }]),
  adaptiveAveragePooling2d: seq(IMG, [{ type: "adaptiveAveragePooling2d", outputSize: [2, 3] }]),
  adaptiveMaxPooling2d: seq(IMG, [{ type: "adaptiveMaxPooling2d", outputSize: 4 }]),
  flatten: seq(IMG, [{ type: "flatten" }]),
  reshape: seq(IMG, [{ type: "reshape", targetShape: [-1, 3] }]),
  permute: seq(SEQ, [{ type: "permute", dims: [2, 1] }]),
  cropping2d: seq(IMG, [{ type: "cropping2d", cropping: [[1, 0], [2, 1]] }]),
  zeroPadding2d: seq(IMG, [{ type: "zeroPadding2d", padding: [1, 2] }]),
  concatenate: { inputs: { a: { shape: SEQ }, b: { shape: [7, 2] } }, nodes: { c: { type: "concatenate", inputs: ["a", "b"] } }, outputs: ["c"] },
  add: { inputs: { a: { shape: IMG }, g: { shape: [1, 1, 3] } }, nodes: { s: { type: "add", inputs: ["a", "g"] } }, outputs: ["s"] },
  multiply: { inputs: { a: { shape: SEQ }, b: { shape: SEQ }, c: { shape: SEQ } }, nodes: { m: { type: "multiply", inputs: ["a", "b", "c"] } }, outputs: ["m"] },
  distance: { inputs: { a: { shape: [6] }, b: { shape: [6] } }, nodes: { d: { type: "distance", metric: "cosine", inputs: ["a", "b"] } }, outputs: ["d"] },
  embedding: seq([7], [{ type: "embedding", inputDim: 50, outputDim: 8, maskZero: true }], "int32"),
  masking: seq(SEQ, [{ type: "masking" }, { type: "simpleRNN", units: 3 }]),
  simpleRNN: seq(SEQ, [{ type: "simpleRNN", units: 4, returnSequences: true, activation: "relu" }]),
  lstm: seq(SEQ, [{ type: "lstm", units: 6 }]),
  gru: seq(SEQ, [{ type: "gru", units: 5, returnSequences: true }]),
  bidirectional: seq(SEQ, [{ type: "bidirectional", layer: { type: "lstm", units: 4, returnSequences: true } }]),
  "bidirectional gru, sum": seq(SEQ, [{ type: "bidirectional", layer: { type: "gru", units: 3 }, mergeMode: "sum" }]),
  "bidirectional simpleRNN, ave": seq(SEQ, [{ type: "bidirectional", layer: { type: "simpleRNN", units: 3 }, mergeMode: "ave" }]),
  positionalEncoding: seq(SEQ, [{ type: "positionalEncoding", maxLength: 16 }]),
  attention: { inputs: { q: { shape: SEQ }, v: { shape: [9, 5] } }, nodes: { at: { type: "attention", inputs: ["q", "v"] } }, outputs: ["at"] },
  "attention additive, with a key, causal": {
    inputs: { q: { shape: SEQ }, v: { shape: [7, 3] }, k: { shape: SEQ } },
    nodes: { at: { type: "attention", score: "additive", causal: true, inputs: ["q", "v", "k"] } },
    outputs: ["at"],
  },
  multiHeadSelfAttention: seq(SEQ, [{ type: "multiHeadSelfAttention", numHeads: 2, keyDim: 3 }]),
  transformerEncoder: seq(SEQ, [{ type: "transformerEncoder", numHeads: 2, keyDim: 4, ffDim: 16 }]),
  shared: {
    inputs: { l: { shape: [6] }, r: { shape: [6] } },
    nodes: { encL: { type: "dense", units: 4, inputs: ["l"] }, encR: { type: "shared", of: "encL", inputs: ["r"] }, d: { type: "distance", inputs: ["encL", "encR"] } },
    outputs: ["d"],
  },
};

/** The preflight must say what the build says: shapes, parameters (per layer and trainable), FLOPs, memory. */
function assertPreflightMatchesBuild(spec: ModelSpec, what: string) {
  const pre = preflight(spec);
  const built = buildModel(spec, "spec", { zeroWeights: true });
  try {
    assert.deepEqual(pre.summary, built.summary, what);
    assert.equal(pre.summary.totalParams, built.model.countParams(), what);
    assert.deepEqual(pre.outputShapes, built.outputShapes, what);
    assert.deepEqual(pre.inputShapes, built.inputShapes, what);
    // Zeroed weights reach every layer, recurrent cells included: no initializer ran.
    for (const w of built.model.weights) assert.ok(w.read().dataSync().every((v) => v === 0), `${what}: ${w.name} is not zeroed`);
  } finally {
    built.model.dispose();
  }
}

describe("the preflight's shapes, parameters and FLOPs are the built model's", () => {
  test("for every layer type", () => {
    const covered = new Set<string>();
    for (const [what, raw] of Object.entries(LAYER_CASES)) {
      const spec = parse(raw);
      for (const n of planOf(spec, "spec").nodes) covered.add(n.spec.type);
      assertPreflightMatchesBuild(spec, what);
    }
    assert.deepEqual(LAYER_TYPES.filter((t) => !covered.has(t)), [], "layer types without a case");
    assert.ok(covered.has("shared"));
  });

  test("for every template of the zoo, at its default and at a larger input", () => {
    for (const name of Object.keys(TEMPLATES)) {
      assertPreflightMatchesBuild(renderTemplate(name, {}), name);
      const def = TEMPLATES[name];
      if (def.defaultInputShape.length === 3) assertPreflightMatchesBuild(renderTemplate(name, { inputShape: [64, 64, 3], classes: 7 }), `${name} at 64×64×3`);
    }
  });

  test("a shape error reads as the build reported it before there was a preflight", () => {
    // [spec, the problem buildModel gave before the preflight existed, whether the preflight finds it].
    const cases: [unknown, { path: string; message: string }, boolean][] = [
      [seq([4], [{ type: "conv2d", filters: 2, kernelSize: 3 }]), { path: "spec.layers[0]", message: "cannot be applied to input of shape [null, 4]: Input 0 is incompatible with layer l0_conv2d: expected ndim=4, found ndim=2" }, true],
      [seq([4], [{ type: "flatten" }]), { path: "spec.layers[0]", message: "cannot be applied to input of shape [null, 4]: Input 0 is incompatible with layer l0_flatten: expected min_ndim=3, found ndim=2." }, true],
      [seq([null, 3], [{ type: "flatten" }]), { path: "spec.layers[0]", message: 'cannot be applied to input of shape [null, null, 3]: The shape of the input to "Flatten" is not fully defined (got ,3). Make sure to pass a complete "input_shape" or "batch_input_shape" argument to the first layer in your model.' }, true],
      [seq([10, 8], [{ type: "positionalEncoding", maxLength: 4 }]), { path: "spec.layers[0]", message: 'cannot be applied to input of shape [null, 10, 8]: TrainyardPositionalEncoding "l0_positionalEncoding": input has 10 time steps, more than maxLength 4' }, true],
      [seq([6], [{ type: "lstm", units: 2 }]), { path: "spec.layers[0]", message: "cannot be applied to input of shape [null, 6]: Input 0 is incompatible with layer l0_lstm: expected ndim=3, found ndim=2" }, true],
      [seq([6], [{ type: "embedding", inputDim: 5, outputDim: 2 }, { type: "conv2d", filters: 1, kernelSize: 1 }]), { path: "spec.layers[1]", message: "cannot be applied to input of shape [null, 6, 2]: Input 0 is incompatible with layer l1_conv2d: expected ndim=4, found ndim=3" }, true],
      [
        { inputs: { a: { shape: [6] }, b: { shape: [6, 2] } }, nodes: { d: { type: "distance", inputs: ["a", "b"] } }, outputs: ["d"] },
        { path: "spec.nodes.d", message: "inputs have shapes [null, 6] and [null, 6, 2]; distance needs equal shapes" }, true,
      ],
      [
        { inputs: { q: { shape: [4] }, v: { shape: [4] } }, nodes: { at: { type: "attention", inputs: ["q", "v"] } }, outputs: ["at"] },
        { path: "spec.nodes.at", message: "cannot be applied to inputs of shape [null, 4] and [null, 4]: TrainyardAttention inputs must be [batch, time, features], got [, 4]" }, true,
      ],
      // A shared layer is checked against its first input's shape when tfjs builds it, so only the build finds this one.
      [
        { inputs: { a: { shape: [6] }, b: { shape: [4] } }, nodes: { e: { type: "dense", units: 3, inputs: ["a"] }, f: { type: "shared", of: "e", inputs: ["b"] } }, outputs: ["f"] },
        { path: "spec.nodes.f", message: "cannot be applied to input of shape [null, 4]: Input 0 is incompatible with layer e: expected axis -1 of input shape to have value 6 but got shape ,4." }, false,
      ],
    ];
    for (const [raw, problem, early] of cases) {
      const spec = parse(raw);
      assert.deepEqual(refused(() => buildModel(spec)).problems, [problem], JSON.stringify(raw));
      if (early) assert.deepEqual(refused(() => preflight(spec)).problems, [problem]);
      else assert.doesNotThrow(() => preflight(spec));
    }
  });

  test("a node named like another node's derived layer is refused at its path (tf.model threw a plain Error: a 500)", () => {
    const spec = parse({
      inputs: { x: { shape: [4] } },
      nodes: { a: { type: "dense", units: 3, activation: "leakyRelu", inputs: ["x"] }, a_act: { type: "dense", units: 2, inputs: ["a"] } },
      outputs: ["a_act"],
    });
    assert.deepEqual(refused(() => inspectSpec(spec, LIMITS)).problems, [{ path: "spec.nodes.a_act", message: "needs a layer named 'a_act', which 'a' already has; rename one of them" }]);
  });

  test("a free dimension that sizes weights, or a shape no tensor can have (the build used to accept them), is refused at its layer", () => {
    const free = refused(() => preflight(parse(seq([null], [{ type: "dense", units: 2 }])))).problems;
    assert.deepEqual(free, [{ path: "spec.layers[0]", message: "cannot be applied to input of shape [null, null]: the last dimension must be known: it sizes the weights" }]);
    const pooled = refused(() => preflight(parse(seq([5, 5, 3], [{ type: "maxPooling2d", poolSize: 7 }])))).problems;
    assert.deepEqual(pooled, [{ path: "spec.layers[0]", message: "cannot be applied to input of shape [null, 5, 5, 3]: gives the impossible shape [null, 0, 0, 3]" }]);
    const dilated = refused(() => preflight(parse(seq([4], [{ type: "conv2d", filters: 2, kernelSize: 3, dilationRate: 2 }])))).problems;
    assert.deepEqual(dilated, [{ path: "spec.layers[0]", message: "cannot be applied to input of shape [null, 4]: Input 0 is incompatible with layer l0_conv2d: expected ndim=4, found ndim=2" }]);
    const largerKernel = refused(() => preflight(parse(seq([5, 5, 3], [{ type: "conv2d", filters: 2, kernelSize: 7 }])))).problems;
    assert.deepEqual(largerKernel, [{ path: "spec.layers[0]", message: "cannot be applied to input of shape [null, 5, 5, 3]: gives the impossible shape [null, -1, -1, 2]" }]);
  });
});
