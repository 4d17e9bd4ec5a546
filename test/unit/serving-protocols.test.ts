// The protocol modules without a server: TensorFlow Serving's and the Open Inference Protocol's
// request parsing and response formatting, with their documents' examples adapted to a signature;
// top-k; and the version lookup cache's invalidation and expiry.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ValidationError } from "../../lib/errors.ts";
import type { ResolvedVersion, VersionTarget } from "../../lib/registry/model-version-repository.ts";
import type { Signature } from "../../lib/registry/signature.ts";
import { formatInfer, inferRequestSchema, parseInfer, selectOutputs } from "../../lib/serving/protocols/kserve-v2.ts";
import { nest, packInputs, topK, type Tensor } from "../../lib/serving/protocols/tensors.ts";
import { formatTfPredict, parseTfPredict, tfModelStatus, tfPredictRequestSchema } from "../../lib/serving/protocols/tf-serving.ts";
import { VersionResolver } from "../../lib/serving/version-resolver.ts";

// The documents' example inputs: "signal" [5] and "sensor" [2, 2]; "tag" (a string) has no place in a float model.
const SIG: Signature = {
  inputs: [{ name: "signal", shape: [5] }, { name: "sensor", shape: [2, 2] }],
  outputs: [{ name: "kind", task: "classification", classes: ["low", "high"] }, { name: "level", task: "regression", classes: [] }],
};
const ONE: Signature = { inputs: [{ name: "input", shape: [2] }], outputs: [{ name: "output", task: "classification", classes: ["a", "b", "c"] }] };

const problem = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ValidationError, String(err));
    return err.message;
  }
  assert.fail("expected a ValidationError");
};
const values = (t: Tensor) => Array.from(t.data);

describe("TensorFlow Serving", () => {
  const row = { instances: [{ signal: [1, 2, 3, 4, 5], sensor: [[1, 2], [3, 4]] }, { signal: [3, 4, 1, 2, 5], sensor: [[4, 5], [6, 8]] }] };
  const columnar = { inputs: { signal: [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]], sensor: [[[1, 2], [3, 4]], [[4, 5], [6, 8]]] } };

  test("the row and columnar examples parse to the same tensors", () => {
    const a = packInputs(SIG.inputs, parseTfPredict(SIG, tfPredictRequestSchema.parse(row)));
    const b = packInputs(SIG.inputs, parseTfPredict(SIG, tfPredictRequestSchema.parse(columnar)));
    assert.deepEqual(a.map((t) => t.shape), [[2, 5], [2, 2, 2]]);
    assert.deepEqual(a.map(values), b.map(values));
    assert.deepEqual(values(a[1]), [1, 2, 3, 4, 4, 5, 6, 8]);
  });

  test("a request has instances or inputs, not both", () => {
    assert.equal(tfPredictRequestSchema.safeParse({ ...row, ...columnar }).success, false);
    assert.equal(tfPredictRequestSchema.safeParse({}).success, false);
  });

  test("the one-input forms: a list of instances, or the input's batch as inputs", () => {
    const a = packInputs(ONE.inputs, parseTfPredict(ONE, { instances: [[1, 2], [3, 4]] }));
    const b = packInputs(ONE.inputs, parseTfPredict(ONE, { inputs: [[1, 2], [3, 4]] }));
    const c = packInputs(ONE.inputs, parseTfPredict(ONE, { instances: [{ input: [1, 2] }, { input: [3, 4] }] }));
    assert.deepEqual([values(a[0]), values(b[0]), values(c[0])], [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]]);
  });

  test("errors name the place, the input and its shape", () => {
    assert.match(problem(() => packInputs(SIG.inputs, parseTfPredict(SIG, { instances: [{ signal: [1, 2, 3, 4, 5], sensor: [[1, 2, 3], [3, 4, 5]] }] }))), /instances\[0\]\.sensor.*input 'sensor' takes shape \[2, 2\] per instance/);
    assert.match(problem(() => parseTfPredict(SIG, { instances: [{ signal: [1, 2, 3, 4, 5] }] })), /instances\[0\]: lacks input 'sensor'/);
    assert.match(problem(() => parseTfPredict(SIG, { inputs: { signal: [[1, 2, 3, 4, 5]], sensor: [] } })), /inputs\.sensor: expected a list/);
    assert.match(problem(() => parseTfPredict(SIG, { inputs: { signal: [[1, 2, 3, 4, 5]], sensor: [[[1, 2], [3, 4]], [[1, 2], [3, 4]]] } })), /inputs\.sensor: has 2 instances, input 'signal' has 1/);
    assert.match(problem(() => parseTfPredict(SIG, { inputs: [[1]] })), /the model has 2 inputs \(signal, sensor\)/);
  });

  test("responses: predictions per instance, outputs per output; objects by name for several outputs", () => {
    const kind = { data: new Float32Array([0.25, 0.75, 0.5, 0.5]), shape: [2, 2] };
    const level = { data: new Float32Array([1, 2]), shape: [2, 1] };
    assert.deepEqual(formatTfPredict("row", SIG, [kind, level]), { predictions: [{ kind: [0.25, 0.75], level: [1] }, { kind: [0.5, 0.5], level: [2] }] });
    assert.deepEqual(formatTfPredict("columnar", SIG, [kind, level]), { outputs: { kind: [[0.25, 0.75], [0.5, 0.5]], level: [[1], [2]] } });
    assert.deepEqual(formatTfPredict("columnar", ONE, [kind]), { outputs: [[0.25, 0.75], [0.5, 0.5]] });
    assert.deepEqual(tfModelStatus([2]), { model_version_status: [{ version: "2", state: "AVAILABLE", status: { error_code: "OK", error_message: "" } }] });
  });
});

describe("Open Inference Protocol", () => {
  const request = {
    id: "42",
    inputs: [
      { name: "signal", shape: [2, 5], datatype: "UINT8", data: [1, 2, 3, 4, 5, 3, 4, 1, 2, 5] },
      { name: "sensor", shape: [2, 2, 2], datatype: "BOOL", data: [[[true, false], [false, true]], [[true, true], [false, false]]] },
    ],
    outputs: [{ name: "level" }],
  };

  test("typed tensors, flat or nested, in the model's input order", () => {
    const parsed = inferRequestSchema.parse({ ...request, inputs: [...request.inputs].reverse() });
    const t = packInputs(SIG.inputs, parseInfer(SIG, parsed));
    assert.deepEqual(t.map((x) => x.shape), [[2, 5], [2, 2, 2]]);
    assert.deepEqual(values(t[0]), [1, 2, 3, 4, 5, 3, 4, 1, 2, 5]);
    assert.deepEqual(values(t[1]), [1, 0, 0, 1, 1, 1, 0, 0]);
  });

  test("the response: id echoed, only the selected outputs, FP32 batch first and flat", () => {
    const parsed = inferRequestSchema.parse(request);
    const selected = selectOutputs(SIG, parsed);
    const kind = { data: new Float32Array([0.25, 0.75, 0.5, 0.5]), shape: [2, 2] };
    const level = { data: new Float32Array([1.5, 2]), shape: [2, 1] };
    assert.deepEqual(formatInfer("sensors", 3, SIG, [kind, level], selected, parsed.id), {
      model_name: "sensors", model_version: "3", id: "42", outputs: [{ name: "level", shape: [2, 1], datatype: "FP32", data: [1.5, 2] }],
    });
  });

  test("shape, type and name errors name the input and its expected shape", () => {
    const one = (input: object) => () => parseInfer(ONE, inferRequestSchema.parse({ inputs: [input] }));
    assert.match(problem(one({ name: "input", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] })), /inputs\[0\]\.shape: \[1, 3\] does not fit input 'input': expected \[batch, 2\]/);
    assert.match(problem(one({ name: "input", shape: [1, 2], datatype: "FP16", data: [1, 2] })), /'FP16' is not supported for input 'input'; send one of FP32, FP64, INT32, INT64, UINT8, BOOL/);
    assert.match(problem(one({ name: "input", shape: [1, 2], datatype: "UINT8", data: [1, 256] })), /inputs\[0\]\.data\[1\]: expected a UINT8 number; input 'input' takes shape \[2\] per instance, shape \[batch, 2\]/);
    assert.match(problem(one({ name: "input", shape: [2, 2], datatype: "FP32", data: [[1, 2], [3]] })), /inputs\[0\]\.data\[1\]: expected 2 values along axis 1/);
    assert.match(problem(one({ name: "inp", shape: [1, 2], datatype: "FP32", data: [1, 2] })), /'inp' is not an input of the model \(its inputs: 'input' \[-1, 2\]\)/);
    assert.match(problem(() => selectOutputs(ONE, inferRequestSchema.parse({ inputs: [{ name: "input", shape: [1, 2], datatype: "FP32", data: [1, 2] }], outputs: [{ name: "x" }] }))), /outputs\[0\]\.name: 'x' is not an output/);
  });
});

describe("top-k and tensors", () => {
  test("the k most probable classes per instance, best first, with labels", () => {
    const probs = { data: new Float32Array([0.1, 0.7, 0.2, 0.5, 0.2, 0.3]), shape: [2, 3] };
    const top = topK(ONE.outputs, [probs], 2) as { label: string; probability: number }[][];
    assert.deepEqual(top.map((r) => r.map((c) => c.label)), [["b", "c"], ["a", "c"]]);
    assert.ok(Math.abs(top[0][0].probability - 0.7) < 1e-6);
    const both = topK(SIG.outputs, [{ data: new Float32Array([0.9, 0.1]), shape: [1, 2] }, { data: new Float32Array([3]), shape: [1, 1] }], 1);
    assert.deepEqual(Object.keys(both), ["kind"]);
    const binary = topK([{ name: "y", task: "classification", classes: ["no", "yes"] }], [{ data: new Float32Array([0.75]), shape: [1, 1] }], 2);
    assert.deepEqual(binary, [[{ label: "yes", probability: 0.75 }, { label: "no", probability: 0.25 }]], "one sigmoid unit: the second class's probability");
    assert.match(problem(() => topK([{ name: "y", task: "regression", classes: [] }], [{ data: new Float32Array([1]), shape: [1, 1] }], 1)), /topK: top-k needs a classification output/);
  });

  test("nest turns a flat buffer back into its shape", () => {
    assert.deepEqual(nest(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]), [[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(nest(new Float32Array([7]), []), 7);
  });
});

describe("version lookup cache", () => {
  const resolved = (version: number): ResolvedVersion => ({ id: `id-${version}`, version, signature: ONE, outputShapes: [[3]] });
  const DEFAULT: VersionTarget = { kind: "default" };

  test("a hit makes no lookup; invalidation and expiry make one", async () => {
    let now = 0;
    let calls = 0;
    let current = 1;
    const r = new VersionResolver(async () => (calls++, resolved(current)), 1000, 100, () => now);
    assert.equal((await r.resolve("t", "m", DEFAULT)).version, 1);
    current = 2;
    assert.equal((await r.resolve("t", "m", DEFAULT)).version, 1);
    assert.equal(calls, 1);
    r.invalidate("t", "m");
    assert.equal((await r.resolve("t", "m", DEFAULT)).version, 2);
    current = 3;
    now = 999;
    assert.equal((await r.resolve("t", "m", DEFAULT)).version, 2);
    now = 1000;
    assert.equal((await r.resolve("t", "m", DEFAULT)).version, 3, "expired after the TTL");
    assert.equal(calls, 3);
  });

  test("a lookup in flight when the model is invalidated does not store its (old) answer", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let current = 1;
    const r = new VersionResolver(async () => {
      const v = current;
      await gate;
      return resolved(v);
    }, 60_000);
    const old = r.resolve("t", "m", { kind: "alias", alias: "prod" });
    current = 2;
    r.invalidate("t", "m");
    const fresh = r.resolve("t", "m", { kind: "alias", alias: "prod" });
    release();
    assert.equal((await old).version, 1);
    assert.equal((await fresh).version, 2);
    assert.equal((await r.resolve("t", "m", { kind: "alias", alias: "prod" })).version, 2);
  });

  test("failures are not cached", async () => {
    let fail = true;
    const r = new VersionResolver(async () => {
      if (fail) throw new Error("no version yet");
      return resolved(1);
    }, 60_000);
    await assert.rejects(r.resolve("t", "m", DEFAULT));
    fail = false;
    assert.equal((await r.resolve("t", "m", DEFAULT)).version, 1);
  });
});
