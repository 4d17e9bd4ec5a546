// Export to ONNX against a running API (real Postgres, tfjs) and ONNX Runtime: models trained in
// the test are fetched from GET …/export.onnx and run by a clean child process that imports only
// onnxruntime-node; on the same raw inputs (0–255 pixels, unscaled table columns) they answer what
// :predict answers, within 1e-4 relative (plus 1e-6 absolute for probabilities near zero), at
// batch 1 and 16.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { drawShape, encode, makeZip, SHAPES } from "../helpers/image-zips.ts";
import { IRIS_CSV, uploadIris } from "../helpers/training.ts";
import { trainInProcess } from "../helpers/train-in-process.ts";

const run = promisify(execFile);
const root = new URL("../..", import.meta.url).pathname;
let env: TestEnv;
let auth: Record<string, string>;
let dir: string;

// The whole client: onnxruntime-node, nothing of Trainyard's.
const CLIENT = `
const ort = require("onnxruntime-node");
const [file, feeds] = [process.argv[1], JSON.parse(process.argv[2])];
(async () => {
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
  const inputs = {};
  for (const [name, t] of Object.entries(feeds)) inputs[name] = new ort.Tensor("float32", Float32Array.from(t.data), t.shape);
  const out = await session.run(inputs);
  process.stdout.write("RESULT " + JSON.stringify({ inputNames: session.inputNames, outputNames: session.outputNames, values: Array.from(out[session.outputNames[0]].data) }) + "\\n");
})().catch((err) => { console.error(err); process.exit(1); });
`;

async function onnxFile(model: string): Promise<string> {
  const res = await env.app.inject({ url: `/v1/models/${model}/versions/1/export.onnx`, headers: auth });
  assert.equal(res.statusCode, 200, res.body);
  assert.match(res.headers["content-disposition"] as string, new RegExp(`${model}-v1\\.onnx`));
  const file = path.join(dir, `${model}.onnx`);
  await writeFile(file, res.rawPayload);
  return file;
}

async function onnxPredict(file: string, feeds: Record<string, { data: number[]; shape: number[] }>) {
  const { stdout } = await run(process.execPath, ["-e", CLIENT, file, JSON.stringify(feeds)], { cwd: root, timeout: 60_000 });
  const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
  assert.ok(line, `the client printed a result: ${stdout}`);
  return JSON.parse(line.slice(7)) as { inputNames: string[]; outputNames: string[]; values: number[] };
}

async function servicePredict(model: string, instances: unknown[]): Promise<number[]> {
  const res = await env.app.inject({ method: "POST", url: `/v1/models/${model}:predict`, headers: auth, payload: { instances } });
  assert.equal(res.statusCode, 200, res.body);
  return (res.json().predictions as unknown[]).flat(Infinity) as number[];
}

function assertClose(actual: number[], expected: number[], what: string) {
  assert.equal(actual.length, expected.length, what);
  actual.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= 1e-4 * Math.abs(expected[i]) + 1e-6, `${what}[${i}]: ONNX ${v} vs :predict ${expected[i]}`));
}

async function model(name: string, spec: object) {
  const res = await env.app.inject({ method: "POST", url: "/v1/models", headers: auth, payload: { name, spec } });
  assert.equal(res.statusCode, 201, res.body);
}


before(async () => {
  env = await createTestEnv();
  auth = await env.tenant("onnx");
  dir = await mkdtemp(path.join(tmpdir(), "trainyard-onnx-"));
  const inject = env.app.inject.bind(env.app);

  // Iris: four numeric columns, standardized inside the graph.
  const iris = await uploadIris(inject, auth);
  await model("iris", { input: { shape: [4] }, layers: [{ type: "dense", units: 8, activation: "tanh" }, { type: "batchNormalization" }, { type: "dense", units: 3, activation: "softmax" }] });
  await trainInProcess(env, auth, "iris", iris, { epochs: 2, seed: 1 });

  // A table with a category, one-hot encoded inside the graph (Embedding of unit rows, Cropping2D).
  const table = await env.app.inject({ method: "POST", url: "/v1/datasets", headers: auth, payload: { name: "table", rows: tableRows, label: "kind" } });
  assert.equal(table.statusCode, 201, table.body);
  await model("tab", { input: { shape: [5] }, layers: [{ type: "dense", units: 6, activation: "relu" }, { type: "dense", units: 2, activation: "softmax" }] });
  await trainInProcess(env, auth, "tab", table.json().id, { epochs: 2, seed: 1 });

  // Images 0–255, scaled inside the graph; convolutions, pooling, batch norm, custom layers in stock form.
  let seed = 5;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  const entries = [];
  for (const shape of SHAPES) for (let i = 0; i < 6; i++) entries.push({ name: `${shape}/${i}.png`, data: await encode(drawShape(shape, 8, random), 8, 8, 3) });
  const res = await env.app.inject({ method: "POST", url: "/v1/datasets?name=shapes", headers: { ...auth, "content-type": "application/zip" }, payload: makeZip(entries) });
  assert.equal(res.statusCode, 201, res.body);
  const shapesDataset = res.json().id;
  await model("cnn", { input: { shape: [8, 8, 3] }, layers: [
    { type: "coordConv", filters: 4, kernelSize: 3, padding: "same", activation: "relu" },
    { type: "batchNormalization" },
    { type: "conv2d", filters: 6, kernelSize: 3, strides: 2, padding: "same", activation: "elu" },
    { type: "averagePooling2d", poolSize: 2, padding: "same" },
    { type: "dropout", rate: 0.2 },
    { type: "flatten" }, { type: "dense", units: 3, activation: "softmax" }] });
  await trainInProcess(env, auth, "cnn", shapesDataset, { epochs: 1, seed: 1 });
});

after(async () => {
  await env?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const colors = ["red", "green", "blue"];
const tableRows = Array.from({ length: 30 }, (_, i) => ({ size: 10 + ((i * 7) % 13) * 3.5, weight: 1000 + ((i * 5) % 11) * 120, color: colors[i % 3], kind: `k${(i + (i % 4 === 0 ? 1 : 0)) % 2}` }));

const irisRows = IRIS_CSV.trim().split("\n").slice(1).map((line) => line.split(",").slice(0, 4).map(Number));

test("a standardized table: onnxruntime-node alone predicts what :predict does from raw rows, batch 1 and 16", async () => {
  const file = await onnxFile("iris");
  for (const n of [1, 16]) {
    const rows = irisRows.slice(0, n);
    const got = await onnxPredict(file, { input: { data: rows.flat(), shape: [n, 4] } });
    assert.deepEqual(got.inputNames, ["input"]);
    assertClose(got.values, await servicePredict("iris", rows), `iris batch ${n}`);
  }
});

test("a table with a one-hot category: each category goes in as its code, as in the TensorFlow.js export", async () => {
  const file = await onnxFile("tab");
  const meta = (await env.app.inject({ url: "/v1/models/tab/versions/1/export/model.json", headers: auth })).json();
  const [fitted] = Object.values(meta.userDefinedMetadata.preprocessing) as { columns: { name: string; categories?: string[] }[] }[];
  const names = fitted.columns.map((c) => c.name);
  const categories = fitted.columns.find((c) => c.name === "color")!.categories!;
  for (const n of [1, 16]) {
    const rows = tableRows.slice(0, n);
    const codes = rows.flatMap((r) => names.map((c) => (c === "color" ? categories.indexOf(r.color) : (r as unknown as Record<string, number>)[c])));
    const got = await onnxPredict(file, { input: { data: codes, shape: [n, names.length] } });
    assertClose(got.values, await servicePredict("tab", rows.map(({ kind: _kind, ...cells }) => cells)), `tab batch ${n}`);
  }
});

test("an image CNN (custom layers in stock form, batch norm, strides, 'same' average pooling): raw 0–255 pixels in, batch 1 and 16", async () => {
  const file = await onnxFile("cnn");
  for (const n of [1, 16]) {
    const pixels = Array.from({ length: n * 8 * 8 * 3 }, (_, i) => (i * 37 + n) % 256);
    const instances = Array.from({ length: n }, (_, k) => Array.from({ length: 8 }, (_, y) => Array.from({ length: 8 }, (_, x) => pixels.slice(k * 192 + (y * 8 + x) * 3, k * 192 + (y * 8 + x) * 3 + 3))));
    const got = await onnxPredict(file, { input: { data: pixels, shape: [n, 8, 8, 3] } });
    assertClose(got.values, await servicePredict("cnn", instances), `cnn batch ${n}`);
  }
});

test("a key is required; an unknown version is a 404 (a layer with no ONNX form: test/unit/onnx-export.test.ts)", async () => {
  assert.equal((await env.app.inject({ url: "/v1/models/iris/versions/1/export.onnx" })).statusCode, 401);
  assert.equal((await env.app.inject({ url: "/v1/models/iris/versions/7/export.onnx", headers: auth })).statusCode, 404);
});
