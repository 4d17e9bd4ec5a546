import assert from "node:assert/strict";
import { before, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/engine/backend.ts";
import { NotFoundError, ValidationError } from "../../lib/errors.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { checkTraining } from "../../lib/model-spec/objectives.ts";
import { matchModelToDataset } from "../../lib/training/dataset-matching.ts";
import { isGraph, modelInputs, modelSpecSchema, type GraphSpec, type LayerSpec, type ModelSpec, type NodeSpec } from "../../lib/model-spec/model-spec-schema.ts";
import { renderTemplate, TEMPLATES } from "../../lib/model-spec/templates/index.ts";

before(async () => {
  await initBackend("auto");
});

const REQUIRED = [
  "perceptron", "mlp", "lenet5", "alexnet", "vgg", "inception", "resnet", "densenet", "squeezenet", "unet", "segnet",
  "siamese", "efficientnet", "simple_rnn", "lstm", "gru", "char_model", "transformer",
];
const NAMES = Object.keys(TEMPLATES);
const PER_PIXEL = new Set(["unet", "segnet"]);

/** What the model must output for a template rendered with this shape and class count. */
function expectedOutput(name: string, inputShape: number[], classes: number): number[] {
  if (PER_PIXEL.has(name)) return [inputShape[0], inputShape[1], classes];
  if (name === "siamese") return [1];
  if (name === "char_model") return [inputShape[0], classes];
  if (name === "perceptron") return [classes <= 2 ? 1 : classes];
  return [classes];
}

/** Every way a graph can be wired wrong that the schema alone does not catch. */
function graphProblems(spec: GraphSpec): string[] {
  const problems: string[] = [];
  const inputs = new Set(Object.keys(spec.inputs));
  const nodes = spec.nodes;
  for (const name of Object.keys(nodes)) if (inputs.has(name)) problems.push(`${name}: is both an input and a node`);
  const edges = (name: string): string[] => {
    const node = nodes[name];
    return [...(node.inputs ?? []), ...(node.type === "shared" ? [node.of] : [])];
  };
  for (const [name, node] of Object.entries(nodes)) {
    if (!node.inputs?.length) problems.push(`${name}: has no inputs`);
    for (const from of node.inputs ?? []) if (!inputs.has(from) && !(from in nodes)) problems.push(`${name}: input ${from} does not exist`);
    if (node.type === "shared") {
      const target = nodes[node.of];
      if (!target) problems.push(`${name}: shares unknown node ${node.of}`);
      else if (target.type === "shared") problems.push(`${name}: shares ${node.of}, itself a shared node`);
    }
  }
  for (const out of spec.outputs) if (!(out in nodes)) problems.push(`output ${out} is not a node`);
  // Depth-first search: a node met again while still on the stack closes a cycle.
  const state = new Map<string, "open" | "done">();
  const visit = (name: string, trail: string[]): void => {
    if (state.get(name) === "done" || inputs.has(name) || !(name in nodes)) return;
    if (state.get(name) === "open") {
      problems.push(`cycle: ${[...trail.slice(trail.indexOf(name)), name].join(" → ")}`);
      return;
    }
    state.set(name, "open");
    for (const next of edges(name)) visit(next, [...trail, name]);
    state.set(name, "done");
  };
  for (const name of Object.keys(nodes)) visit(name, []);
  // Nodes and inputs that no output depends on: a branch a template forgot to merge.
  const used = new Set<string>();
  const mark = (name: string): void => {
    if (used.has(name)) return;
    used.add(name);
    if (name in nodes) for (const next of edges(name)) mark(next);
  };
  for (const out of spec.outputs) mark(out);
  for (const name of [...inputs, ...Object.keys(nodes)]) if (!used.has(name)) problems.push(`${name}: reaches no output`);
  return problems;
}

/** The size of the output's last axis as the spec states it: the units or filters of the layer that sets it. */
function outputUnits(spec: ModelSpec): number | undefined {
  const passThrough = new Set(["activation", "dropout", "globalAveragePooling2d", "globalAveragePooling1d", "batchNormalization"]);
  const sizeOf = (l: LayerSpec | NodeSpec): number | undefined =>
    l.type === "dense" ? l.units : l.type === "conv2d" ? l.filters : l.type === "distance" ? 1 : undefined;
  if (isGraph(spec)) {
    let node = spec.nodes[spec.outputs[0]];
    for (;;) {
      if (node.type === "shared") node = spec.nodes[node.of];
      else if (passThrough.has(node.type) && node.inputs?.length === 1) node = spec.nodes[node.inputs[0]];
      else return sizeOf(node);
    }
  }
  const layers = spec.layers!;
  let i = layers.length - 1;
  while (i > 0 && passThrough.has(layers[i].type)) i--;
  return sizeOf(layers[i]);
}

test("the zoo holds every required template, each under its own name", () => {
  for (const name of REQUIRED) assert.ok(NAMES.includes(name), `missing template ${name}`);
  for (const [key, def] of Object.entries(TEMPLATES)) {
    assert.equal(def.name, key);
    assert.ok(def.title && def.description.length > 40, `${key} needs a title and a description`);
    assert.ok(def.defaultInputShape.length > 0 && def.defaultClasses > 0);
  }
});

test("every template's default spec is a valid model spec, also after a JSON round trip", () => {
  for (const name of NAMES) {
    const spec = renderTemplate(name, {});
    assert.doesNotThrow(() => modelSpecSchema.parse(spec), `${name} does not parse`);
    assert.doesNotThrow(() => modelSpecSchema.parse(JSON.parse(JSON.stringify(spec))), `${name} does not survive JSON`);
  }
});

test("the graph check finds dangling inputs, cycles, bad shares and unused nodes", () => {
  const bad = modelSpecSchema.parse({
    inputs: { x: { shape: [4] }, unused: { shape: [4] } },
    nodes: {
      a: { type: "dense", units: 4, inputs: ["x", "c"] },
      b: { type: "dense", units: 4, inputs: ["a"] },
      c: { type: "dense", units: 4, inputs: ["b"] },
      d: { type: "dense", units: 4, inputs: ["ghost"] },
      e: { type: "shared", of: "nowhere", inputs: ["x"] },
      out: { type: "add", inputs: ["c", "e"] },
    },
    outputs: ["out"],
  }) as GraphSpec;
  assert.deepEqual(graphProblems(bad).sort(), [
    "cycle: a → c → b → a",
    "d: input ghost does not exist",
    "d: reaches no output",
    "e: shares unknown node nowhere",
    "unused: reaches no output",
  ]);
});

test("every graph template is wired correctly: known names, no cycles, nothing unused", () => {
  const graphs = NAMES.filter((name) => isGraph(renderTemplate(name, {})));
  assert.ok(graphs.length >= 7, `only ${graphs.join(", ")} are graphs`);
  for (const name of graphs) {
    for (const params of [{}, { classes: 1 }]) {
      assert.deepEqual(graphProblems(renderTemplate(name, params) as GraphSpec), [], name);
    }
  }
  // Non-default knobs take other code paths (projections, transitions, stems).
  const variants: [string, Record<string, unknown>][] = [
    ["resnet", { depth: 8, inputShape: [224, 224, 3] }],
    ["densenet", { blocks: 4, bottleneck: false }],
    ["inception", { inputShape: [96, 96, 3] }],
    ["unet", { depth: 4, batchNorm: true, inputShape: [64, 64, 1] }],
    ["efficientnet", { width: 1, depth: 1, inputShape: [224, 224, 3] }],
    ["siamese", { inputShape: [16], metric: "cosine" }],
  ];
  for (const [name, query] of variants) assert.deepEqual(graphProblems(renderTemplate(name, query) as GraphSpec), [], `${name} ${JSON.stringify(query)}`);
});

test("the output layer has as many units as there are classes, with the matching activation", () => {
  for (const name of NAMES) {
    for (const classes of [1, 7]) {
      if (name === "char_model" && classes === 1) continue; // a one-character vocabulary is refused, below
      const spec = renderTemplate(name, { classes });
      const want = expectedOutput(name, TEMPLATES[name].defaultInputShape, classes).at(-1);
      assert.equal(outputUnits(spec), want, `${name} with ${classes} classes`);
    }
  }
  // Probabilities: softmax over several classes, one sigmoid unit for a binary problem.
  const last = (spec: ModelSpec) => (isGraph(spec) ? spec.nodes[spec.outputs[0]] : spec.layers!.at(-1)!) as { activation?: string };
  for (const name of ["mlp", "resnet", "unet", "squeezenet", "lstm", "transformer"]) {
    assert.equal(last(renderTemplate(name, { classes: 5 })).activation, "softmax", name);
    assert.equal(last(renderTemplate(name, { classes: 1 })).activation, "sigmoid", name);
  }
  assert.throws(() => renderTemplate("char_model", { classes: 1 }), (e) => e instanceof ValidationError && e.problems[0].path === "querystring.classes");
});

test("an input shape a template cannot take is refused at querystring.inputShape", () => {
  const unusable: Record<string, number[][]> = {
    perceptron: [[28, 28, 1]],
    mlp: [[4, 0], [], [1, 2, 3, 4, 5, 6, 7, 8, 9]],
    lenet5: [[28, 28], [8, 8, 1]],
    alexnet: [[4, 4, 3], [32, 32]],
    vgg: [[1, 1, 3], [32]],
    inception: [[4, 4, 3]],
    resnet: [[4, 4, 3], [32, 32]],
    densenet: [[2, 2, 3]],
    squeezenet: [[4, 4, 3]],
    efficientnet: [[8, 8, 3]],
    unet: [[30, 32, 3], [4, 4, 3], [32, 32]],
    segnet: [[20, 20, 3]],
    siamese: [[4, 4, 1], [10, 3]],
    simple_rnn: [[28, 28, 1]],
    lstm: [[28, 28, 1]],
    gru: [[28, 28, 1]],
    char_model: [[20, 8]],
    transformer: [[28, 28, 1]],
  };
  assert.deepEqual(Object.keys(unusable).sort(), [...NAMES].sort(), "every template needs a case here");
  const atShape = (e: unknown) => e instanceof ValidationError && e.problems.length === 1 && e.problems[0].path === "querystring.inputShape";
  for (const [name, shapes] of Object.entries(unusable)) {
    for (const inputShape of shapes) assert.throws(() => renderTemplate(name, { inputShape }), atShape, `${name} took [${inputShape.join(", ")}]`);
  }
  // Too small for the requested number of blocks, not for the template.
  assert.throws(() => renderTemplate("vgg", { inputShape: [16, 16, 3], blocks: 5 }), (e) => atShape(e) && /pass blocks=4/.test((e as Error).message));
  assert.throws(() => renderTemplate("unet", { inputShape: [32, 32, 3], depth: 6 }), atShape);
});

test("an unknown template is NotFoundError", () => {
  assert.throws(() => renderTemplate("resnet50x", {}), (e) => e instanceof NotFoundError && e.status === 404 && /template 'resnet50x'/.test(e.message));
  assert.throws(() => renderTemplate("toString", {}), NotFoundError);
});

test("params arrive as query-string text, are checked, and change the spec", () => {
  const nodes = (spec: ModelSpec) => Object.keys(spec.nodes ?? {}).length;
  assert.ok(nodes(renderTemplate("resnet", { depth: "8" })) < nodes(renderTemplate("resnet", {})));
  assert.ok(renderTemplate("vgg", { batchNorm: "true" }).layers!.some((l) => l.type === "batchNormalization"));
  assert.ok(!renderTemplate("vgg", { batchNorm: "false" }).layers!.some((l) => l.type === "batchNormalization"));
  assert.deepEqual(renderTemplate("mlp", { hidden: "" }).layers!.map((l) => l.type), ["dense"]);
  assert.deepEqual(renderTemplate("mlp", { hidden: "16,8,4" }).layers!.map((l) => (l.type === "dense" ? l.units : 0)), [16, 8, 4, 3]);
  assert.deepEqual(renderTemplate("lenet5", { inputShape: "32,32,1", classes: "5" }).input!.shape, [32, 32, 1]);
  const lstm = renderTemplate("lstm", { bidirectional: true, layers: 2 }).layers!;
  assert.deepEqual(lstm.map((l) => l.type), ["bidirectional", "bidirectional", "dense"]);
  const siamese = renderTemplate("siamese", { metric: "manhattan" }) as GraphSpec;
  assert.equal((siamese.nodes.distance as { metric: string }).metric, "manhattan");

  const paths = (query: Record<string, unknown>, name = "resnet") => {
    try {
      renderTemplate(name, query);
    } catch (e) {
      if (e instanceof ValidationError) return e.problems.map((p) => p.path).sort();
      throw e;
    }
    return [];
  };
  assert.deepEqual(paths({ depth: 15 }), ["querystring.depth"]);
  assert.deepEqual(paths({ dept: 14 }), ["querystring.dept"]);
  assert.deepEqual(paths({ depth: "deep", classes: 0, inputShape: [0] }), ["querystring.classes", "querystring.depth", "querystring.inputShape"]);
  assert.deepEqual(paths({ numHeads: 3 }, "transformer"), ["querystring.numHeads"]);
  assert.deepEqual(paths({ blocks: 9 }, "vgg"), ["querystring.blocks"]);
  assert.deepEqual(paths({ depth: 3 }, "perceptron"), ["querystring.depth"]);
});

test("the sequence templates take token ids or feature vectors", () => {
  for (const name of ["lstm", "transformer"]) {
    const tokens = renderTemplate(name, { inputShape: [50], vocabSize: 500 });
    assert.equal(tokens.input!.dtype, "int32");
    assert.deepEqual(tokens.layers![0], { type: "embedding", inputDim: 500, outputDim: tokens.layers![0].type === "embedding" ? tokens.layers![0].outputDim : 0, maskZero: false });
    const floats = renderTemplate(name, { inputShape: [50, 6] });
    assert.equal(floats.input!.dtype, "float32");
    assert.ok(!floats.layers!.some((l) => l.type === "embedding"));
  }
  const chars = renderTemplate("char_model", { classes: 40 });
  assert.equal(chars.loss, "sparseCategoricalCrossentropy");
  assert.deepEqual(chars.layers!.map((l) => l.type), ["embedding", "lstm", "dense"]);
});

/** Random inputs and one-hot (or 0/1, or real) targets that fit the model. */
function batchFor(model: tf.LayersModel, spec: ModelSpec, outputShape: number[], batch: number) {
  const xs = model.inputs.map((input) => {
    const shape = [batch, ...(input.shape.slice(1) as number[])];
    return input.dtype === "int32" ? tf.randomUniform(shape, 0, 2, "int32") : tf.randomNormal(shape);
  });
  const yShape = [batch, ...outputShape];
  const last = outputShape.at(-1)!;
  if (spec.loss === "meanSquaredError") return { xs, y: tf.randomUniform(yShape), loss: "meanSquaredError" };
  // tfjs has no contrastive loss (the trainer computes it); one batch of MSE on 0/1 targets shows the graph trains.
  if (spec.loss === "contrastive") return { xs, y: tf.randomUniform(yShape).round(), loss: "meanSquaredError" };
  if (last === 1) return { xs, y: tf.randomUniform(yShape).round(), loss: "binaryCrossentropy" };
  // The trainer, too, trains sparse targets as one-hot against categorical cross-entropy.
  return { xs, y: tf.oneHot(tf.randomUniform(yShape.slice(0, -1), 0, last, "int32"), last).toFloat(), loss: "categoricalCrossentropy" };
}

test("every template builds, has the expected output shape, and trains one batch", async (t) => {
  for (const name of NAMES) {
    await t.test(name, async () => {
      const def = TEMPLATES[name];
      const spec = renderTemplate(name, {});
      const { model, outputShape } = buildModel(spec);
      try {
        assert.deepEqual(outputShape, expectedOutput(name, def.defaultInputShape, def.defaultClasses));
        assert.deepEqual(checkTraining(spec), []);
        if (spec.mode === "perceptron") return; // trained by the perceptron rule, not by tfjs
        const { xs, y, loss } = batchFor(model, spec, outputShape, 2);
        model.compile({ optimizer: "adam", loss });
        const value = await model.trainOnBatch(xs.length === 1 ? xs[0] : xs, y);
        assert.ok(Number.isFinite(value as number), `loss ${value}`);
        tf.dispose([...xs, y]);
      } finally {
        model.dispose();
      }
    });
  }
});

test("every template fits a dataset of its kind, as a training job checks before it is queued", () => {
  for (const name of NAMES) {
    const spec = renderTemplate(name, {});
    const { model, outputShape } = buildModel(spec);
    model.dispose();
    const inputs = modelInputs(spec).map((i) => ({ name: i.name, shape: i.shape.map((d) => d ?? 8) }));
    const last = outputShape.at(-1)!;
    const output = spec.loss === "meanSquaredError" || spec.loss === "contrastive"
      ? { name: "output", task: "regression" as const, classes: [], shape: [outputShape.reduce((a, b) => a * b, 1)] }
      : { name: "output", task: "classification" as const, classes: Array.from({ length: last === 1 ? 2 : last }, (_, i) => String(i)), shape: outputShape.length > 1 ? outputShape.slice(0, -1) : [1] };
    const fit = matchModelToDataset(spec, [outputShape], { inputs, outputs: [output] });
    assert.equal(fit.objectives.length, 1, name);
  }
});

test("image templates scale from 28×28 to 224×224 and still build", () => {
  const images = ["lenet5", "alexnet", "vgg", "inception", "resnet", "densenet", "squeezenet", "efficientnet", "unet", "segnet", "siamese"];
  for (const name of images) {
    for (const inputShape of [[28, 28, 1], [64, 64, 3], [224, 224, 3]]) {
      if (PER_PIXEL.has(name) && inputShape[0] === 28) continue; // 28 is not divisible by 2^3
      const { model, outputShape } = buildModel(renderTemplate(name, { inputShape, classes: 5 }));
      model.dispose();
      assert.deepEqual(outputShape, expectedOutput(name, inputShape, 5), `${name} at ${inputShape.join("×")}`);
    }
  }
});
