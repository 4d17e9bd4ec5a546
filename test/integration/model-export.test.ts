// Export in the standard TensorFlow.js format against a running API (real Postgres, tfjs): tiny
// models trained in-process are loaded by a clean child process that imports only
// @tensorflow/tfjs and calls tf.loadLayersModel(url, {requestInit: {headers}}) on the service;
// they predict what :predict answers for the same raw inputs. A custom layer that cannot travel
// is a 409 naming it; the zip holds the same files; a zip imports back as a new version.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { readZip } from "../../lib/registry/export/model-zip.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { drawShape, encode, makeZip, SHAPES } from "../helpers/image-zips.ts";
import { trainInProcess } from "../helpers/train-in-process.ts";

const run = promisify(execFile);
const root = new URL("../..", import.meta.url).pathname;
let env: TestEnv;
let auth: Record<string, string>;
let base: string;

// The whole client: stock TensorFlow.js, nothing of Trainyard's.
const CLIENT = `
import * as tf from "@tensorflow/tfjs";
const [url, authorization, inputs] = [process.argv[1], process.argv[2], JSON.parse(process.argv[3])];
const model = await tf.loadLayersModel(url, { requestInit: { headers: { authorization } } });
const xs = inputs.map((i) => tf.tensor(i.data, i.shape));
const y = model.predict(xs.length === 1 ? xs[0] : xs);
process.stdout.write("RESULT " + JSON.stringify({ inputNames: model.inputNames, values: Array.from(await y.data()) }) + "\\n");
`;

async function stockPredict(url: string, inputs: { data: number[]; shape: number[] }[]): Promise<{ inputNames: string[]; values: number[] }> {
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", CLIENT, url, auth.authorization, JSON.stringify(inputs)], { cwd: root, timeout: 60_000 });
  const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
  assert.ok(line, `the client printed a result: ${stdout}`);
  return JSON.parse(line.slice(7));
}

async function post(url: string, payload: unknown) {
  return env.app.inject({ method: "POST", url, headers: auth, payload: payload as object });
}

async function servicePredict(model: string, instances: unknown[]): Promise<number[]> {
  const res = await post(`/v1/models/${model}:predict`, { instances });
  assert.equal(res.statusCode, 200, res.body);
  return (res.json().predictions as unknown[]).flat(Infinity) as number[];
}

function assertClose(a: number[], b: number[], what: string) {
  assert.equal(a.length, b.length, what);
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) <= 1e-5, `${what}[${i}]: ${v} vs ${b[i]}`));
}

async function model(name: string, spec: object) {
  const res = await post("/v1/models", { name, spec });
  assert.equal(res.statusCode, 201, res.body);
}

const colors = ["red", "green", "blue"];
const tableRows = Array.from({ length: 30 }, (_, i) => ({ size: 10 + ((i * 7) % 13) * 3.5, weight: 1000 + ((i * 5) % 11) * 120, color: colors[i % 3], kind: `k${(i + (i % 4 === 0 ? 1 : 0)) % 2}` }));
const pairs = Array.from({ length: 24 }, (_, i) => ({ left: [i % 5, (i * 3) % 7, 100 + i], right: [(i * 2) % 3, 50 - i] }));

before(async () => {
  env = await createTestEnv();
  auth = await env.tenant("exporter");
  base = await env.app.listen({ port: 0, host: "127.0.0.1" });

  // A table with numbers on different scales and a category: standardized and one-hot.
  let res = await post("/v1/datasets", { name: "table", rows: tableRows, label: "kind" });
  assert.equal(res.statusCode, 201, res.body);
  const table = res.json().id;
  await model("tab", { input: { shape: [5] }, layers: [{ type: "dense", units: 6, activation: "relu" }, { type: "dense", units: 2, activation: "softmax" }] });
  await trainInProcess(env, auth, "tab", table, { epochs: 2, seed: 1 });

  // Images 0–255, scaled to [0, 1] by default.
  let seed = 3;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  const entries = [];
  for (const shape of SHAPES) for (let i = 0; i < 4; i++) entries.push({ name: `${shape}/${i}.png`, data: await encode(drawShape(shape, 8, random), 8, 8, 3) });
  res = await env.app.inject({ method: "POST", url: "/v1/datasets?name=shapes", headers: { ...auth, "content-type": "application/zip" }, payload: makeZip(entries) });
  assert.equal(res.statusCode, 201, res.body);
  const shapes = res.json().id;
  // With custom layers that travel as stock ones: coordinate channels, a dilated conv, spatial dropout, adaptive pooling.
  await model("cnn", { input: { shape: [8, 8, 3] }, layers: [
    { type: "coordConv", filters: 4, kernelSize: 3, padding: "same", activation: "relu" },
    { type: "conv2d", filters: 4, kernelSize: 3, dilationRate: 2, padding: "same", activation: "relu" },
    { type: "spatialDropout", rate: 0.1 },
    { type: "maxPooling2d", poolSize: 2 }, { type: "adaptiveAveragePooling2d", outputSize: 2 },
    { type: "flatten" }, { type: "dense", units: 3, activation: "softmax" }] });
  await trainInProcess(env, auth, "cnn", shapes, { epochs: 1, seed: 1 });

  // Two inputs, each standardized: a graph; and the same data through a distance, which cannot travel.
  res = await post("/v1/datasets", { name: "pairs", inputs: { left: pairs.map((p) => p.left), right: pairs.map((p) => p.right) }, labels: pairs.map((_, i) => i % 2) , task: "classification" });
  assert.equal(res.statusCode, 201, res.body);
  const pairData = res.json().id;
  await model("pair", { inputs: { left: { shape: [3] }, right: { shape: [2] } }, nodes: {
    both: { type: "concatenate", inputs: ["left", "right"] },
    hidden: { type: "dense", units: 4, activation: "tanh", inputs: ["both"] },
    out: { type: "dense", units: 2, activation: "softmax", inputs: ["hidden"] } }, outputs: ["out"] });
  await trainInProcess(env, auth, "pair", pairData, { epochs: 2, seed: 1 });
  await model("siamese", { inputs: { left: { shape: [3] }, right: { shape: [2] } }, nodes: {
    encLeft: { type: "dense", units: 4, inputs: ["left"] },
    encRight: { type: "dense", units: 4, inputs: ["right"] },
    gap: { type: "distance", metric: "euclidean", inputs: ["encLeft", "encRight"] },
    out: { type: "dense", units: 2, activation: "softmax", inputs: ["gap"] } }, outputs: ["out"] });
  await trainInProcess(env, auth, "siamese", pairData, { epochs: 1, seed: 1 });
});

after(async () => {
  await env?.close();
});

test("a tabular model: stock tfjs loads it over HTTP and predicts what :predict does from the raw row (categories as codes)", async () => {
  const json = (await env.app.inject({ url: "/v1/models/tab/versions/1/export/model.json", headers: auth })).json();
  const [fitted] = Object.values(json.userDefinedMetadata.preprocessing) as { columns: { name: string; categories?: string[] }[] }[];
  const categories = fitted.columns.find((c) => c.name === "color")!.categories!;
  const names = fitted.columns.map((c) => c.name);
  const rows = tableRows.slice(0, 5);
  const codes = rows.flatMap((r) => names.map((n) => (n === "color" ? categories.indexOf(r.color) : (r as unknown as Record<string, number>)[n])));
  const stock = await stockPredict(`${base}/v1/models/tab/versions/1/export/model.json`, [{ data: codes, shape: [rows.length, names.length] }]);
  const served = await servicePredict("tab", rows.map(({ kind: _kind, ...cells }) => cells));
  assertClose(stock.values, served, "tab");
});

test("an image CNN with custom layers: scaling and the custom layers travel as stock layers; raw 0–255 pixels in", async () => {
  const pixels = Array.from({ length: 2 * 8 * 8 * 3 }, (_, i) => (i * 37) % 256);
  const instances = [0, 1].map((k) => Array.from({ length: 8 }, (_, y) => Array.from({ length: 8 }, (_, x) => pixels.slice(k * 192 + (y * 8 + x) * 3, k * 192 + (y * 8 + x) * 3 + 3))));
  const json = JSON.stringify((await env.app.inject({ url: "/v1/models/cnn/versions/1/export/model.json", headers: auth })).json().modelTopology);
  assert.ok(!json.includes("Trainyard"), "only stock layer classes");
  const stock = await stockPredict(`${base}/v1/models/cnn/versions/1/export/model.json`, [{ data: pixels, shape: [2, 8, 8, 3] }]);
  assertClose(stock.values, await servicePredict("cnn", instances), "cnn");
});

test("a two-input graph keeps its input names and order; a distance layer is a 409 naming it", async () => {
  const sample = pairs.slice(0, 4);
  const stock = await stockPredict(`${base}/v1/models/pair/versions/1/export/model.json`, [
    { data: sample.flatMap((p) => p.left), shape: [4, 3] }, { data: sample.flatMap((p) => p.right), shape: [4, 2] }]);
  assert.deepEqual(stock.inputNames, ["left", "right"]);
  assertClose(stock.values, await servicePredict("pair", sample), "pair");

  for (const url of ["/v1/models/siamese/versions/1/export/model.json", "/v1/models/siamese/versions/1/export.zip"]) {
    const res = await env.app.inject({ url, headers: auth });
    assert.equal(res.statusCode, 409, res.body);
    assert.match(res.json().detail, /layer 'gap' \(TrainyardDistance\) cannot be exported/);
  }
  assert.equal((await env.app.inject({ url: "/v1/models/pair/versions/1/export/model.json" })).statusCode, 401, "the bearer key is required");
  assert.equal((await env.app.inject({ url: "/v1/models/pair/versions/9/export/model.json", headers: auth })).statusCode, 404);
  assert.equal((await env.app.inject({ url: "/v1/models/pair/versions/1/export/group1-shard7of9.bin", headers: auth })).statusCode, 404);
});

test("export.zip holds model.json, its shards and signature.json, byte for byte what the URLs serve", async () => {
  const res = await env.app.inject({ url: "/v1/models/pair/versions/1/export.zip", headers: auth });
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers["content-type"], "application/zip");
  const files = await readZip(res.rawPayload, 64 * 1024 * 1024);
  const json = (await env.app.inject({ url: "/v1/models/pair/versions/1/export/model.json", headers: auth })).json();
  assert.deepEqual([...files.keys()].sort(), ["group1-shard1of1.bin", "model.json", "signature.json"]);
  assert.deepEqual(JSON.parse(files.get("model.json")!.toString()), json);
  const shard = await env.app.inject({ url: "/v1/models/pair/versions/1/export/group1-shard1of1.bin", headers: auth });
  assert.ok(shard.rawPayload.equals(files.get("group1-shard1of1.bin")!));
  assert.deepEqual(JSON.parse(files.get("signature.json")!.toString()).inputs, [{ name: "left", shape: [3] }, { name: "right", shape: [2] }]);
});

test("import: a zip whose inputs do not fit the spec is a 400 naming them; export.zip back as a new version predicts identically", async () => {
  // The table's export takes 3 raw columns; the spec's input is the 5 encoded ones.
  const tabZip = (await env.app.inject({ url: "/v1/models/tab/versions/1/export.zip", headers: auth })).rawPayload;
  const bad = await env.app.inject({ method: "POST", url: "/v1/models/tab/versions:import", headers: { ...auth, "content-type": "application/zip" }, payload: tabZip });
  assert.equal(bad.statusCode, 400, bad.body);
  assert.match(bad.json().detail, /inputs\[0\] \(\w+\).*has shape \[3\]; input '\w+' of model 'tab' is \[5\]/);
  const notZip = await env.app.inject({ method: "POST", url: "/v1/models/pair/versions:import", headers: { ...auth, "content-type": "application/zip" }, payload: Buffer.from("not a zip") });
  assert.equal(notZip.statusCode, 400, notZip.body);

  const zip = (await env.app.inject({ url: "/v1/models/pair/versions/1/export.zip", headers: auth })).rawPayload;
  const sample = pairs.slice(4, 9);
  const before = await servicePredict("pair", sample);
  const res = await env.app.inject({ method: "POST", url: "/v1/models/pair/versions:import", headers: { ...auth, "content-type": "application/zip" }, payload: zip });
  assert.equal(res.statusCode, 201, res.body);
  assert.equal(res.json().version, 2);
  const predicted = await post("/v1/models/pair/versions/2:predict", { instances: sample });
  assert.equal(predicted.statusCode, 200, predicted.body);
  assertClose((predicted.json().predictions as unknown[]).flat(Infinity) as number[], before, "imported");
});
