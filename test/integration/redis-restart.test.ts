// Redis restarts empty: Postgres is the source of truth. With two jobs running and two queued,
// Redis is SIGKILLed and started again with nothing in it. The reconciler re-enqueues what
// Postgres says is queued or running; the running ones resume from their checkpoints, a cancel
// asked after the restart stops its job, and every epoch is stored once.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { startRedis, type OwnRedis } from "../helpers/servers.ts";
import { createModel, uploadIris, waitForJob } from "../helpers/training.ts";
import { envOf, WorkerProcess } from "../helpers/worker-control.ts";

let redis: OwnRedis;
let env: TestEnv;
let worker: WorkerProcess | undefined;

before(async () => {
  redis = await startRedis();
  env = await createTestEnv({ REDIS_URL: redis.url });
});
after(async () => {
  await worker?.stop();
  await env?.close();
  await redis?.stop();
});

test("jobs queued and running when Redis restarts empty all finish (or cancel), each epoch stored once", async () => {
  const inject = env.app.inject.bind(env.app);
  const auth = await env.tenant("acme");
  const dataset = await uploadIris(inject, auth);
  await createModel(inject, auth, "iris");
  worker = await new WorkerProcess(
    envOf(env.workerConfig, { TRAINYARD_WORKER_CONCURRENCY: "2", TRAINYARD_JOB_LOCK_MS: "2000", TRAINYARD_RECONCILE_INTERVAL_MS: "1000", TRAINYARD_RETRY_DELAY_MS: "100" }),
  ).start();

  const epochs = 30;
  const body = (seed: number) => ({ model: "iris", dataset, epochs, batchSize: 4, optimizer: { type: "adam", learningRate: 0.01 }, seed });
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    const res = await inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: body(i + 1) });
    assert.equal(res.statusCode, 202, res.body);
    ids.push(res.json().id);
  }
  const [a, b] = ids;
  const row = (id: string) => env.app.db.trainingJob.findUniqueOrThrow({ where: { id } });
  // Two running (concurrency 2) with some progress, two still queued.
  const deadline = Date.now() + 60_000;
  while ((await row(a)).epoch < 2 || (await row(b)).epoch < 2) {
    assert.ok(Date.now() < deadline, "the first two jobs did not start");
    await sleep(20);
  }
  assert.deepEqual((await Promise.all(ids.slice(2).map(row))).map((r) => r.status), ["queued", "queued"]);

  await redis.kill();
  await sleep(3000);
  await redis.start();

  // A cancel asked after the restart stops its job, though the queue has forgotten it.
  let cancel;
  for (let tries = 0; tries < 50; tries++) {
    cancel = await inject({ method: "POST", url: `/v1/training-jobs/${b}/cancel`, headers: auth });
    if (cancel.statusCode === 202) break;
    await sleep(100); // the API's Redis connection is still coming back (503)
  }
  assert.equal(cancel!.statusCode, 202, cancel!.body);

  const final = await Promise.all(ids.map((id) => waitForJob(inject, auth, id, undefined, 120_000)));
  assert.deepEqual(final.map((j) => j.status), ["succeeded", "cancelled", "succeeded", "succeeded"], JSON.stringify(final.map((j) => [j.status, j.error])));
  for (const id of [a, ids[2], ids[3]]) {
    const series = (await inject({ url: `/v1/training-jobs/${id}/metrics`, headers: auth })).json();
    assert.deepEqual(series.epochs.map((e: { epoch: number }) => e.epoch), Array.from({ length: epochs }, (_, i) => i + 1), `job ${id}: every epoch once`);
  }
  assert.equal(await env.app.db.modelVersion.count(), 3, "one version per finished job");
});
