import assert from "node:assert/strict";
import { before, test } from "node:test";
import { initBackend } from "../../lib/engine/backend.ts";
import { inspectSpec } from "../../lib/registry/model-service.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { modelSpecSchema } from "../../lib/model-spec/model-spec-schema.ts";

before(async () => {
  await initBackend("auto");
});

const issues = (value: unknown) => {
  const r = modelSpecSchema.safeParse(value);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
};

test("every field problem is reported with its path", () => {
  const got = issues({ input: { shape: [4, 0] }, layers: [{ type: "dense", units: 2.5 }, { type: "dropout", rate: 1 }, { type: "dense", units: 3, activation: "softplus" }, { type: "warp" }, { type: "conv2d", filters: 2, kernelSize: [3] }] });
  assert.equal(got.length, 6, got.join("\n"));
  assert.match(got[0], /^input\.shape\.1: /);
  assert.equal(got[1], "layers.0.units: expected a positive integer");
  assert.equal(got[2], "layers.1.rate: must be < 1");
  assert.match(got[3], /^layers\.2\.activation: must be one of sigmoid, step, tanh, relu, leakyRelu, elu, selu, gelu, swish, softmax, linear$/);
  assert.match(got[4], /^layers\.3\.type: unknown layer type; expected one of dense, activation, .*transformerEncoder$/);
  assert.equal(got[5], "layers.4.kernelSize: expected 2 values");
  assert.deepEqual(issues({ input: { shape: [4] }, layers: [] }), ["layers: must have at least one layer"]);
});

test("weight names come from positions, so every process builds the same names", () => {
  const spec = modelSpecSchema.parse({ input: { shape: [3] }, layers: [{ type: "dense", units: 4, activation: "leakyRelu" }, { type: "batchNormalization" }, { type: "dense", units: 2 }] });
  const { model, paramCount, outputShape } = buildModel(spec);
  assert.deepEqual(outputShape, [2]);
  assert.equal(paramCount, 3 * 4 + 4 + 4 * 4 + 4 * 2 + 2);
  assert.deepEqual(model.layers.map((l) => l.name), ["input", "l0_dense", "l0_dense_act", "l1_batchNormalization", "l2_dense"]);
  model.dispose();
});

test("the parameter limit is enforced", () => {
  const spec = modelSpecSchema.parse({ input: { shape: [100] }, layers: [{ type: "dense", units: 100 }] });
  const limits = { maxParams: 1000, maxLayers: 10, maxFlopsPerSample: 1e9 };
  assert.throws(() => inspectSpec(spec, limits), /the model has 10100 parameters, the limit is 1000/);
  assert.throws(() => inspectSpec(spec, { ...limits, maxParams: 1e6, maxFlopsPerSample: 1000 }), /FLOPs per sample, the limit is/);
  const report = inspectSpec(spec, { ...limits, maxParams: 20_000 });
  assert.equal(report.paramCount, 10100);
  assert.deepEqual(report.outputShapes, [[100]]);
  assert.equal(report.summary.flopsPerSample, 2 * 100 * 100);
});
