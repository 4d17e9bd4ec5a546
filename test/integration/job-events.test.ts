// Watching a job: live progress with an ETA on GET, and its events as Server-Sent Events over real
// HTTP, from a real worker through the real Redis. A client that reconnects, to another API
// instance on the same database and queue prefix, misses nothing and sees nothing twice.
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { Redis } from "ioredis";
import { eventStreamKey, progressKey, PROGRESS_TTL_SECONDS } from "../../lib/training/job-events.ts";
import { buildApp, type App } from "../../services/app.ts";
import { REDIS_URL } from "../helpers/app.ts";
import { useTrainingEnv } from "../helpers/training-env.ts";
import { createModel, uploadIris, waitForJob } from "../helpers/training.ts";

const ctx = useTrainingEnv("watchers");

interface SseEvent {
  id?: string;
  event: string;
  data: any;
}

interface SseRead {
  status: number;
  contentType: string | null;
  events: SseEvent[];
  /** The server ended the response (rather than the client stopping). */
  closedByServer: boolean;
}

/** Reads an SSE response until the server closes it, or until `until(events)` holds (then disconnects). */
async function readSse(url: string, headers: Record<string, string>, until?: (events: SseEvent[]) => boolean): Promise<SseRead> {
  const abort = new AbortController();
  const res = await fetch(url, { headers, signal: abort.signal });
  const base = { status: res.status, contentType: res.headers.get("content-type") };
  if (res.status !== 200) {
    await res.body?.cancel();
    return { ...base, events: [], closedByServer: true };
  }
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return { ...base, events, closedByServer: true };
    buffer += decoder.decode(value, { stream: true });
    for (let i = buffer.indexOf("\n\n"); i >= 0; i = buffer.indexOf("\n\n")) {
      const block = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      const e: Partial<SseEvent> = {};
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const [field, ...rest] = line.split(":");
        const value = rest.join(":").replace(/^ /, "");
        if (field === "id") e.id = value;
        else if (field === "event") e.event = value;
        else if (field === "data") e.data = JSON.parse(value);
      }
      if (!e.event) continue;
      events.push(e as SseEvent);
      if (until?.(events)) {
        abort.abort();
        await reader.cancel().catch(() => {});
        return { ...base, events, closedByServer: false };
      }
    }
  }
}

async function listen(app: App): Promise<string> {
  await app.listen({ port: 0, host: "127.0.0.1" });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

/** Stream ids compare as (ms, seq). */
const idLess = (a: string, b: string) => {
  const [am, as] = a.split("-").map(BigInt);
  const [bm, bs] = b.split("-").map(BigInt);
  return am < bm || (am === bm && as < bs);
};

function assertIncreasingIds(events: SseEvent[]) {
  const stored = events.filter((e) => e.event !== "end");
  for (const e of stored) assert.match(e.id ?? "", /^\d+-\d+$/, `every stored event has an id: ${JSON.stringify(e)}`);
  for (let i = 1; i < stored.length; i++) assert.ok(idLess(stored[i - 1].id!, stored[i].id!), `ids increase: ${stored[i - 1].id} then ${stored[i].id}`);
}

let dataset: string;
let baseA: string;
let doneJob: { id: string; events: SseEvent[] } | undefined;

async function createJob(hyperparameters: object): Promise<string> {
  const inject = ctx.env.app.inject.bind(ctx.env.app);
  if (!dataset) {
    dataset = await uploadIris(inject, ctx.auth);
    await createModel(inject, ctx.auth, "iris");
    baseA = await listen(ctx.env.app);
  }
  const res = await inject({ method: "POST", url: "/v1/training-jobs", headers: ctx.auth, payload: { model: "iris", dataset, optimizer: { type: "adam", learningRate: 0.01 }, validationSplit: 0.2, seed: 7, ...hyperparameters } });
  assert.equal(res.statusCode, 202, res.body);
  return res.json().id;
}

test("GET shows a running job's batch, pace and ETA, kept in Redis under a TTL", { timeout: 120_000 }, async () => {
  const inject = ctx.env.app.inject.bind(ctx.env.app);
  // 120 training rows in batches of 2: 60 batches an epoch, far more epochs than the test waits for.
  const id = await createJob({ epochs: 500, batchSize: 2 });
  const job = await waitForJob(inject, ctx.auth, id, (j) => j.status === "running" && j.progress.batch !== undefined && j.progress.samplesPerSecond > 0, 60_000);
  const p = job.progress;
  assert.equal(p.epochs, 500);
  assert.equal(p.batches, 60);
  assert.ok(p.batch >= 0 && p.batch <= 60, JSON.stringify(p));
  assert.ok(p.samplesPerSecond > 0, JSON.stringify(p));
  assert.equal(typeof p.remainingSeconds, "number");
  assert.ok(p.remainingSeconds > 0, `hundreds of epochs remain: ${JSON.stringify(p)}`);
  assert.ok(p.elapsedSeconds >= 0, JSON.stringify(p));

  const redis = new Redis(REDIS_URL);
  try {
    const ttl = await redis.ttl(progressKey(ctx.env.config.TRAINYARD_QUEUE_PREFIX, id));
    assert.ok(ttl > 0 && ttl <= PROGRESS_TTL_SECONDS, `the progress key expires (ttl ${ttl})`);
    // Progress moves while the job runs.
    const later = await waitForJob(inject, ctx.auth, id, (j) => j.progress.epoch > p.epoch || j.progress.batch !== p.batch, 30_000);
    assert.equal(later.status, "running");

    assert.equal((await inject({ method: "POST", url: `/v1/training-jobs/${id}/cancel`, headers: ctx.auth })).statusCode, 202);
    const cancelled = await waitForJob(inject, ctx.auth, id);
    assert.equal(cancelled.status, "cancelled");
    assert.deepEqual(Object.keys(cancelled.progress).sort(), ["epoch", "epochs"], "no live progress once the job has stopped");
    assert.equal(await redis.exists(progressKey(ctx.env.config.TRAINYARD_QUEUE_PREFIX, id)), 0, "the worker removed its progress");
  } finally {
    redis.disconnect();
  }
});

test("an SSE client sees queued, running, progress, every epoch in order, the final status, then the stream closes", { timeout: 120_000 }, async () => {
  const id = await createJob({ epochs: 4, batchSize: 8 });
  const read = await readSse(`${baseA}/v1/training-jobs/${id}/events`, ctx.auth);
  assert.equal(read.status, 200);
  assert.match(read.contentType ?? "", /^text\/event-stream/);
  assert.ok(read.closedByServer);
  const { events } = read;
  assertIncreasingIds(events);
  const statuses = events.filter((e) => e.event === "status").map((e) => e.data.status);
  assert.deepEqual(statuses, ["queued", "running", "succeeded"], JSON.stringify(events.map((e) => e.event)));
  assert.equal(events.find((e) => e.event === "status" && e.data.status === "running")!.data.attempt, 1);
  const epochs = events.filter((e) => e.event === "epoch");
  assert.deepEqual(epochs.map((e) => e.data.epoch), [1, 2, 3, 4]);
  for (const e of epochs) assert.ok(Number.isFinite(e.data.metrics.loss) && Number.isFinite(e.data.metrics.val_accuracy), JSON.stringify(e.data));
  const progress = events.filter((e) => e.event === "progress");
  assert.ok(progress.length >= 1, "at least one progress event");
  for (const e of progress) {
    assert.equal(e.data.batches, 15);
    assert.equal(e.data.epochs, 4);
    assert.ok(e.data.samplesPerSecond > 0 && e.data.remainingSeconds >= 0, JSON.stringify(e.data));
  }
  // Progress comes during training: after running, before the final status.
  const index = (pred: (e: SseEvent) => boolean) => events.findIndex(pred);
  assert.ok(index((e) => e.event === "progress") > index((e) => e.data?.status === "running"));
  const final = events.at(-2)!;
  assert.equal(final.event, "status");
  assert.equal(final.data.status, "succeeded");
  assert.ok(final.data.metrics && Number.isFinite(final.data.metrics.loss));
  assert.deepEqual(events.at(-1), { event: "end", data: { status: "succeeded" } });

  const job = (await ctx.env.app.inject({ method: "GET", url: `/v1/training-jobs/${id}`, headers: ctx.auth })).json();
  assert.equal(job.status, "succeeded");
  assert.deepEqual(final.data.metrics, job.metrics, "the final event carries what Postgres recorded");
  doneJob = { id, events };
});

test("a client that reconnects to a second API instance with Last-Event-ID misses nothing and sees nothing twice", { timeout: 180_000 }, async () => {
  const prefix = ctx.env.config.TRAINYARD_QUEUE_PREFIX;
  const appB = await buildApp(ctx.env.config);
  const redis = new Redis(REDIS_URL);
  try {
    const baseB = await listen(appB);
    const id = await createJob({ epochs: 6, batchSize: 2 });
    // Instance A until the first epoch, then the client goes away mid-stream.
    const first = await readSse(`${baseA}/v1/training-jobs/${id}/events`, ctx.auth, (events) => events.some((e) => e.event === "epoch"));
    assert.equal(first.closedByServer, false);
    const lastId = first.events.at(-1)!.id!;
    // A's dedicated Redis connection for this client is closed once the client has gone.
    const readers = async () => (await redis.client("LIST") as string).split("\n").filter((l) => l.includes(`name=${prefix}:sse:${id}`)).length;
    for (let t = 0; (await readers()) > 0; t++) {
      assert.ok(t < 50, "the SSE reader's Redis connection was closed");
      await new Promise((r) => setTimeout(r, 100));
    }

    const second = await readSse(`${baseB}/v1/training-jobs/${id}/events`, { ...ctx.auth, "last-event-id": lastId });
    assert.equal(second.status, 200);
    assert.ok(second.closedByServer);
    assert.ok(second.events.length > 1, "instance B went on with the rest");
    const union = [...first.events, ...second.events];
    assertIncreasingIds(union);
    assert.ok(idLess(lastId, second.events[0].id!), "B starts after the last event A delivered");

    // The whole stream, replayed from B once the job has ended: exactly the two parts together.
    const whole = await readSse(`${baseB}/v1/training-jobs/${id}/events`, ctx.auth);
    assert.ok(whole.closedByServer);
    assert.deepEqual(union.map((e) => e.id), whole.events.map((e) => e.id));
    assert.deepEqual(union.filter((e) => e.event === "epoch").map((e) => e.data.epoch), [1, 2, 3, 4, 5, 6]);
    assert.equal(union.at(-2)!.data.status, "succeeded");
    assert.equal(union.at(-1)!.event, "end");
  } finally {
    redis.disconnect();
    await appB.close();
  }
});

test("an ended job's stream replays and ends at once; a client that has seen the end gets 204", { timeout: 60_000 }, async () => {
  assert.ok(doneJob, "the SSE test ran first");
  const { id, events } = doneJob;
  const started = Date.now();
  const replay = await readSse(`${baseA}/v1/training-jobs/${id}/events`, ctx.auth);
  // Well under the heartbeat (15 s): the server did not wait for anything.
  assert.ok(Date.now() - started < 10_000);
  assert.ok(replay.closedByServer);
  assert.deepEqual(replay.events, events);

  const final = events.at(-2)!;
  const after = await readSse(`${baseA}/v1/training-jobs/${id}/events`, { ...ctx.auth, "last-event-id": final.id! });
  assert.equal(after.status, 204, "EventSource stops reconnecting on 204");
  // Mid-stream ids replay the rest, through the query string too (for clients that cannot set headers).
  const rest = await readSse(`${baseA}/v1/training-jobs/${id}/events?lastEventId=${events[1].id}`, ctx.auth);
  assert.deepEqual(rest.events, events.slice(2));
});

test("a job whose events are gone (expired, lost) still gets its final status, from Postgres", { timeout: 60_000 }, async () => {
  assert.ok(doneJob);
  const { id } = doneJob;
  const redis = new Redis(REDIS_URL);
  try {
    await redis.del(eventStreamKey(ctx.env.config.TRAINYARD_QUEUE_PREFIX, id));
    const read = await readSse(`${baseA}/v1/training-jobs/${id}/events`, ctx.auth);
    assert.ok(read.closedByServer);
    assert.deepEqual(read.events.map((e) => [e.event, e.data.status]), [["status", "succeeded"], ["end", "succeeded"]]);
    assert.match(read.events[0].id!, /^\d+-\d+$/);
    // Written back to the stream: the next client (any replica) sees the same id.
    const again = await readSse(`${baseA}/v1/training-jobs/${id}/events`, ctx.auth);
    assert.equal(again.events[0].id, read.events[0].id);
  } finally {
    redis.disconnect();
  }
});

test("a job that fails ends its stream with the failure and its error; a cancelled one with cancelled", { timeout: 120_000 }, async () => {
  const inject = ctx.env.app.inject.bind(ctx.env.app);
  await createJob({ epochs: 1 }); // sets up the dataset and the listener if this test runs alone
  const data = await inject({ method: "POST", url: "/v1/datasets", headers: ctx.auth, payload: { name: "explode", features: [[1e18], [2e18], [3e18], [4e18]], labels: [1e18, 2e18, 3e18, 4e18] } });
  await createModel(inject, ctx.auth, "linear", { input: { shape: [1] }, layers: [{ type: "dense", units: 1 }] });
  const res = await inject({ method: "POST", url: "/v1/training-jobs", headers: ctx.auth, payload: { model: "linear", dataset: data.json().id, epochs: 5, optimizer: { type: "sgd", learningRate: 1 }, validationSplit: 0, preprocessing: { numeric: "none" } } });
  assert.equal(res.statusCode, 202, res.body);
  const failed = await readSse(`${baseA}/v1/training-jobs/${res.json().id}/events`, ctx.auth);
  const final = failed.events.at(-2)!;
  assert.equal(final.data.status, "failed");
  assert.match(final.data.error, /loss became (NaN|Infinity)/);
  assert.deepEqual(failed.events.at(-1), { event: "end", data: { status: "failed" } });

  // Cancelled while running: the cancel request is an event, then the worker's cancelled.
  const id = await createJob({ epochs: 500, batchSize: 2 });
  const stream = readSse(`${baseA}/v1/training-jobs/${id}/events`, ctx.auth);
  await waitForJob(inject, ctx.auth, id, (j) => j.status === "running" && j.progress.epoch >= 1, 60_000);
  assert.equal((await inject({ method: "POST", url: `/v1/training-jobs/${id}/cancel`, headers: ctx.auth })).statusCode, 202);
  const { events } = await stream;
  const statuses = events.filter((e) => e.event === "status").map((e) => [e.data.status, e.data.cancelRequested ?? false]);
  assert.deepEqual(statuses, [["queued", false], ["running", false], ["running", true], ["cancelled", true]]);
  assert.deepEqual(events.at(-1), { event: "end", data: { status: "cancelled" } });
});

test("an unknown job, or another tenant's, is a 404 problem", async () => {
  const other = await ctx.env.tenant("someone-else");
  assert.ok(doneJob);
  for (const [id, headers] of [["00000000-0000-4000-8000-000000000000", ctx.auth], [doneJob.id, other]] as const) {
    const res = await fetch(`${baseA}/v1/training-jobs/${id}/events`, { headers });
    assert.equal(res.status, 404);
    assert.match(res.headers.get("content-type") ?? "", /^application\/problem\+json/);
    assert.equal((await res.json()).status, 404);
  }
});
