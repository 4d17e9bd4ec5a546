// Both inference protocols end to end, with the request and response shapes of their own
// documents: TensorFlow Serving's REST API (g3doc/api_rest.md: row and columnar predict, model
// status, metadata) and the Open Inference Protocol (KServe V2, inference_rest.md: server and
// model metadata, health, infer with typed tensors). The multi-input model takes the documents'
// own "signal" and "sensor" example inputs.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { buildApp } from "../../services/app.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { createModel, uploadIris } from "../helpers/training.ts";
import { trainInProcess } from "../helpers/train-in-process.ts";

let env: TestEnv;
let auth: { authorization: string };
const IRIS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]];
let irisPredictions: number[][];

const post = (url: string, payload: object, headers: Record<string, string> = auth) => env.app.inject({ method: "POST", url, headers, payload });
const get = (url: string, headers: Record<string, string> = auth) => env.app.inject({ method: "GET", url, headers });
const close = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => Math.abs(x - b[i]) < 1e-5);

before(async () => {
  env = await createTestEnv();
  auth = await env.tenant("acme");
  const inject = env.app.inject.bind(env.app);
  const iris = await uploadIris(inject, auth);
  await createModel(inject, auth, "iris");
  await trainInProcess(env, auth, "iris", iris, { epochs: 1, batchSize: 32, seed: 1 });
  await trainInProcess(env, auth, "iris", iris, { epochs: 1, batchSize: 32, seed: 2 });

  // Two named inputs and two named outputs (a class and a number).
  const rows = Array.from({ length: 12 }, (_, i) => ({ signal: [i, i + 1, i % 3, 2, 5], sensor: [[i, 1], [2, i % 4]], kind: i % 2 ? "high" : "low", level: i / 4 }));
  const ds = await post("/v1/datasets", { name: "sensors", inputs: { signal: rows.map((r) => r.signal), sensor: rows.map((r) => r.sensor) }, outputs: { kind: rows.map((r) => r.kind), level: rows.map((r) => r.level) } });
  assert.equal(ds.statusCode, 201, ds.body);
  await createModel(inject, auth, "sensors", {
    inputs: { signal: { shape: [5] }, sensor: { shape: [2, 2] } },
    nodes: {
      flat: { type: "flatten", inputs: ["sensor"] },
      both: { type: "concatenate", inputs: ["signal", "flat"] },
      hidden: { type: "dense", units: 8, activation: "relu", inputs: ["both"] },
      kind: { type: "dense", units: 2, activation: "softmax", inputs: ["hidden"] },
      level: { type: "dense", units: 1, inputs: ["hidden"] },
    },
    outputs: ["kind", "level"],
  });
  await trainInProcess(env, auth, "sensors", ds.json().id, { epochs: 1, batchSize: 4 });

  const res = await post("/v1/models/iris:predict", { instances: IRIS });
  assert.equal(res.statusCode, 200, res.body);
  irisPredictions = res.json().predictions;
});
after(async () => env?.close());

describe("TensorFlow Serving REST", () => {
  test("row format: instances → predictions; the version only in the header", async () => {
    const res = await post("/v1/models/iris/versions/1:predict", { signature_name: "serving_default", instances: IRIS });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers["x-trainyard-model-version"], "1");
    assert.deepEqual(Object.keys(res.json()), ["predictions"]);
    assert.equal(res.json().predictions.length, 2);
    assert.equal(res.json().predictions[0].length, 3);
  });

  test("columnar format: inputs → outputs, the same numbers as the row format", async () => {
    const res = await post("/v1/models/iris:predict", { inputs: IRIS });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(Object.keys(res.json()), ["outputs"]);
    res.json().outputs.forEach((o: number[], i: number) => assert.ok(close(o, irisPredictions[i])));
    const both = await post("/v1/models/iris:predict", { instances: IRIS, inputs: IRIS });
    assert.equal(both.statusCode, 400);
  });

  test("the document's named inputs, row and columnar; several outputs as objects by name", async () => {
    const row = await post("/v1/models/sensors:predict", {
      instances: [
        { signal: [1, 2, 3, 4, 5], sensor: [[1, 2], [3, 4]] },
        { signal: [3, 4, 1, 2, 5], sensor: [[4, 5], [6, 8]] },
      ],
    });
    assert.equal(row.statusCode, 200, row.body);
    const predictions = row.json().predictions;
    assert.deepEqual(Object.keys(predictions[0]), ["kind", "level"]);
    assert.equal(predictions[0].kind.length, 2);
    assert.equal(predictions[0].level.length, 1);
    const col = await post("/v1/models/sensors:predict", {
      inputs: { signal: [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]], sensor: [[[1, 2], [3, 4]], [[4, 5], [6, 8]]] },
    });
    assert.equal(col.statusCode, 200, col.body);
    const outputs = col.json().outputs;
    assert.deepEqual(Object.keys(outputs), ["kind", "level"]);
    assert.ok(close(outputs.kind[1], predictions[1].kind) && close(outputs.level[0], predictions[0].level));
  });

  test("model status and metadata, by model, version and label", async () => {
    const status = await get("/v1/models/iris");
    assert.equal(status.statusCode, 200);
    assert.deepEqual(status.json().model_version_status, [
      { version: "2", state: "AVAILABLE", status: { error_code: "OK", error_message: "" } },
      { version: "1", state: "AVAILABLE", status: { error_code: "OK", error_message: "" } },
    ]);
    assert.equal(status.json().name, "iris", "Trainyard's model view is still there");
    await env.app.inject({ method: "PUT", url: "/v1/models/iris/aliases/stable", headers: auth, payload: { version: 1 } });
    assert.deepEqual((await get("/v1/models/iris/labels/stable")).json().model_version_status.map((s: { version: string }) => s.version), ["1"]);
    const meta = (await get("/v1/models/iris/labels/stable/metadata")).json();
    assert.deepEqual(meta.model_spec, { name: "iris", signature_name: "", version: "1" });
    const sig = meta.metadata.signature_def.signature_def.serving_default;
    assert.equal(sig.method_name, "tensorflow/serving/predict");
    assert.deepEqual(sig.inputs.input.tensor_shape.dim.map((d: { size: string }) => d.size), ["-1", "4"]);
    assert.equal(sig.inputs.input.dtype, "DT_FLOAT");
    assert.deepEqual(sig.outputs.output.tensor_shape.dim.map((d: { size: string }) => d.size), ["-1", "3"]);
    assert.equal((await get("/v1/models/iris/metadata")).json().model_spec.version, "2");
    assert.equal((await get("/v1/models/iris/versions/1/metadata")).json().model_spec.version, "1");
  });

  test("a shape or name error is a 400 naming the input and its expected shape", async () => {
    const shape = await post("/v1/models/sensors:predict", { instances: [{ signal: [1, 2, 3, 4, 5], sensor: [[1, 2]] }] });
    assert.equal(shape.statusCode, 400);
    assert.match(shape.json().detail, /instances\[0\]\.sensor.*input 'sensor' takes shape \[2, 2\] per instance/);
    // A table-like input names its columns.
    const columns = await post("/v1/models/sensors:predict", { instances: [{ signal: [1, 2, 3], sensor: [[1, 2], [3, 4]] }] });
    assert.match(columns.json().detail, /instances\[0\]\.signal: expected 5 values .*got 3; input 'signal' takes \[5\] values per instance/);
    const name = await post("/v1/models/sensors:predict", { inputs: { signal: [[1, 2, 3, 4, 5]], sensr: [[[1, 2], [3, 4]]] } });
    assert.equal(name.statusCode, 400);
    assert.match(name.json().detail, /inputs\.sensr: is not an input of the model \(its inputs: sensor, signal\)/);
    const iris = await post("/v1/models/iris:predict", { instances: [[1, 2, 3]] });
    assert.match(iris.json().detail, /instances\[0\].*input 'input' takes \[4\] values per instance/);
  });

  test("?topK=2: the best classes with labels and probabilities", async () => {
    const res = await post("/v1/models/iris:predict?topK=2", { instances: IRIS });
    assert.equal(res.statusCode, 200, res.body);
    const top = res.json().top_k;
    assert.equal(top.length, 2);
    assert.equal(top[0].length, 2);
    const best = irisPredictions[0].indexOf(Math.max(...irisPredictions[0]));
    assert.equal(top[0][0].label, ["setosa", "versicolor", "virginica"][best]);
    assert.ok(Math.abs(top[0][0].probability - irisPredictions[0][best]) < 1e-6);
    assert.ok(top[0][0].probability >= top[0][1].probability);
    const sensors = await post("/v1/models/sensors:predict?topK=1", { inputs: { signal: [[1, 2, 3, 4, 5]], sensor: [[[1, 2], [3, 4]]] } });
    assert.deepEqual(Object.keys(sensors.json().top_k), ["kind"], "only the classification output");
    assert.ok(["high", "low"].includes(sensors.json().top_k.kind[0][0].label));
  });
});

describe("Open Inference Protocol (KServe V2)", () => {
  test("server metadata, liveness and readiness", async () => {
    const meta = await get("/v2", {});
    assert.equal(meta.statusCode, 200);
    assert.equal(meta.json().name, "trainyard");
    assert.deepEqual(meta.json().extensions, []);
    assert.deepEqual((await get("/v2/health/live", {})).json(), { live: true });
    const ready = await get("/v2/health/ready", {});
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(ready.json(), { ready: true });
  });

  test("model metadata and readiness, by model and by version", async () => {
    const meta = await get("/v2/models/sensors");
    assert.equal(meta.statusCode, 200, meta.body);
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    assert.deepEqual({ ...(meta.json() as object), inputs: meta.json().inputs.sort(byName) }, {
      name: "sensors", versions: ["1"], platform: "onnxruntime_onnx", // its ONNX export passed the check: ONNX Runtime serves it
      inputs: [{ name: "sensor", datatype: "FP32", shape: [-1, 2, 2] }, { name: "signal", datatype: "FP32", shape: [-1, 5] }],
      outputs: [{ name: "kind", datatype: "FP32", shape: [-1, 2] }, { name: "level", datatype: "FP32", shape: [-1, 1] }],
    });
    assert.deepEqual((await get("/v2/models/iris/versions/1")).json().versions, ["2", "1"]);
    assert.deepEqual((await get("/v2/models/iris/ready")).json(), { name: "iris", ready: true });
    assert.deepEqual((await get("/v2/models/iris/versions/2/ready")).json(), { name: "iris", ready: true });
    const unknown = await get("/v2/models/nope/ready");
    assert.equal(unknown.statusCode, 404);
    assert.match(unknown.json().error, /model 'nope' was not found/);
  });

  test("the document's inference example: id echoed, outputs selected, typed tensors flat or nested", async () => {
    const res = await post("/v2/models/sensors/infer", {
      id: "42",
      inputs: [
        { name: "signal", shape: [2, 5], datatype: "INT32", data: [1, 2, 3, 4, 5, 3, 4, 1, 2, 5] },
        { name: "sensor", shape: [2, 2, 2], datatype: "FP32", data: [[[1, 2], [3, 4]], [[4, 5], [6, 8]]] },
      ],
      outputs: [{ name: "kind" }],
    });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.equal(body.id, "42");
    assert.equal(body.model_name, "sensors");
    assert.equal(body.model_version, "1");
    assert.equal(res.headers["x-trainyard-model-version"], "1");
    assert.equal(body.outputs.length, 1);
    const { data, ...rest } = body.outputs[0] as { data: number[] };
    assert.deepEqual(rest, { name: "kind", shape: [2, 2], datatype: "FP32" });
    assert.equal(data.length, 4);
    const tf = (await post("/v1/models/sensors:predict", { instances: [{ signal: [1, 2, 3, 4, 5], sensor: [[1, 2], [3, 4]] }, { signal: [3, 4, 1, 2, 5], sensor: [[4, 5], [6, 8]] }] })).json();
    assert.ok(close(body.outputs[0].data, [...tf.predictions[0].kind, ...tf.predictions[1].kind]), "the same numbers as TF Serving's format");
    const all = (await post("/v2/models/sensors/infer", { inputs: [
      { name: "signal", shape: [1, 5], datatype: "FP64", data: [[1, 2, 3, 4, 5]] },
      { name: "sensor", shape: [1, 2, 2], datatype: "UINT8", data: [1, 2, 3, 4] },
    ] })).json();
    assert.deepEqual(all.outputs.map((o: { name: string; shape: number[] }) => [o.name, o.shape]), [["kind", [1, 2]], ["level", [1, 1]]]);
    assert.equal(all.id, undefined, "no id given, none returned");
  });

  test("a version or an alias in the path; top-k", async () => {
    const input = { name: "input", shape: [2, 4], datatype: "FP32", data: IRIS.flat() };
    const v1 = await post("/v2/models/iris/versions/1/infer", { inputs: [input] });
    assert.equal(v1.json().model_version, "1");
    const byAlias = await post("/v2/models/iris/versions/stable/infer?topK=1", { inputs: [input] });
    assert.equal(byAlias.statusCode, 200, byAlias.body);
    assert.equal(byAlias.json().model_version, "1");
    assert.deepEqual(byAlias.json().outputs[0].data, v1.json().outputs[0].data);
    assert.equal(byAlias.json().top_k.length, 2);
    assert.equal(byAlias.json().top_k[0].length, 1);
    const latest = await post("/v2/models/iris/infer", { inputs: [input] });
    assert.equal(latest.json().model_version, "2");
    assert.ok(close(latest.json().outputs[0].data, irisPredictions.flat()));
  });

  test("errors are {\"error\": ...}: shape, datatype, name, bad JSON, unknown model, no key", async () => {
    const cases: [object, RegExp][] = [
      [{ inputs: [{ name: "input", shape: [2, 3], datatype: "FP32", data: [1, 2, 3, 4, 5, 6] }] }, /inputs\[0\]\.shape: \[2, 3\] does not fit input 'input': expected \[batch, 4\]/],
      [{ inputs: [{ name: "input", shape: [1, 4], datatype: "BYTES", data: ["a", "b", "c", "d"] }] }, /'BYTES' is not supported for input 'input'/],
      [{ inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] }] }, /'x' is not an input of the model \(its inputs: 'input' \[-1, 4\]\)/],
      [{ inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [1, 2, 3] }] }, /inputs\[0\]\.data.*input 'input'.*shape \[batch, 4\]/],
      [{ inputs: [{ name: "input", shape: [1, 4], datatype: "INT32", data: [1, 2.5, 3, 4] }] }, /inputs\[0\]\.data\[1\]: expected a INT32 number/],
      [{ inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] }], outputs: [{ name: "probs" }] }, /outputs\[0\]\.name: 'probs' is not an output/],
      [{ instances: [[1, 2, 3, 4]] }, /inputs/],
    ];
    for (const [payload, message] of cases) {
      const res = await post("/v2/models/iris/infer", payload);
      assert.equal(res.statusCode, 400, res.body);
      assert.deepEqual(Object.keys(res.json()), ["error"], res.body);
      assert.match(res.json().error, message);
    }
    const badJson = await env.app.inject({ method: "POST", url: "/v2/models/iris/infer", headers: { ...auth, "content-type": "application/json" }, payload: "{" });
    assert.equal(badJson.statusCode, 400);
    assert.equal(typeof badJson.json().error, "string");
    const unknown = await post("/v2/models/nope/infer", { inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] }] });
    assert.equal(unknown.statusCode, 404);
    assert.equal(typeof unknown.json().error, "string");
    const noKey = await post("/v2/models/iris/infer", { inputs: [] }, {});
    assert.equal(noKey.statusCode, 401);
    assert.deepEqual(Object.keys(noKey.json()), ["error"]);
    const noRoute = await get("/v2/models/iris/nothing");
    assert.equal(noRoute.statusCode, 404);
    assert.equal(typeof noRoute.json().error, "string");
    // /v1 keeps problem+json.
    assert.match((await post("/v1/models/iris:predict", { instances: [[1]] })).headers["content-type"] as string, /problem\+json/);
  });
});

describe("overload", () => {
  test("a replica whose inference queue is full answers 503 with Retry-After at once, on both protocols", async () => {
    // A second replica on the same database, with a queue of two rows and no batching.
    const app = await buildApp({ ...env.config, TRAINYARD_INFERENCE_QUEUE_MAX_ROWS: 2, TRAINYARD_BATCH_MAX_DELAY_MS: 0 });
    try {
      await app.ready();
      const v1 = Array.from({ length: 30 }, () => app.inject({ method: "POST", url: "/v1/models/iris:predict", headers: auth, payload: { instances: [IRIS[0]] } }));
      const v2 = Array.from({ length: 30 }, () => app.inject({ method: "POST", url: "/v2/models/iris/infer", headers: auth, payload: { inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: IRIS[0] }] } }));
      const answers = await Promise.all([...v1, ...v2]);
      const refused = answers.filter((r) => r.statusCode === 503);
      assert.ok(refused.length > 0, `statuses ${answers.map((r) => r.statusCode).join(",")}`);
      assert.ok(answers.every((r) => r.statusCode === 200 || r.statusCode === 503), `statuses ${answers.map((r) => r.statusCode).join(",")}`);
      for (const r of refused) {
        assert.equal(r.headers["retry-after"], "1");
        assert.match(r.body, /TRAINYARD_INFERENCE_QUEUE_MAX_ROWS/);
      }
      assert.ok(answers.slice(30).some((r) => r.statusCode === 503 && typeof r.json().error === "string"), "V2 refusals are {\"error\"} bodies");
      assert.ok(answers.some((r) => r.statusCode === 200), "what the queue took is answered");
    } finally {
      await app.close();
    }
  });
});
