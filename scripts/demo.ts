// `npm run demo`: against a running Trainyard (npm start), upload the Iris data set shipped in
// data/, train a small network on it, print the accuracy of every epoch and a few predictions.
//   TRAINYARD_URL   (default http://localhost:8080)
//   TRAINYARD_API_KEY, or TRAINYARD_ADMIN_KEY (read from .env) to create a tenant key for the demo
import { readFileSync } from "node:fs";
import dotenv from "dotenv";

dotenv.config({ path: new URL("../.env", import.meta.url), quiet: true });
const base = (process.env.TRAINYARD_URL ?? "http://localhost:8080").replace(/\/$/, "");

async function call(method: string, path: string, key: string | undefined, body?: unknown, contentType = "application/json") {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { "content-type": contentType } : {}) },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path} → ${res.status}: ${json.detail ?? JSON.stringify(json)}`);
  return json;
}

let key = process.env.TRAINYARD_API_KEY;
if (!key) {
  if (!process.env.TRAINYARD_ADMIN_KEY) throw new Error("set TRAINYARD_API_KEY, or TRAINYARD_ADMIN_KEY (npm start writes it to .env)");
  key = (await call("POST", "/v1/api-keys", process.env.TRAINYARD_ADMIN_KEY, { tenant: "demo", name: "npm run demo" })).key as string;
}

const info = await call("GET", "/v1/info", undefined);
console.log(`Trainyard ${info.version} at ${base}, compute backend: ${info.backend.name}`);

const csv = readFileSync(new URL("../data/iris.csv", import.meta.url), "utf8");
const dataset = await call("POST", "/v1/datasets?name=iris&label=species", key, csv, "text/csv");
console.log(`dataset ${dataset.id}: ${dataset.rows} rows, input ${JSON.stringify(dataset.inputShape)}, classes ${dataset.classes.join(", ")}`);

const name = `iris-demo-${Date.now()}`;
const spec = {
  input: { shape: [4] },
  layers: [{ type: "dense", units: 16, activation: "relu" }, { type: "dropout", rate: 0.1 }, { type: "dense", units: 3, activation: "softmax" }],
};
const model = await call("POST", "/v1/models", key, { name, spec });
console.log(`model ${model.name}: ${model.paramCount} parameters, output ${JSON.stringify(model.outputShape)}`);

let job = await call("POST", "/v1/training-jobs", key, {
  model: name, dataset: dataset.id, epochs: 40, batchSize: 16, optimizer: { type: "adam", learningRate: 0.02 }, validationSplit: 0.2, seed: 42,
});
console.log(`training job ${job.id} queued\n\nepoch  loss    accuracy  val_loss  val_accuracy`);
let shown = 0;
const started = Date.now();
while (!["succeeded", "failed", "cancelled"].includes(job.status)) {
  await new Promise((r) => setTimeout(r, 250));
  job = await call("GET", `/v1/training-jobs/${job.id}`, key);
  if (job.progress.epoch > shown) {
    const { epochs } = await call("GET", `/v1/training-jobs/${job.id}/metrics`, key);
    for (const { epoch, metrics: m } of epochs.filter((e: { epoch: number }) => e.epoch > shown)) {
      console.log(`${String(epoch).padStart(5)}  ${m.loss.toFixed(4)}  ${m.accuracy.toFixed(4)}    ${m.val_loss.toFixed(4)}    ${m.val_accuracy.toFixed(4)}`);
    }
    shown = job.progress.epoch;
  }
  if (Date.now() - started > 300_000) throw new Error("training did not finish within 5 minutes; is a worker running?");
}
if (job.status !== "succeeded") throw new Error(`training ${job.status}: ${job.error ?? ""}`);
console.log(`\n${job.status}: validation accuracy ${job.metrics.val_accuracy.toFixed(3)} (model version ${job.modelVersion})\n`);

const rows = csv.trim().split("\n").slice(1);
const samples = [0, 60, 120, 25, 85, 140].map((i) => rows[i].split(","));
const { predictions } = await call("POST", `/v1/models/${name}:predict`, key, { instances: samples.map((r) => r.slice(0, 4).map(Number)) });
console.log("features              true        predicted   probability");
samples.forEach((r, i) => {
  const p: number[] = predictions[i];
  const best = p.indexOf(Math.max(...p));
  console.log(`${r.slice(0, 4).join(" ").padEnd(20)}  ${r[4].padEnd(10)}  ${dataset.classes[best].padEnd(10)}  ${p[best].toFixed(3)}`);
});
if (job.metrics.val_accuracy < 0.9) {
  console.error("validation accuracy is below 0.9");
  process.exit(1);
}
