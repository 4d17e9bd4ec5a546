// Hyperparameter studies (issue 9): one request runs a grid (or random) search whose trials are
// training jobs in one BullMQ flow, run in parallel by two real worker processes; successive
// halving (ASHA) stops bad trials early; the study reports its trials sorted by the objective and
// the best trial's model version; a study is cancelled as a whole. Against the real Postgres,
// Redis, BullMQ and workers.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import type { InjectOptions } from "fastify";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { createModel, uploadIris } from "../helpers/training.ts";
import { envOf, WorkerProcess } from "../helpers/worker-control.ts";

let env: TestEnv;
let auth: { authorization: string };
let dataset: string;
const workers: WorkerProcess[] = [];

before(async () => {
  env = await createTestEnv();
  auth = await env.tenant("studies");
  dataset = await uploadIris(env.app.inject.bind(env.app), auth);
  await createModel(env.app.inject.bind(env.app), auth, "iris");
  // Two worker processes, one trial at a time each: the trials of a study spread across both.
  const started = await Promise.all([0, 1].map(() => new WorkerProcess(envOf(env.workerConfig, { TRAINYARD_WORKER_CONCURRENCY: "1" })).start()));
  workers.push(...started);
});
after(async () => {
  for (const w of workers) await w.stop();
  await env?.close();
});

const inject = (opts: InjectOptions) => env.app.inject(opts);
const getStudy = async (id: string) => (await inject({ url: `/v1/studies/${id}`, headers: auth })).json();

async function waitForStudy(id: string, done: (s: any) => boolean, timeoutMs = 150_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  let study: any;
  while (Date.now() < deadline) {
    study = await getStudy(id);
    if (done(study)) return study;
    await sleep(200);
  }
  throw new Error(`study ${id} did not get there in ${timeoutMs} ms; last: ${JSON.stringify(study)}\n${workers.map((w) => w.proc.output().slice(-1500)).join("\n---\n")}`);
}

test("a grid of 8 trials over width and learning rate runs across two worker processes; ASHA stops bad trials; the table is sorted and names the best version", async () => {
  const res = await inject({
    method: "POST", url: "/v1/studies", headers: auth,
    payload: {
      model: "iris", dataset, strategy: "grid",
      job: { epochs: 8, batchSize: 16, validationSplit: 0.2, seed: 5 },
      // Units first: the tiny learning rates of the wide network come after the narrow network's
      // trials have recorded their rungs, so ASHA has something to compare them with.
      space: { "spec.layers[0].units": { values: [6, 16] }, "job.optimizer.learningRate": { values: [0.00001, 0.0001, 0.03, 0.1] } },
      objective: { metric: "val_loss" },
      asha: { minEpochs: 1, reductionFactor: 2 },
    },
  });
  assert.equal(res.statusCode, 202, res.body);
  const created = res.json();
  assert.equal(res.headers.location, `/v1/studies/${created.id}`);
  assert.equal(created.trialCount, 8);
  assert.deepEqual(created.objective, { metric: "val_loss", mode: "min" });

  const study = await waitForStudy(created.id, (s) => s.status !== "running");
  assert.equal(study.status, "succeeded", JSON.stringify(study));
  assert.equal(study.counts.succeeded, 8, JSON.stringify(study.counts));
  assert.ok(study.finishedAt);

  // Sorted by the objective, best (lowest val_loss) first.
  const values = study.trials.map((t: any) => t.objective);
  assert.ok(values.every((v: unknown) => typeof v === "number"), JSON.stringify(values));
  assert.deepEqual(values, [...values].sort((a, b) => a - b));
  const top = study.trials[0];
  assert.deepEqual(study.best, { trial: top.trial, jobId: top.jobId, model: top.model, version: top.version, objective: top.objective });
  assert.ok([0.03, 0.1].includes(top.params["job.optimizer.learningRate"]), `a sensible learning rate wins: ${JSON.stringify(top)}`);
  const version = await inject({ url: `/v1/models/${study.best.model}/versions/${study.best.version}`, headers: auth });
  assert.equal(version.statusCode, 200, version.body);
  assert.equal(version.json().jobId, study.best.jobId);
  // The trial's job says which study and trial it is, and what it tried.
  const trialJob = (await inject({ url: `/v1/training-jobs/${top.jobId}`, headers: auth })).json();
  assert.deepEqual(trialJob.study, { id: study.id, trial: top.trial, params: top.params });
  assert.equal((await env.app.db.study.findUniqueOrThrow({ where: { id: study.id } })).bestJobId, study.best.jobId, "the best trial is recorded");

  // ASHA stopped at least one trial at a rung; a stopped trial still succeeded with a version.
  const stopped = study.trials.filter((t: any) => t.stoppedEarly);
  assert.ok(stopped.length >= 1, JSON.stringify(study.trials));
  for (const t of stopped) {
    assert.match(t.stoppedEarly, /^ASHA: val_loss/);
    assert.ok([1, 2, 4].includes(t.epochs), `stopped at a rung: ${JSON.stringify(t)}`);
    assert.equal(typeof t.version, "number");
  }
  assert.ok(study.trials.some((t: any) => t.epochs === 8), "the best trials train to the end");

  // A changed architecture trains a model of its own with that spec; the unchanged one the base model.
  const base = (await inject({ url: "/v1/models/iris", headers: auth })).json();
  for (const t of study.trials) {
    const units = t.params["spec.layers[0].units"];
    if (units === 16) {
      assert.equal(t.model, "iris");
      continue;
    }
    assert.match(t.model, new RegExp(`^iris--s${study.id.replace(/-/g, "").slice(0, 8)}-t${t.trial}$`));
    const model = (await inject({ url: `/v1/models/${t.model}`, headers: auth })).json();
    assert.equal(model.spec.layers[0].units, 6);
    assert.deepEqual(model.spec, { ...base.spec, layers: [{ ...base.spec.layers[0], units: 6 }, ...base.spec.layers.slice(1)] });
  }

  // Each trial is an ordinary training job, with the trial's hyperparameters.
  const job = (await inject({ url: `/v1/training-jobs/${top.jobId}`, headers: auth })).json();
  assert.equal(job.hyperparameters.optimizer.learningRate, top.params["job.optimizer.learningRate"]);
  assert.equal(job.hyperparameters.seed, 5);

  // Both worker processes ran trials, and one of them finished the study.
  const ran = workers.map((w) => study.trials.filter((t: any) => w.proc.output().includes(`job ${t.jobId} started`)).length);
  assert.ok(ran[0] >= 1 && ran[1] >= 1, `trials per worker: ${ran}`);
  assert.equal(ran[0] + ran[1], 8);
  // The flow's parent job, released when the last trial ended, finishes the study in a worker too.
  await Promise.any(workers.map((w) => w.proc.waitFor(new RegExp(`study ${study.id} finished`), 20_000)));

  const list = (await inject({ url: "/v1/studies", headers: auth })).json();
  assert.ok(list.studies.some((s: any) => s.id === study.id && s.status === "succeeded" && s.best.jobId === study.best.jobId));
  const other = await env.tenant("someone-else");
  assert.equal((await inject({ url: `/v1/studies/${study.id}`, headers: other })).statusCode, 404);
  assert.equal((await inject({ method: "POST", url: `/v1/studies/${study.id}/cancel`, headers: other })).statusCode, 404);
});

test("cancelling a study cancels its running and queued trials, and the study", async () => {
  const res = await inject({
    method: "POST", url: "/v1/studies", headers: auth,
    payload: {
      model: "iris", dataset, strategy: "random", trials: 5, seed: 9,
      job: { epochs: 2000, batchSize: 8 },
      space: { "job.optimizer.learningRate": { min: 0.001, max: 0.1, scale: "log" } },
    },
  });
  assert.equal(res.statusCode, 202, res.body);
  const id = res.json().id;
  await waitForStudy(id, (s) => s.counts.running >= 1 && s.trials.some((t: any) => t.epochs >= 1), 60_000);
  const cancelled = await inject({ method: "POST", url: `/v1/studies/${id}/cancel`, headers: auth });
  assert.equal(cancelled.statusCode, 202, cancelled.body);
  assert.equal(cancelled.json().status, "cancelled");
  const study = await waitForStudy(id, (s) => s.trials.every((t: any) => ["succeeded", "failed", "cancelled"].includes(t.status)), 60_000);
  assert.equal(study.status, "cancelled");
  assert.equal(study.counts.cancelled, 5, JSON.stringify(study.trials));
  assert.ok(study.trials.every((t: any) => t.epochs < 2000));
  assert.ok(study.finishedAt);
  // The flow is not wedged: cancelled trials release the parent job, which finishes the study.
  await Promise.any(workers.map((w) => w.proc.waitFor(new RegExp(`study ${id} finished`), 20_000)));
  assert.equal((await getStudy(id)).status, "cancelled");
});

test("bad studies are 400s that name the path or the trial, and store nothing", async () => {
  const post = (payload: object) => inject({ method: "POST", url: "/v1/studies", headers: auth, payload: { model: "iris", dataset, strategy: "grid", ...payload } });
  const before = { studies: await env.app.db.study.count(), jobs: await env.app.db.trainingJob.count(), models: await env.app.db.model.count() };
  const cases: [object, string, RegExp][] = [
    [{ space: { "spec.layers[0].unitz": { values: [4, 8] } } }, "space.spec.layers[0].unitz", /not a field of the model's spec/],
    [{ space: { "spec.layers[5].units": { values: [4, 8] } } }, "space.spec.layers[5].units", /index 5 is out of range/],
    [{ space: { "job.learningrate": { values: [0.1] } } }, "space.job.learningrate", /not a field of a training job/],
    [{ space: { "model.units": { values: [1] } } }, "space.model.units", /not a path/],
    [{ space: { "spec.layers[0].units": { values: [8, 0] } } }, "trial 2, spec.layers[0].units", /^expected a positive integer \(trial 2: spec\.layers\[0\]\.units = 0\)$/],
    [{ space: { "spec.layers[1].rate": { values: [0.2, 1.5] } } }, "trial 2, spec.layers[1].rate", /< 1/],
    [{ space: { "job.batchSize": { values: [16, -1] } } }, "trial 2, job.batchSize", /job.batchSize = -1/],
    [{ space: { "spec.layers[0].units": { values: [1, 2, 3, 4, 5, 6, 7, 8, 9] }, "job.batchSize": { values: [1, 2, 3, 4, 5, 6, 7, 8] } } }, "space", /72 points.*at most 64/],
    [{ strategy: "random", trials: 65, space: { "job.batchSize": { min: 1, max: 64, integer: true } } }, "trials", /64/],
    [{ strategy: "random", space: { "job.batchSize": { min: 1, max: 64, integer: true } } }, "trials", /required/],
    [{ space: { "job.batchSize": { min: 1, max: 64 } } }, "space.job.batchSize", /a grid needs a list of values/],
    [{ space: { "job.epochs": { values: [1, 2] } }, asha: { minEpochs: 2 } }, "asha.minEpochs", /below the trials' epochs/],
  ];
  for (const [payload, path, message] of cases) {
    const res = await post(payload);
    assert.equal(res.statusCode, 400, `${JSON.stringify(payload)}: ${res.body}`);
    const problem = res.json().errors[0];
    assert.equal(problem.path, path, res.body);
    assert.match(problem.message, message, res.body);
  }
  assert.deepEqual({ studies: await env.app.db.study.count(), jobs: await env.app.db.trainingJob.count(), models: await env.app.db.model.count() }, before, "nothing was stored");
  assert.equal((await inject({ url: "/v1/studies/00000000-0000-4000-8000-000000000000", headers: auth })).statusCode, 404);
});

test("Redis down: a study answers 503 and leaves no study, trial job or trial model behind", async () => {
  // Port 1 on loopback: nothing listens there, so connections are refused at once.
  const broken = await createTestEnv({ REDIS_URL: "redis://127.0.0.1:1" });
  try {
    const headers = await broken.tenant("acme");
    const brokenInject = broken.app.inject.bind(broken.app);
    const brokenDataset = await uploadIris(brokenInject, headers);
    await createModel(brokenInject, headers, "iris");
    const res = await brokenInject({
      method: "POST", url: "/v1/studies", headers,
      payload: { model: "iris", dataset: brokenDataset, strategy: "grid", space: { "spec.layers[0].units": { values: [4, 8, 16] } } },
    });
    assert.equal(res.statusCode, 503, res.body);
    assert.equal(await broken.app.db.study.count(), 0);
    assert.equal(await broken.app.db.trainingJob.count(), 0);
    assert.deepEqual((await broken.app.db.model.findMany({ select: { name: true } })).map((m) => m.name), ["iris"]);
  } finally {
    await broken.close();
  }
});
