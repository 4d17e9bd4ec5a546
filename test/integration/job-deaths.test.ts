// Deaths that leave progress behind do not use up a job's life: a worker SIGKILLed five times in
// one job (with a limit of two attempts without progress) still finishes it, every epoch stored
// once. A job that makes no progress across N attempts fails, and says so.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { createModel, uploadIris, waitForJob } from "../helpers/training.ts";
import { childrenOf, envOf, killPid, WorkerProcess } from "../helpers/worker-control.ts";

let env: TestEnv;
let auth: { authorization: string };
let dataset: string;
const workers: WorkerProcess[] = [];

before(async () => {
  env = await createTestEnv();
  auth = await env.tenant("acme");
  dataset = await uploadIris(env.app.inject.bind(env.app), auth);
  await createModel(env.app.inject.bind(env.app), auth, "iris");
});
after(async () => {
  for (const w of workers) await w.stop();
  await env?.close();
});

async function startWorker(extra: Record<string, string>): Promise<WorkerProcess> {
  const w = await new WorkerProcess(envOf(env.workerConfig, { TRAINYARD_JOB_LOCK_MS: "2000", TRAINYARD_RETRY_DELAY_MS: "100", ...extra })).start();
  workers.push(w);
  return w;
}

const row = (id: string) => env.app.db.trainingJob.findUniqueOrThrow({ where: { id } });

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

async function assertEveryEpochOnce(id: string, epochs: number) {
  const series = (await env.app.inject({ url: `/v1/training-jobs/${id}/metrics`, headers: auth })).json();
  assert.deepEqual(series.epochs.map((e: { epoch: number }) => e.epoch), Array.from({ length: epochs }, (_, i) => i + 1), "every epoch once");
  const points = await env.app.db.metricPoint.groupBy({ by: ["epoch", "name"], where: { jobId: id }, _count: true });
  assert.ok(points.every((p) => p._count === 1), "no metric stored twice");
}

test("a job survives five SIGKILLs of its worker, each after some progress, with a limit of two attempts without progress", async () => {
  const extra = { TRAINYARD_MAX_ATTEMPTS_WITHOUT_PROGRESS: "2" };
  let worker = await startWorker(extra);
  const body = { model: "iris", dataset, epochs: 40, batchSize: 4, optimizer: { type: "adam", learningRate: 0.01 }, seed: 11 };
  const job = (await env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: body })).json();
  for (let k = 0; k < 5; k++) {
    const from = (await row(job.id)).epoch;
    await until(`epoch ${from + 1} is stored`, async () => (await row(job.id)).epoch > from);
    assert.notEqual((await row(job.id)).status, "succeeded", `the job finished before kill ${k + 1}; make it longer`);
    await worker.kill();
    worker = await startWorker(extra);
  }
  const done = await waitForJob(env.app.inject.bind(env.app), auth, job.id, undefined, 180_000);
  assert.equal(done.status, "succeeded", JSON.stringify(done));
  assert.equal(done.attempts, 6, "claimed once by each of the six workers");
  assert.match(done.lastInterruption, /attempt 5 stopped before finishing .* attempt 6 resumed at epoch \d+/);
  await assertEveryEpochOnce(job.id, 40);
  await worker.stop();
});

test("a job that makes no progress across N attempts fails, and says so", async () => {
  // A first epoch of several seconds (2,000 rows, batch 1), so that each attempt is killed before it ends one.
  const rows = Array.from({ length: 2000 }, (_, i) => Array.from({ length: 8 }, (_, j) => Math.sin(i * 7 + j)));
  const labels = rows.map((r) => (r[0] > 0 ? "a" : "b"));
  const up = await env.app.inject({ method: "POST", url: "/v1/datasets", headers: auth, payload: { name: "slow", features: rows, labels } });
  assert.equal(up.statusCode, 201, up.body);
  const spec = { input: { shape: [8] }, layers: [{ type: "dense", units: 64, activation: "relu" }, { type: "dense", units: 2, activation: "softmax" }] };
  await createModel(env.app.inject.bind(env.app), auth, "slow", spec);

  const worker = await startWorker({ TRAINYARD_MAX_ATTEMPTS_WITHOUT_PROGRESS: "3" });
  const job = (await env.app.inject({
    method: "POST", url: "/v1/training-jobs", headers: auth,
    payload: { model: "slow", dataset: up.json().id, epochs: 3, batchSize: 1, validationSplit: 0, seed: 1 },
  })).json();
  for (let attempt = 1; attempt <= 3; attempt++) {
    // Killed once this attempt has claimed the job, long before its first epoch ends.
    await until(`attempt ${attempt} claims the job`, async () => (await row(job.id)).attempts >= attempt);
    const child = childrenOf(worker.pid)[0];
    assert.ok(child, "the worker has a training child");
    assert.equal((await row(job.id)).epoch, 0, "killed before the first epoch was stored");
    killPid(child);
  }
  const done = await waitForJob(env.app.inject.bind(env.app), auth, job.id, undefined, 120_000);
  assert.equal(done.status, "failed", JSON.stringify(done));
  assert.match(done.error, /made no progress in 3 attempts in a row/);
  assert.equal(done.attempts, 4, "the fourth claim saw three attempts without progress and stopped");
});
