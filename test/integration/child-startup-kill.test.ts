// Issue 7 item 7: a training child killed while it is starting must not wedge its worker.
// Kill -9 the sandboxed child mid-training, then kill -9 the replacement BullMQ forks for the retry
// the moment it appears (it is still loading the processor file). Before the workaround in
// workers/sandbox-startup-guard.ts the job stayed `running` forever with its lock renewed and no
// child, and the worker took no other job; now the start-up failure fails that attempt, the job
// is retried, resumes from its checkpoint and succeeds, and the worker takes the next job.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { Redis } from "ioredis";
import { createTestEnv, REDIS_URL, type TestEnv } from "../helpers/app.ts";
import { startProcess } from "../helpers/processes.ts";
import { createModel, uploadIris, waitForJob } from "../helpers/training.ts";

let env: TestEnv;
after(async () => {
  await env?.close();
});
before(async () => {
  env = await createTestEnv();
});

/** Whether `pid` is one of BullMQ's sandboxed children (its command line runs BullMQ's main.js). */
function isSandboxChild(pid: number): boolean {
  try {
    return /bullmq[\\/]dist[\\/].*main\.js/.test(readFileSync(`/proc/${pid}/cmdline`, "utf8"));
  } catch {
    return false;
  }
}

/** The live sandboxed children of `pid`, found by their parent (never by name across the machine). */
function childrenOf(pid: number): number[] {
  const pids: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const list = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
      if (list) pids.push(...list.split(/\s+/).map(Number));
    }
  } catch {
    // the process is gone
  }
  return pids.filter(isSandboxChild);
}

/** Polls `pid`'s children every few milliseconds until one not in `known` appears. */
async function newChildOf(pid: number, known: Set<number>, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const fresh = childrenOf(pid).find((c) => !known.has(c));
    if (fresh !== undefined) return fresh;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`no new child of ${pid} within ${timeoutMs} ms`);
}

test("a training child killed while starting fails that attempt; the job resumes and the worker keeps taking jobs", async (t) => {
  const auth = await env.tenant("acme");
  const inject = env.app.inject.bind(env.app);
  const dataset = await uploadIris(inject, auth);
  await createModel(inject, auth, "iris");
  const epochs = 20;
  const body = { model: "iris", dataset, epochs, batchSize: 4, optimizer: { type: "adam", learningRate: 0.01 }, seed: 7 };

  const workerEnv = Object.fromEntries(Object.entries(env.workerConfig).map(([k, v]) => [k, String(v)]));
  const worker = startProcess("workers/worker.ts", workerEnv);
  const seen = new Set<number>();
  const redis = new Redis(REDIS_URL);
  try {
    await worker.waitFor(/consuming 'training'/);
    const workerPid = worker.child.pid!;
    const job = (await inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: body })).json();
    await waitForJob(inject, auth, job.id, (j) => j.progress.epoch >= 2, 60_000);

    // 1. Kill the child that is training (attempt 1 fails; BullMQ retries after a 2 s backoff).
    const first = await newChildOf(workerPid, seen, 5_000);
    seen.add(first);
    process.kill(first, "SIGKILL");

    // 2. Kill the replacement 200 ms after it is forked, while it is still loading the processor
    // (tsx, tfjs and Prisma: over a second). Not at once: a child killed before the worker has
    // written BullMQ's Init message to it fails the send (EPIPE), a path BullMQ handles.
    const second = await newChildOf(workerPid, seen, 20_000);
    seen.add(second);
    await new Promise((r) => setTimeout(r, 200));
    process.kill(second, "SIGKILL");

    // 3. The worker must take other jobs, and the killed job must finish.
    const other = (await inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { ...body, epochs: 3 } })).json();
    const stuck = async () => {
      const state = (id: string) => inject({ url: `/v1/training-jobs/${id}`, headers: auth }).then((r) => r.json());
      const [j1, j2] = await Promise.all([state(job.id), state(other.id)]);
      const lockTtl = await redis.pttl(`${env.workerConfig.TRAINYARD_QUEUE_PREFIX}:training:${job.id}:lock`);
      return `stuck after a kill during child start-up: job ${j1.status} at epoch ${j1.progress?.epoch}, ` +
        `its lock still renewed (pttl ${lockTtl} ms, lock duration ${env.workerConfig.TRAINYARD_JOB_LOCK_MS} ms); ` +
        `second job ${j2.status}; children of the worker: [${childrenOf(workerPid).join(", ")}]\nworker output:\n${worker.output().slice(-2000)}`;
    };
    // Retry backoffs are 2 s then 4 s; the rest of the training takes seconds. 60 s is ample.
    const done = await waitForJob(inject, auth, job.id, undefined, 60_000).catch(async () => assert.fail(await stuck()));
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    const otherDone = await waitForJob(inject, auth, other.id, undefined, 30_000).catch(async () => assert.fail(await stuck()));
    assert.equal(otherDone.status, "succeeded", JSON.stringify(otherDone));

    // The second kill did land during start-up, and the retry resumed from a checkpoint.
    assert.match(worker.output(), new RegExp(`job ${job.id} failed, will retry: Error initializing child`), worker.output());
    assert.match(worker.output(), new RegExp(`job ${job.id}: resuming from the checkpoint of epoch \\d+`), worker.output());
    const row = await env.app.db.trainingJob.findUniqueOrThrow({ where: { id: job.id } });
    assert.equal(row.attempts, 2, "claimed by the first child and the third; the child killed while starting never ran it");
    const series = (await inject({ url: `/v1/training-jobs/${job.id}/metrics`, headers: auth })).json();
    assert.deepEqual(series.epochs.map((e: { epoch: number }) => e.epoch), Array.from({ length: epochs }, (_, i) => i + 1), "every epoch once");
    assert.equal(worker.child.exitCode, null, "the same worker process did all this");
    t.diagnostic(`killed child ${first} mid-training and child ${second} at start-up; worker log:\n` + worker.output().split("\n").filter((l) => /job |child /.test(l)).join("\n"));
  } finally {
    redis.disconnect();
    const left = childrenOf(worker.child.pid!);
    await worker.stop("SIGKILL");
    // Its children exit on 'disconnect'; make sure of it (only the ones this worker forked).
    for (const pid of left) {
      try {
        if (isSandboxChild(pid)) process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
});
