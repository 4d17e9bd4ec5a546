// Insight jobs (issue 12) against the real Postgres, Redis, BullMQ and worker processes, on models
// trained in the test:
// - FGSM over a dataset's validation split (the rows the version never trained on): accuracy falls
//   as ε grows; a targeted PGD attack reaches its class;
// - the rows that excite a unit most, checked against the unit's activation answered directly;
// - t-SNE separates well-separated clusters through the service;
// - cancel (queued and running), bad requests as 400s naming the field, a worker killed mid-job
//   (the job is run again by another and succeeds), a job the queue lost (the reconciler).
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import sharp from "sharp";
import { Redis } from "ioredis";
import { createInsightQueue, createTrainingQueue } from "../../lib/queue/queues.ts";
import { seededRandom } from "../../lib/random/seeded-random.ts";
import { JobReconciler } from "../../lib/training/job-reconciler.ts";
import { createTrainingWorker, insightJobsOf, type TrainingWorker } from "../../workers/training-worker.ts";
import { createTestEnv, REDIS_URL, type TestEnv } from "../helpers/app.ts";
import { npy, npz } from "../helpers/numpy.ts";
import { createModel } from "../helpers/training.ts";
import { trainInProcess } from "../helpers/train-in-process.ts";
import { envOf, WorkerProcess } from "../helpers/worker-control.ts";

let env: TestEnv;
let auth: Record<string, string>;
let worker: TrainingWorker | undefined;
let mnistId: string;
let clustersId: string;
/** Digits that fit the digits model but did not train it. */
let otherDigitsId: string;

const CLUSTERS = 3;
const PER_CLUSTER = 120;
const DIMS = 8;

function keep(name: string, png: Buffer): void {
  const dir = process.env.TRAINYARD_PICTURES_DIR;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, name), png);
}

const post = (url: string, payload: object) => env.app.inject({ method: "POST", url, headers: auth, payload });
const get = (url: string) => env.app.inject({ url, headers: auth });

async function waitFor(id: string, done: (j: any) => boolean = (j) => ["succeeded", "failed", "cancelled"].includes(j.status), timeoutMs = 120_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  let job: any;
  while (Date.now() < deadline) {
    job = (await get(`/v1/insight-jobs/${id}`)).json();
    if (done(job)) return job;
    await sleep(100);
  }
  throw new Error(`insight job ${id} did not reach the expected state in ${timeoutMs} ms; last: ${JSON.stringify(job)}`);
}

async function started(url: string, payload: object): Promise<any> {
  const res = await post(url, payload);
  assert.equal(res.statusCode, 202, res.body);
  assert.equal(res.headers.location, `/v1/insight-jobs/${res.json().id}`);
  return res.json();
}

before(async () => {
  // Short retry delays: a killed attempt is retried within the test's patience.
  env = await createTestEnv({ TRAINYARD_RETRY_DELAY_MS: "200", TRAINYARD_RECONCILE_INTERVAL_MS: "600000" });
  auth = await env.tenant();
  const inject = env.app.inject.bind(env.app);

  const mnist = (await post("/v1/datasets/builtin/mnist", { name: "digits", rows: 1000 })).json();
  mnistId = mnist.id;
  otherDigitsId = (await post("/v1/datasets/builtin/mnist", { name: "more-digits", rows: 100 })).json().id;
  await createModel(inject, auth, "digits", { input: { shape: [28, 28, 1] }, layers: [{ type: "flatten" }, { type: "dense", units: 64, activation: "relu" }, { type: "dense", units: 10, activation: "softmax" }] });
  await trainInProcess(env, auth, "digits", mnist.id, { epochs: 8, batchSize: 32, optimizer: { type: "adam", learningRate: 0.003 }, seed: 3 });

  // Three Gaussian clusters in 8-D, 10 σ apart.
  const random = seededRandom(11);
  const centres = Array.from({ length: CLUSTERS }, (_, c) => Array.from({ length: DIMS }, (_, d) => (d === c ? 10 : 0)));
  const x: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < CLUSTERS * PER_CLUSTER; i++) {
    const c = i % CLUSTERS;
    for (let d = 0; d < DIMS; d++) x.push(centres[c][d] + random.gaussian());
    y.push(c);
  }
  const body = npz({ x: npy("<f4", [CLUSTERS * PER_CLUSTER, DIMS], x), y: npy("<i4", [CLUSTERS * PER_CLUSTER], y) });
  const clusters = await env.app.inject({ method: "POST", url: "/v1/datasets?name=clusters", headers: { ...auth, "content-type": "application/x-npz" }, payload: body });
  assert.equal(clusters.statusCode, 201, clusters.body);
  clustersId = clusters.json().id;
  await createModel(inject, auth, "clusters", { input: { shape: [DIMS] }, layers: [{ type: "dense", units: 16, activation: "relu" }, { type: "dense", units: CLUSTERS, activation: "softmax" }] });
  await trainInProcess(env, auth, "clusters", clustersId, { epochs: 3, batchSize: 16, seed: 2 });

  worker = createTrainingWorker(env.workerConfig, () => {});
});

after(async () => {
  await worker?.close();
  await env?.close();
});

test("FGSM over the validation split: accuracy falls as ε grows; a targeted PGD attack reaches its class", async () => {
  const job = await started("/v1/models/digits/versions/1/adversarial", { dataset: mnistId, epsilon: [0, 10, 25, 50] });
  assert.equal(job.kind, "adversarial");
  assert.equal(job.request.split, "validation", "the split the version never trained on, by default");
  const done = await waitFor(job.id);
  assert.equal(done.status, "succeeded", JSON.stringify(done));
  assert.equal(done.progress, 1);
  const r = done.result;
  assert.equal(r.rows, 200, "the job's 20% validation split of 1,000 rows");
  const acc = r.results.map((x: { accuracy: number }) => x.accuracy);
  assert.equal(acc[0], r.accuracy, "ε = 0 changes nothing");
  assert.ok(r.accuracy > 0.8, `clean accuracy ${r.accuracy}`);
  for (let i = 1; i < acc.length; i++) assert.ok(acc[i] < acc[i - 1], `accuracy falls as ε grows: ${acc}`);
  assert.ok(acc[3] < 0.3, `ε = 50 (a fifth of the pixel range) breaks the MLP: ${acc}`);

  const png = await get(`/v1/insight-jobs/${job.id}.png`);
  assert.equal(png.statusCode, 200, png.body);
  assert.equal(png.headers["content-type"], "image/png");
  keep("insight-adversarial-dataset.png", png.rawPayload);

  const targeted = await started("/v1/models/digits/versions/1/adversarial", { dataset: mnistId, method: "pgd", epsilon: 60, steps: 10, targetClass: "3", rows: 64, seed: 1 });
  const t = await waitFor(targeted.id);
  assert.equal(t.status, "succeeded", JSON.stringify(t));
  assert.equal(t.result.rows, 64);
  assert.equal(t.result.targetClass, "3");
  assert.ok(t.result.results[0].successRate > 0.8, `the targeted attack reaches '3': ${JSON.stringify(t.result.results)}`);
});

test("top-activating rows: the k rows whose unit activation is highest, as the direct endpoint computes it", async () => {
  const job = await started("/v1/models/digits/versions/1/top-activations", { dataset: mnistId, layer: "l1_dense", unit: 5, k: 9, split: "all" });
  const done = await waitFor(job.id);
  assert.equal(done.status, "succeeded", JSON.stringify(done));
  const r = done.result;
  assert.equal(r.rowsSearched, 1000);
  assert.equal(r.units, 64);
  assert.equal(r.top.length, 9);
  const values = r.top.map((t: { activation: number }) => t.activation);
  assert.deepEqual(values, [...values].sort((a, b) => b - a), "most exciting first");
  // The same rows' activations, answered directly by the inference threads.
  const direct = await post("/v1/models/digits/versions/1/activations", { layer: "l1_dense", instances: r.top.slice(0, 8).map((t: { instance: unknown }) => t.instance) });
  assert.equal(direct.statusCode, 200, direct.body);
  direct.json().values.forEach((row: number[], i: number) => assert.ok(Math.abs(row[5] - values[i]) < 1e-3 * Math.max(1, Math.abs(values[i])), `row ${i}: ${row[5]} vs ${values[i]}`));
  // And no other row of a sample (rows 0–15) beats the k-th.
  const sample = (await get(`/v1/datasets/${mnistId}/rows?offset=0&limit=16`)).json().items.map((i: { features: unknown }) => i.features);
  const others = (await post("/v1/models/digits/versions/1/activations", { layer: "l1_dense", instances: sample })).json().values;
  const topRows = new Set(r.top.map((t: { row: number }) => t.row));
  others.forEach((row: number[], i: number) => {
    if (!topRows.has(i)) assert.ok(row[5] <= values[8] + 1e-4, `row ${i} at ${row[5]} beats the 9th at ${values[8]}`);
  });

  const png = await get(`/v1/insight-jobs/${job.id}.png`);
  assert.equal(png.statusCode, 200, png.body);
  assert.equal((await sharp(png.rawPayload).metadata()).format, "png");
  keep("insight-top-activations.png", png.rawPayload);

  // A unit the layer does not have fails the job, saying why.
  const bad = await started("/v1/models/digits/versions/1/top-activations", { dataset: mnistId, layer: "l1_dense", unit: 64, split: "all", rows: 10 });
  const failed = await waitFor(bad.id);
  assert.equal(failed.status, "failed");
  assert.match(failed.error, /unit 64: layer 'l1_dense' has 64 units/);
});

test("t-SNE separates well-separated clusters", async () => {
  // The rows themselves (the input), so the clusters are separated by construction, not by training.
  const job = await started("/v1/models/clusters/versions/1/tsne", { dataset: clustersId, layer: "input", split: "all", perplexity: 20, iterations: 500, seed: 4 });
  const done = await waitFor(job.id);
  assert.equal(done.status, "succeeded", JSON.stringify(done));
  const png = await get(`/v1/insight-jobs/${job.id}.png`);
  assert.equal(png.statusCode, 200, png.body);
  const r = done.result;
  assert.equal(r.points.length, CLUSTERS * PER_CLUSTER);
  assert.equal(r.dims, DIMS);
  assert.deepEqual(r.classes, ["0", "1", "2"]);
  // Each point's nearest neighbour in the map is of its own cluster.
  const pts = r.points as { x: number; y: number; class: number }[];
  let same = 0;
  for (const p of pts) {
    let best = Infinity;
    let cls = -1;
    for (const q of pts) {
      if (q === p) continue;
      const d = (p.x - q.x) ** 2 + (p.y - q.y) ** 2;
      if (d < best) [best, cls] = [d, q.class];
    }
    if (cls === p.class) same++;
  }
  assert.equal(same, pts.length, `nearest neighbours of the same cluster: ${same} of ${pts.length}`);
  // And the clusters lie apart: the closest pair of centroids is far beyond a cluster's spread.
  const centroid = (c: number) => {
    const m = pts.filter((p) => p.class === c);
    return [m.reduce((a, p) => a + p.x, 0) / m.length, m.reduce((a, p) => a + p.y, 0) / m.length];
  };
  const spread = (c: number) => {
    const [cx, cy] = centroid(c);
    const m = pts.filter((p) => p.class === c);
    return Math.sqrt(m.reduce((a, p) => a + (p.x - cx) ** 2 + (p.y - cy) ** 2, 0) / m.length);
  };
  for (let a = 0; a < CLUSTERS; a++) for (let b = a + 1; b < CLUSTERS; b++) {
    const [ax, ay] = centroid(a);
    const [bx, by] = centroid(b);
    assert.ok(Math.hypot(ax - bx, ay - by) > 2 * (spread(a) + spread(b)), `clusters ${a} and ${b} apart`);
  }

  // A hidden layer works the same way (its map is what the network made of the rows).
  const hidden = await started("/v1/models/clusters/versions/1/tsne", { dataset: clustersId, layer: "l0_dense", perplexity: 10, iterations: 300 });
  const h = await waitFor(hidden.id);
  assert.equal(h.status, "succeeded", JSON.stringify(h));
  assert.equal(h.result.dims, 16);
  assert.equal(h.result.split, "validation");
  assert.equal(h.result.points.length, 72, "the job's 20% validation split, stratified: 24 of each cluster");

  // The README's picture: MNIST's hidden layer.
  if (process.env.TRAINYARD_PICTURES_DIR) {
    const digits = await started("/v1/models/digits/versions/1/tsne", { dataset: mnistId, layer: "l1_dense", split: "all", rows: 1000, perplexity: 30, iterations: 1000 });
    assert.equal((await waitFor(digits.id, undefined, 300_000)).status, "succeeded");
    keep("insight-tsne.png", (await get(`/v1/insight-jobs/${digits.id}.png`)).rawPayload);
  }
});

test("bad requests are 400s that name the field; pictures wait for success; other tenants see nothing", async () => {
  const cases: [string, object, RegExp][] = [
    ["adversarial", { dataset: mnistId, epsilon: 1, instances: [[0]], labels: [0] }, /instances|dataset/],
    ["adversarial", { dataset: mnistId, epsilon: 1, labels: ["1"] }, /labels/],
    ["adversarial", { dataset: clustersId, epsilon: 1 }, /dataset/],
    ["adversarial", { dataset: mnistId, split: "all", epsilon: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], method: "pgd", steps: 100 }, /rows/],
    ["adversarial", { dataset: "00000000-0000-4000-8000-000000000000", epsilon: 1 }, /dataset/],
    ["top-activations", { dataset: mnistId, layer: "nope", unit: 0 }, /layer.*l1_dense/],
    ["top-activations", { dataset: mnistId, layer: "l1_dense" }, /unit/],
    ["tsne", { dataset: otherDigitsId, layer: "l1_dense", split: "validation" }, /split.*trained on another dataset/],
    ["tsne", { dataset: mnistId, layer: "l1_dense", split: "all", rows: 30, perplexity: 20 }, /perplexity/],
    ["tsne", { dataset: mnistId, layer: "l1_dense", split: "all", rows: 20_000 }, /rows/],
  ];
  for (const [kind, body, field] of cases) {
    const res = await post(`/v1/models/digits/versions/1/${kind}`, body);
    assert.equal(res.statusCode, 400, `${kind} ${JSON.stringify(body)}: ${res.body}`);
    assert.match(res.body, field, `${kind} ${JSON.stringify(body)}: ${res.body}`);
  }
  const png = await post("/v1/models/digits/versions/1/adversarial.png", { dataset: mnistId, epsilon: 1 });
  assert.equal(png.statusCode, 400);
  assert.equal((await get("/v1/insight-jobs/00000000-0000-4000-8000-000000000000")).statusCode, 404);
  assert.equal((await get("/v1/insight-jobs/not-a-uuid")).statusCode, 400);

  const job = await started("/v1/models/digits/versions/1/top-activations", { dataset: mnistId, layer: "l1_dense", unit: 1, split: "all", rows: 50 });
  const other = await env.tenant("someone-else");
  assert.equal((await env.app.inject({ url: `/v1/insight-jobs/${job.id}`, headers: other })).statusCode, 404);
  assert.equal((await env.app.inject({ method: "POST", url: `/v1/insight-jobs/${job.id}/cancel`, headers: other })).statusCode, 404);
  const listed = (await get("/v1/insight-jobs")).json().insightJobs.map((j: { id: string }) => j.id);
  assert.ok(listed.includes(job.id));
  await waitFor(job.id);
});

test("cancel: a running t-SNE stops within a second or two; a finished job cannot be cancelled", async () => {
  const job = await started("/v1/models/digits/versions/1/tsne", { dataset: mnistId, layer: "l1_dense", split: "all", rows: 1000, iterations: 1000 });
  await waitFor(job.id, (j) => j.status === "running" && j.progress > 0.1);
  const asked = Date.now();
  const res = await post(`/v1/insight-jobs/${job.id}/cancel`, {});
  assert.equal(res.statusCode, 202, res.body);
  const done = await waitFor(job.id, (j) => j.status !== "running");
  assert.equal(done.status, "cancelled");
  assert.ok(Date.now() - asked < 10_000, `stopped ${Date.now() - asked} ms after the cancel`);
  assert.equal((await get(`/v1/insight-jobs/${job.id}.png`)).statusCode, 409);
  assert.equal((await post(`/v1/insight-jobs/${job.id}/cancel`, {})).statusCode, 409);
});

test("a worker killed mid-job: another worker runs the job again, and it succeeds", async () => {
  // This test's own worker process; the in-process worker stays away from the job until the kill.
  await worker?.close();
  worker = undefined;
  const doomed = await new WorkerProcess(envOf(env.workerConfig)).start();
  try {
    const job = await started("/v1/models/digits/versions/1/tsne", { dataset: mnistId, layer: "l1_dense", split: "all", rows: 600, iterations: 1000, seed: 9 });
    await waitFor(job.id, (j) => j.status === "running" && j.progress > 0.15);
    await doomed.kill();
    const atDeath = (await waitFor(job.id, () => true));
    assert.equal(atDeath.status, "running", "Postgres still says running: nothing told it otherwise");

    worker = createTrainingWorker(env.workerConfig, () => {});
    const done = await waitFor(job.id, undefined, 180_000);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    assert.equal(done.attempts, 2, "claimed once by each worker");
    assert.equal(done.result.points.length, 600);
  } finally {
    await doomed.stop();
  }
});

test("a job the queue lost is put back by the reconciler", async () => {
  const redis = new Redis(REDIS_URL);
  const prefix = env.config.TRAINYARD_QUEUE_PREFIX;
  const insightQueue = createInsightQueue(redis, prefix);
  const trainingQueue = createTrainingQueue(redis, prefix);
  try {
    // Stop taking jobs, so the job stays queued while its BullMQ entry is removed behind its back.
    await worker?.close();
    worker = undefined;
    const job = await started("/v1/models/digits/versions/1/top-activations", { dataset: mnistId, layer: "l1_dense", unit: 2, split: "all", rows: 100 });
    await (await insightQueue.getJob(job.id))!.remove();
    assert.equal(await insightQueue.getJob(job.id), undefined);
    const reconciler = new JobReconciler(env.app.db, trainingQueue, redis, prefix, () => {}, [insightJobsOf(env.app.db, insightQueue)]);
    const round = await reconciler.reconcile();
    assert.deepEqual(round?.requeued, [job.id]);
    worker = createTrainingWorker(env.workerConfig, () => {});
    assert.equal((await waitFor(job.id)).status, "succeeded");
  } finally {
    await insightQueue.close();
    await trainingQueue.close();
    redis.disconnect();
  }
});
