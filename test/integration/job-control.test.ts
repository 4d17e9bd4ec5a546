// Steering jobs while they run (issue 9, "Steer"): pause and resume at a batch boundary, graceful
// shutdown (SIGTERM: checkpoint at the next batch, hand the job back), checkpoints inside long
// epochs (a SIGKILLed worker loses seconds, not the epoch), :continue, fine-tuning from a version
// with frozen layers, and a per-tenant limit on running jobs. Real Postgres, Redis, BullMQ, worker
// processes and tfjs.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { loadModel } from "../../lib/engine/model-io.ts";
import { ModelVersionRepository } from "../../lib/registry/model-version-repository.ts";
import { createTrainingWorker, type TrainingWorker } from "../../workers/training-worker.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { createModel, IRIS_SPEC, uploadIris, waitForJob } from "../helpers/training.ts";
import { envOf, WorkerProcess } from "../helpers/worker-control.ts";

let env: TestEnv;
let auth: Record<string, string>;
let dataset: string;
const workers: (TrainingWorker | WorkerProcess)[] = [];
type Inject = TestEnv["app"]["inject"];
let inject: Inject;

before(async () => {
  env = await createTestEnv();
  auth = await env.tenant("steer");
  inject = env.app.inject.bind(env.app) as Inject;
  dataset = await uploadIris(inject, auth);
  await createModel(inject, auth, "iris");
});
after(async () => {
  for (const w of workers) await (w instanceof WorkerProcess ? w.stop() : w.close());
  await env?.close();
});

const inProcessWorker = (extra: Partial<TestEnv["workerConfig"]> = {}) => {
  const w = createTrainingWorker({ ...env.workerConfig, ...extra }, () => {});
  workers.push(w);
  return w;
};

/**
 * A long job: 30 epochs of 120 batches of one row each. An epoch takes a quarter of a second on a
 * quiet machine now (it took several before issue 13's speed-ups, and 8 epochs were enough: a job
 * then finished before a pause reached it).
 */
const LONG_EPOCHS = 30;
async function longJob(extra: object = {}): Promise<string> {
  const res = await inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "iris", dataset, epochs: LONG_EPOCHS, batchSize: 1, seed: 7, ...extra } });
  assert.equal(res.statusCode, 202, res.body);
  return res.json().id;
}

const post = (url: string, payload?: object, headers = auth) => inject({ method: "POST", url, headers, ...(payload ? { payload } : {}) });
const job = (id: string) => env.app.db.trainingJob.findUniqueOrThrow({ where: { id } });
const partialCheckpoint = (jobId: string) => env.app.db.checkpoint.findFirst({ where: { jobId, NOT: { partial: { equals: null as never } } }, select: { epoch: true, partial: true } });

test("pause stops a running job at a batch boundary with a checkpoint there; resume goes on from it and the job succeeds", async () => {
  const w = inProcessWorker();
  try {
    const id = await longJob();
    await waitForJob(inject, auth, id, (j) => j.status === "running" && j.progress.epoch >= 1 && (j.progress.batch ?? 0) > 5);
    const asked = await post(`/v1/training-jobs/${id}:pause`);
    assert.equal(asked.statusCode, 202, asked.body);
    // Asked, or (the worker quick to see it) already paused.
    assert.ok(asked.json().pauseRequested || asked.json().status === "paused", asked.body);
    const paused = await waitForJob(inject, auth, id, (j) => j.status !== "running");
    assert.equal(paused.status, "paused", JSON.stringify(paused));
    assert.equal(paused.pauseRequested, false);
    const mid = await partialCheckpoint(id);
    assert.ok(mid, "a checkpoint inside the epoch it paused in");
    assert.equal(mid.epoch, paused.progress.epoch + 1);
    assert.equal(typeof (mid.partial as { batch: number }).batch, "number", "a checkpoint taken inside the epoch, at a batch boundary");
    // Paused means idle: nothing trains it.
    await sleep(1500);
    assert.equal((await job(id)).status, "paused");
    assert.equal((await post(`/v1/training-jobs/${id}:pause`)).json().status, "paused", "pausing a paused job changes nothing");

    const resumed = await post(`/v1/training-jobs/${id}:resume`);
    assert.equal(resumed.statusCode, 202, resumed.body);
    const done = await waitForJob(inject, auth, id);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    assert.equal(done.progress.epoch, LONG_EPOCHS);
    assert.equal(done.attempts, 2);
    assert.equal(done.lastInterruption, null, "a pause is not an interruption");
    const epochs = (await inject({ url: `/v1/training-jobs/${id}/metrics`, headers: auth })).json().epochs;
    assert.deepEqual(epochs.map((e: { epoch: number }) => e.epoch), Array.from({ length: LONG_EPOCHS }, (_, i) => i + 1));
    // Finished jobs cannot be paused or resumed.
    assert.equal((await post(`/v1/training-jobs/${id}:pause`)).statusCode, 409);
    assert.equal((await post(`/v1/training-jobs/${id}:resume`)).statusCode, 409);
  } finally {
    await w.close();
  }
});

test("a queued job pauses at once and runs when resumed; a paused job can be cancelled", async () => {
  // No worker yet: the jobs stay queued.
  const id = await longJob({ epochs: 1, batchSize: 32 });
  const other = await longJob({ epochs: 1, batchSize: 32 });
  const paused = await post(`/v1/training-jobs/${id}:pause`);
  assert.equal(paused.json().status, "paused", paused.body);
  assert.equal((await post(`/v1/training-jobs/${other}:pause`)).json().status, "paused");
  const cancelled = await post(`/v1/training-jobs/${other}/cancel`);
  assert.equal(cancelled.json().status, "cancelled", cancelled.body);
  const w = inProcessWorker();
  try {
    await sleep(1500);
    assert.equal((await job(id)).status, "paused", "a worker does not take a paused job");
    assert.equal((await post(`/v1/training-jobs/${id}:resume`)).statusCode, 202);
    assert.equal((await waitForJob(inject, auth, id)).status, "succeeded");
    assert.equal((await post(`/v1/training-jobs/00000000-0000-4000-8000-000000000000:pause`)).statusCode, 404);
  } finally {
    await w.close();
  }
});

test("SIGTERM: the worker checkpoints its job at the next batch boundary, hands it back and exits; the next worker resumes at that batch", async () => {
  const first = await new WorkerProcess(envOf(env.workerConfig)).start();
  workers.push(first);
  const id = await longJob();
  await waitForJob(inject, auth, id, (j) => j.status === "running" && j.progress.epoch >= 1 && j.progress.epoch < 6 && (j.progress.batch ?? 0) > 5);
  const signalled = Date.now();
  assert.equal(await first.proc.stop("SIGTERM"), 0, first.proc.output().slice(-2000));
  const shutdownMs = Date.now() - signalled;
  const handed = await job(id);
  assert.equal(handed.status, "queued");
  const at = /handed back at epoch (\d+), batch \d+ by a worker shutting down/.exec(handed.lastInterruption ?? "");
  assert.ok(at, handed.lastInterruption ?? "no lastInterruption");
  const mid = await partialCheckpoint(id);
  assert.ok(mid && mid.epoch === Number(at[1]), `a checkpoint inside epoch ${at[1]}`);
  const batch = (mid.partial as { batch: number }).batch;
  assert.ok(shutdownMs < 15_000, `shut down in ${shutdownMs} ms`);

  const second = await new WorkerProcess(envOf(env.workerConfig)).start();
  workers.push(second);
  const done = await waitForJob(inject, auth, id);
  assert.equal(done.status, "succeeded", JSON.stringify(done));
  assert.match(second.proc.output(), new RegExp(`resuming from the checkpoint of epoch ${mid.epoch - 1}, batch ${batch} of epoch ${mid.epoch}`));
  const row = await job(id);
  assert.equal(row.attempts, 2);
  assert.equal(row.attemptsWithoutProgress, 0, "handing a job back is not an attempt without progress");
  await second.stop();
});

test("checkpoints inside long epochs: a worker SIGKILLed mid-epoch loses the batches since the last one, not the epoch", async () => {
  const cfg = envOf(env.workerConfig, { TRAINYARD_CHECKPOINT_INTERVAL_MS: "100" });
  const first = await new WorkerProcess(cfg).start();
  workers.push(first);
  const id = await longJob();
  // Wait for a checkpoint inside the first epoch, well past its start.
  let mid: Awaited<ReturnType<typeof partialCheckpoint>> = null;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(50)) {
    mid = await partialCheckpoint(id);
    if (mid && (mid.partial as { batch: number }).batch > 20) break;
  }
  // Killed first, whatever the assertion says: a worker left running would take the next tests' jobs.
  await first.kill();
  assert.ok(mid, "a checkpoint inside the epoch");
  // Where the job stands: the checkpoint inside an epoch seen above, or (if that epoch ended in the
  // instant before the kill, and the next had no checkpoint yet) the end of that epoch.
  const latest = await env.app.db.checkpoint.findFirstOrThrow({ where: { jobId: id }, orderBy: { epoch: "desc" }, select: { epoch: true, partial: true } });
  const resumesAt = latest.partial
    ? `resuming from the checkpoint of epoch ${latest.epoch - 1}, batch ${(latest.partial as { batch: number }).batch} of epoch ${latest.epoch}`
    : `resuming from the checkpoint of epoch ${latest.epoch}`;
  const second = await new WorkerProcess(cfg).start();
  workers.push(second);
  const done = await waitForJob(inject, auth, id);
  assert.equal(done.status, "succeeded", JSON.stringify(done));
  assert.ok(second.proc.output().includes(resumesAt), `expected "${resumesAt}" in the second worker's output`);
  await second.stop();
});

test(":continue trains a finished job further from its last checkpoint, as a new job with the history before it and a new version", async () => {
  const w = inProcessWorker();
  try {
    const res = await post("/v1/training-jobs", { model: "iris", dataset, epochs: 3, batchSize: 16, seed: 3 });
    const first = await waitForJob(inject, auth, res.json().id);
    assert.equal(first.status, "succeeded");
    assert.equal((await post(`/v1/training-jobs/${first.id}:continue`, { epochs: 0 })).statusCode, 400);
    const cont = await post(`/v1/training-jobs/${first.id}:continue`, { epochs: 2 });
    assert.equal(cont.statusCode, 202, cont.body);
    assert.equal(cont.json().continuedFrom, first.id);
    assert.equal(cont.json().progress.epoch, 3, "it starts where the finished job stood");
    assert.equal(cont.json().progress.epochs, 5);
    const done = await waitForJob(inject, auth, cont.json().id);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    assert.equal(done.modelVersion, first.modelVersion + 1);
    const epochs = (await inject({ url: `/v1/training-jobs/${done.id}/metrics`, headers: auth })).json().epochs;
    assert.deepEqual(epochs.map((e: { epoch: number }) => e.epoch), [1, 2, 3, 4, 5]);
    const before = (await inject({ url: `/v1/training-jobs/${first.id}/metrics`, headers: auth })).json().epochs;
    assert.deepEqual(epochs.slice(0, 3), before, "the first three epochs are the finished job's");
    // The same as one job of 5 epochs with the same seed: the checkpoint carried the optimizer state.
    const straight = await waitForJob(inject, auth, (await post("/v1/training-jobs", { model: "iris", dataset, epochs: 5, batchSize: 16, seed: 3 })).json().id);
    assert.equal(done.metrics.loss, straight.metrics.loss);
    const running = await longJob({ epochs: 1 });
    await waitForJob(inject, auth, running, (j) => j.status === "running");
    assert.equal((await post(`/v1/training-jobs/${running}:continue`, { epochs: 1 })).statusCode, 409);
    await waitForJob(inject, auth, running);
  } finally {
    await w.close();
  }
});

test("fine-tuning starts from a version's weights; frozen layers keep them, the rest train", async () => {
  const w = inProcessWorker();
  try {
    const base = await waitForJob(inject, auth, (await post("/v1/training-jobs", { model: "iris", dataset, epochs: 2, seed: 1 })).json().id);
    assert.equal(base.status, "succeeded");
    // A new head (two layers instead of one) on the base model's first layer.
    await createModel(inject, auth, "iris-head", { input: IRIS_SPEC.input, layers: [IRIS_SPEC.layers[0], { type: "dense", units: 8, activation: "relu" }, { type: "dense", units: 3, activation: "softmax" }] });
    const bad = await post("/v1/training-jobs", { model: "iris-head", dataset, initFrom: { model: "iris" }, freeze: ["l0_dense", "nope"] });
    assert.equal(bad.statusCode, 400, bad.body);
    assert.equal(bad.json().errors[0].path, "freeze[1]");
    const noVersion = await post("/v1/training-jobs", { model: "iris-head", dataset, initFrom: { model: "iris", version: 99 } });
    assert.equal(noVersion.statusCode, 400, noVersion.body);
    assert.equal(noVersion.json().errors[0].path, "initFrom");

    const res = await post("/v1/training-jobs", { model: "iris-head", dataset, epochs: 3, seed: 2, initFrom: { model: "iris", version: base.modelVersion }, freeze: ["l0_dense"] });
    assert.equal(res.statusCode, 202, res.body);
    assert.deepEqual(res.json().hyperparameters.initFrom.version, base.modelVersion);
    const tuned = await waitForJob(inject, auth, res.json().id);
    assert.equal(tuned.status, "succeeded", JSON.stringify(tuned));

    const versions = new ModelVersionRepository(env.app.db);
    const tenantId = (await env.app.db.tenant.findFirstOrThrow({ where: { name: "steer" } })).id;
    const weightsOf = async (model: string, version: number, layer: string) => {
      const m = await loadModel((await versions.load((await versions.ref(tenantId, model, version)).id)).model);
      const values = m.getLayer(layer).getWeights().map((t) => Array.from(t.dataSync()));
      m.dispose();
      return values;
    };
    assert.deepEqual(await weightsOf("iris-head", tuned.modelVersion, "l0_dense"), await weightsOf("iris", base.modelVersion, "l0_dense"), "the frozen layer kept the version's weights exactly");
    // A second run without freezing moves them.
    const free = await waitForJob(inject, auth, (await post("/v1/training-jobs", { model: "iris-head", dataset, epochs: 3, seed: 2, initFrom: { model: "iris" } })).json().id);
    assert.equal(free.status, "succeeded");
    assert.notDeepEqual(await weightsOf("iris-head", free.modelVersion, "l0_dense"), await weightsOf("iris", base.modelVersion, "l0_dense"));
    tf.disposeVariables();
  } finally {
    await w.close();
  }
});

test("a tenant's limit on running jobs: its other jobs wait queued and say why; other tenants' jobs run meanwhile", async () => {
  const w = inProcessWorker({ TRAINYARD_WORKER_CONCURRENCY: 3, TRAINYARD_MAX_RUNNING_JOBS_PER_TENANT: 1, TRAINYARD_WAITING_RECHECK_MS: 300 });
  try {
    const other = await env.tenant("other");
    const otherDataset = await uploadIris(inject, other);
    await createModel(inject, other, "iris");
    const mine = [await longJob({ epochs: 3 }), await longJob({ epochs: 3 })];
    const theirs = (await post("/v1/training-jobs", { model: "iris", dataset: otherDataset, epochs: 3, batchSize: 1 }, other)).json().id;
    let sawWaiting = "";
    let sawTogether = false;
    for (const deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(50)) {
      const rows = await env.app.db.trainingJob.findMany({ where: { id: { in: [...mine, theirs] } } });
      const running = rows.filter((r) => r.status === "running");
      assert.ok(running.filter((r) => mine.includes(r.id)).length <= 1, "never two of one tenant's jobs at once");
      if (running.some((r) => r.id === theirs) && running.some((r) => mine.includes(r.id))) sawTogether = true;
      const waiting = await Promise.all(mine.map((id) => inject({ url: `/v1/training-jobs/${id}`, headers: auth }).then((r) => r.json())));
      sawWaiting ||= waiting.find((j) => j.status === "queued" && j.waitingReason)?.waitingReason ?? "";
      if (rows.every((r) => r.status === "succeeded")) break;
    }
    assert.match(sawWaiting, /its tenant has 1 job\(s\) running, the limit .* is 1/);
    assert.ok(sawTogether, "another tenant's job ran beside this tenant's");
    for (const id of [...mine, theirs]) assert.equal((await job(id)).status, "succeeded");
  } finally {
    await w.close();
  }
});
