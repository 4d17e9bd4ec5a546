// End to end, as a user runs it: the real API process and a real worker process (the same entry
// files `npm start` runs), over HTTP. Upload Iris, train, reach >= 0.9 validation accuracy,
// predict — then the demo script and the README's curl walk-through, against the same service.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { cleanRedis, REDIS_URL } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { freePort, startProcess, type Proc } from "../helpers/processes.ts";
import { IRIS_CSV, IRIS_SPEC } from "../helpers/training.ts";

let db: TestDatabase;
let api: Proc;
let worker: Proc;
let base: string;
const adminKey = randomBytes(32).toString("hex");
const prefix = `tye2e-${randomBytes(4).toString("hex")}`;

before(async () => {
  db = await createTestDatabase();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const env = { DATABASE_URL: db.url, REDIS_URL, TRAINYARD_QUEUE_PREFIX: prefix, TRAINYARD_ADMIN_KEY: adminKey, PORT: String(port), HOST: "127.0.0.1" };
  api = startProcess("services/server.ts", env);
  worker = startProcess("workers/worker.ts", env);
  await Promise.all([api.waitFor(/Trainyard API on/), worker.waitFor(/consuming 'training'/)]);
});
after(async () => {
  await Promise.all([api?.stop(), worker?.stop()]);
  await cleanRedis(prefix);
  await db?.drop();
});

async function call(method: string, path: string, key?: string, body?: unknown, contentType = "application/json") {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { "content-type": contentType } : {}) },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

test("upload Iris, train to >= 0.9 validation accuracy, predict — over HTTP between real processes", async () => {
  const info = await call("GET", "/v1/info");
  assert.equal(info.status, 200);
  const key = (await call("POST", "/v1/api-keys", adminKey, { tenant: "e2e" })).body.key;
  const ds = await call("POST", "/v1/datasets?name=iris&label=species", key, IRIS_CSV, "text/csv");
  assert.equal(ds.status, 201);
  assert.equal((await call("POST", "/v1/models", key, { name: "iris", spec: IRIS_SPEC })).status, 201);
  const created = await call("POST", "/v1/training-jobs", key, { model: "iris", dataset: ds.body.id, epochs: 40, batchSize: 16, optimizer: { type: "adam", learningRate: 0.02 }, seed: 11 });
  assert.equal(created.status, 202);
  assert.equal(created.headers.get("location"), `/v1/training-jobs/${created.body.id}`);

  let job = created.body;
  const deadline = Date.now() + 120_000;
  while (!["succeeded", "failed", "cancelled"].includes(job.status) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    job = (await call("GET", `/v1/training-jobs/${job.id}`, key)).body;
  }
  assert.equal(job.status, "succeeded", JSON.stringify(job));
  assert.ok(job.metrics.val_accuracy >= 0.9, `val_accuracy ${job.metrics.val_accuracy}`);

  const pred = await call("POST", "/v1/models/iris:predict", key, { instances: [[5.0, 3.4, 1.5, 0.2], [5.9, 3.0, 5.1, 1.8]] });
  assert.equal(pred.status, 200);
  const argmax = (p: number[]) => p.indexOf(Math.max(...p));
  assert.deepEqual(pred.body.predictions.map(argmax), [0, 2]);
});

test("npm run demo trains Iris to >= 0.9 against the running service", () => {
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const r = spawnSync(process.execPath, ["--import", "tsx", "scripts/demo.ts"], {
    cwd: root, encoding: "utf8", timeout: 180_000,
    env: { ...process.env, TRAINYARD_URL: base, TRAINYARD_ADMIN_KEY: adminKey },
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /succeeded: validation accuracy (0\.9\d*|1\.000)/);
  assert.match(r.stdout, /^\s+40\s+\d/m, "prints every epoch up to 40");
});

test("the README's curl walk-through runs as written", () => {
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const readme = readFileSync(`${root}README.md`, "utf8");
  const block = /<!-- walkthrough:start -->\s*```bash\n([\s\S]*?)```\s*<!-- walkthrough:end -->/.exec(readme)?.[1];
  assert.ok(block, "README has the walk-through block");
  const r = spawnSync("bash", ["-euo", "pipefail", "-c", block], {
    cwd: root, encoding: "utf8", timeout: 180_000,
    env: { ...process.env, TRAINYARD: base, ADMIN_KEY: adminKey },
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines[0], { rows: 150, inputShape: [4], classes: ["setosa", "versicolor", "virginica"] });
  assert.deepEqual(lines[1], { name: "iris-mlp", paramCount: 131, outputShape: [3] });
  assert.equal(lines[2].status, "succeeded");
  assert.ok(lines[2].metrics.val_accuracy >= 0.9);
  assert.equal(lines[3].epoch, 40);
  assert.equal(lines[4].predictions.length, 2);
  assert.deepEqual(lines[5], { runtime: "onnx", onnx: "passed" });
  assert.deepEqual(lines[6], { status: 400, detail: "spec.layers[0].rate: must be < 1" });
});
