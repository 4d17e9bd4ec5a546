// Twelve SIGKILLs in a row at random moments of one job — of the training child or of the worker,
// in the middle of an epoch or while the child is still starting — end with the job succeeded and
// every epoch's metrics stored exactly once. The moments come from a seeded generator
// (TRAINYARD_CHAOS_SEED to replay one); the seed is printed.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import { mulberry32 } from "../../lib/engine/seeded-random.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { createModel, uploadIris, waitForJob } from "../helpers/training.ts";
import { childrenOf, envOf, killPid, WorkerProcess } from "../helpers/worker-control.ts";

let env: TestEnv;
let worker: WorkerProcess | undefined;
before(async () => {
  env = await createTestEnv();
});
after(async () => {
  await worker?.stop();
  await env?.close();
});

const KILLS = 12;
const EPOCHS = 50;

test(`${KILLS} SIGKILLs at random moments of one job end with it succeeded and every epoch stored once`, async (t) => {
  const seed = Number(process.env.TRAINYARD_CHAOS_SEED ?? Date.now() % 2 ** 31);
  t.diagnostic(`seed ${seed} (TRAINYARD_CHAOS_SEED=${seed} replays it)`);
  const random = mulberry32(seed);
  const inject = env.app.inject.bind(env.app);
  const auth = await env.tenant("acme");
  const dataset = await uploadIris(inject, auth);
  await createModel(inject, auth, "iris");
  const workerEnv = envOf(env.workerConfig, { TRAINYARD_JOB_LOCK_MS: "2000", TRAINYARD_RETRY_DELAY_MS: "100", TRAINYARD_RECONCILE_INTERVAL_MS: "2000" });
  worker = await new WorkerProcess(workerEnv).start();
  const row = (id: string) => env.app.db.trainingJob.findUniqueOrThrow({ where: { id } });

  const job = (await inject({
    method: "POST", url: "/v1/training-jobs", headers: auth,
    payload: { model: "iris", dataset, epochs: EPOCHS, batchSize: 2, optimizer: { type: "adam", learningRate: 0.005 }, seed: 7 },
  })).json();

  const seen = new Set<number>();
  const log: string[] = [];
  let lastWasStartup = false;
  for (let k = 1; k <= KILLS; k++) {
    // Never two start-up kills in a row: those attempts make no progress, and enough of them in a
    // row rightly fail a job (job-deaths.test.ts); here every other death follows some progress.
    const startup: boolean = !lastWasStartup && random() < 0.35;
    const target = random() < 0.5 ? "child" : "worker";
    if (startup) {
      // The moment a fresh child appears (a retry, or a new worker's first), within 0–300 ms.
      const child = await worker.nextChild(seen, 60_000);
      seen.add(child);
      await sleep(Math.floor(random() * 300));
    } else {
      const from = (await row(job.id)).epoch;
      const deadline = Date.now() + 90_000;
      while ((await row(job.id)).epoch <= from) {
        assert.ok(Date.now() < deadline, `no progress after kill ${k - 1}; log: ${log.join(", ")}\n${worker.proc.output().slice(-3000)}`);
        await sleep(10);
      }
      await sleep(Math.floor(random() * 250));
    }
    const state = await row(job.id);
    assert.notEqual(state.status, "succeeded", `the job finished before kill ${k}; make it longer`);
    assert.ok(state.status === "running" || state.status === "queued", `kill ${k}: ${state.status} ${JSON.stringify(state.error)}`);
    if (target === "child") {
      const kids = childrenOf(worker.pid);
      for (const c of kids) seen.add(c);
      kids.forEach(killPid);
    } else {
      await worker.kill();
      worker = await new WorkerProcess(workerEnv).start();
    }
    log.push(`${k}:${target}${startup ? "@start" : ""}@e${state.epoch}`);
    lastWasStartup = startup;
  }
  t.diagnostic(`kills: ${log.join(" ")}`);

  const done = await waitForJob(inject, auth, job.id, undefined, 240_000);
  assert.equal(done.status, "succeeded", `${JSON.stringify(done)}\n${worker.proc.output().slice(-3000)}`);
  const series = (await inject({ url: `/v1/training-jobs/${job.id}/metrics`, headers: auth })).json();
  assert.deepEqual(series.epochs.map((e: { epoch: number }) => e.epoch), Array.from({ length: EPOCHS }, (_, i) => i + 1), "every epoch once");
  const points = await env.app.db.metricPoint.groupBy({ by: ["epoch", "name"], where: { jobId: job.id }, _count: true });
  assert.ok(points.every((p) => p._count === 1), "no metric stored twice");
  t.diagnostic(`attempts ${done.attempts}; last interruption: ${done.lastInterruption}`);
});
