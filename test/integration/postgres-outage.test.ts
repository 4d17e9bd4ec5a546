// Postgres goes away for 20 s in the middle of training. An unreachable database is not the job's
// fault: the running attempt waits for it (bounded by TRAINYARD_DEPENDENCY_WAIT_MS), then goes
// on where it was. The job succeeds in its first attempt, says what it waited for, and stores
// every epoch once.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import { apiConfigSchema, parseConfig, workerConfigSchema } from "../../lib/config/env.ts";
import { buildApp, type App } from "../../services/app.ts";
import { REDIS_URL, cleanRedis } from "../helpers/app.ts";
import { startPostgres, waitForPostgres, type OwnPostgres } from "../helpers/servers.ts";
import { createModel, uploadIris, waitForJob } from "../helpers/training.ts";
import { envOf, WorkerProcess } from "../helpers/worker-control.ts";

let pg: OwnPostgres;
let app: App;
let worker: WorkerProcess | undefined;
const prefix = `tytest-${randomBytes(4).toString("hex")}`;
const adminKey = randomBytes(32).toString("hex");

before(async () => {
  pg = await startPostgres();
  const env = { DATABASE_URL: pg.url, REDIS_URL, TRAINYARD_QUEUE_PREFIX: prefix, TRAINYARD_ADMIN_KEY: adminKey, LOG_LEVEL: "silent", TRAINYARD_BACKEND: process.env.TRAINYARD_BACKEND ?? "auto" };
  app = await buildApp(parseConfig(apiConfigSchema, env));
  await app.ready();
  const workerConfig = parseConfig(workerConfigSchema, { ...env, TRAINYARD_JOB_LOCK_MS: "2000", TRAINYARD_RECONCILE_INTERVAL_MS: "1000" });
  worker = await new WorkerProcess(envOf(workerConfig)).start();
});
after(async () => {
  await worker?.stop();
  await app?.close();
  await pg?.stop();
  await cleanRedis(prefix);
});

test("a job waits out a 20-second Postgres outage and finishes in its first attempt", async () => {
  const inject = app.inject.bind(app);
  const key = await inject({ method: "POST", url: "/v1/api-keys", headers: { authorization: `Bearer ${adminKey}` }, payload: { tenant: "acme" } });
  const auth = { authorization: `Bearer ${key.json().key}` };
  const dataset = await uploadIris(inject, auth);
  await createModel(inject, auth, "iris");
  const epochs = 30;
  const job = (await inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "iris", dataset, epochs, batchSize: 4, seed: 3 } })).json();
  await waitForJob(inject, auth, job.id, (j) => j.progress.epoch >= 2);

  await pg.kill();
  await sleep(20_000);
  await pg.start();
  await waitForPostgres(pg.url);

  const done = await waitForJob(inject, auth, job.id, undefined, 120_000);
  assert.equal(done.status, "succeeded", JSON.stringify(done));
  assert.equal(done.attempts, 1, "the outage used up no attempt");
  assert.match(done.lastInterruption, /attempt 1 waited \d+\.\d s for an unreachable database \(1 outage\) and went on at epoch \d+/);
  const series = (await inject({ url: `/v1/training-jobs/${job.id}/metrics`, headers: auth })).json();
  assert.deepEqual(series.epochs.map((e: { epoch: number }) => e.epoch), Array.from({ length: epochs }, (_, i) => i + 1), "every epoch once");
});
