// The pieces of a job's event stream that need no Redis: the pace and ETA a worker reports and how
// often it writes them, how stream entries are decoded and SSE frames written, and that publishing
// to a Redis that does not answer neither throws nor waits.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Redis } from "ioredis";
import { decodeEntry, isFinal, JobEventPublisher, PROGRESS_EVENT_INTERVAL_MS, PROGRESS_KEY_INTERVAL_MS, ProgressReporter, sseFrame, type JobEvent, type ProgressSnapshot } from "../../lib/training/job-events.ts";

function fakePublisher() {
  const snapshots: ProgressSnapshot[] = [];
  const events: JobEvent[] = [];
  const publisher = {
    setProgress: async (_id: string, s: ProgressSnapshot) => void snapshots.push(s),
    publish: async (_id: string, e: JobEvent) => (events.push(e), "1-0"),
  } as unknown as JobEventPublisher;
  return { publisher, snapshots, events };
}

const tick = () => new Promise((r) => setImmediate(r));

test("progress is written at a bounded rate, whatever the batch rate", async () => {
  const { publisher, snapshots, events } = fakePublisher();
  let now = 1_000_000;
  const reporter = new ProgressReporter(publisher, "job", { epochs: 1000, trainRows: 100_000, startedAt: now }, () => now);
  // 3 s of 10 ms batches: 300 batches.
  for (let b = 1; b <= 300; b++) {
    now += 10;
    reporter.batch(1, b, 1000, 100);
    await tick();
  }
  assert.ok(snapshots.length >= 5 && snapshots.length <= 1 + 3000 / PROGRESS_KEY_INTERVAL_MS, `${snapshots.length} key writes`);
  assert.ok(events.length >= 2 && events.length <= 1 + 3000 / PROGRESS_EVENT_INTERVAL_MS, `${events.length} progress events`);
  for (let i = 1; i < snapshots.length; i++) assert.ok(snapshots[i].at - snapshots[i - 1].at >= PROGRESS_KEY_INTERVAL_MS);
  const last = snapshots.at(-1)!;
  assert.ok(Math.abs(last.samplesPerSecond - 10_000) < 1, `100 rows every 10 ms: ${last.samplesPerSecond}`);
  assert.equal(last.epoch, 0, "no epoch finished yet");
  assert.equal(events[0].type, "progress");
});

test("the ETA is paced by the rows' rate, then by the finished epochs' wall time", () => {
  const { publisher } = fakePublisher();
  let now = 0;
  const reporter = new ProgressReporter(publisher, "job", { epochs: 5, trainRows: 1000, startedAt: -2000 }, () => now);
  // Epoch 1: 10 batches of 100 rows, 10 ms each (10 000 rows/s).
  for (let b = 1; b <= 10; b++) {
    now += 10;
    reporter.batch(1, b, 10, 100);
    if (b === 5) {
      const p = reporter.progress(1, 5, 10);
      // Half an epoch of rows, then four epochs of rows, at 10 000 rows/s.
      assert.ok(Math.abs(p.remainingSeconds! - (0.05 + 0.4)) < 1e-6, JSON.stringify(p));
      assert.equal(p.elapsedSeconds, 2.05);
      assert.equal(p.epoch, 0);
    }
  }
  // Validation and the checkpoint take 0.4 s more: an epoch is 0.5 s of wall time.
  now += 400;
  reporter.epochEnd();
  for (let b = 1; b <= 5; b++) {
    now += 10;
    reporter.batch(2, b, 10, 100);
  }
  const p = reporter.progress(2, 5, 10);
  assert.equal(p.epoch, 1);
  assert.equal(p.batch, 5);
  assert.equal(p.samplesPerSecond, 10_000);
  // The rest of epoch 2 (0.05 s of rows + 0.4 s) and three more epochs of 0.5 s.
  assert.ok(Math.abs(p.remainingSeconds! - (0.45 + 1.5)) < 0.01, JSON.stringify(p));
});

test("stream entries decode to events, and anything else is skipped", () => {
  assert.deepEqual(decodeEntry(["type", "epoch", "data", JSON.stringify({ epoch: 2, epochs: 3, metrics: { loss: 0.5 } })]), { type: "epoch", data: { epoch: 2, epochs: 3, metrics: { loss: 0.5 } } });
  assert.deepEqual(decodeEntry(["type", "status", "data", '{"status":"failed","error":"boom"}']), { type: "status", data: { status: "failed", error: "boom" } });
  // Data passes as written: a field this reader does not know still reaches the client.
  assert.deepEqual(decodeEntry(["type", "status", "data", '{"status":"running","newField":1}']), { type: "status", data: { status: "running", newField: 1 } });
  assert.equal(isFinal(decodeEntry(["type", "status", "data", '{"status":"exploded"}'])!), false);
  assert.equal(isFinal(decodeEntry(["type", "status", "data", '{"status":"cancelled"}'])!), true);
  assert.equal(decodeEntry(["type", "epoch", "data", "[1]"]), undefined);
  assert.equal(decodeEntry(["type", "nonsense", "data", "{}"]), undefined);
  assert.equal(decodeEntry(["type", "epoch", "data", "{not json"]), undefined);
  assert.equal(decodeEntry([]), undefined);
});

test("an SSE frame is id, event and one line of data, ended by a blank line", () => {
  assert.equal(sseFrame("status", { status: "queued" }, "1-0"), 'id: 1-0\nevent: status\ndata: {"status":"queued"}\n\n');
  assert.equal(sseFrame("end", { status: "succeeded" }), 'event: end\ndata: {"status":"succeeded"}\n\n');
  // Newlines inside values are escaped by JSON, so they cannot end the frame early.
  assert.equal(sseFrame("warning", { code: "x", message: "a\nb" }).split("\n\n").length, 2);
});

test("publishing to a Redis that does not answer loses the event and throws nothing", async () => {
  // Nothing listens on port 1. As the API's connection (no offline queue) and as a worker's (one).
  for (const options of [{ enableOfflineQueue: false }, { maxRetriesPerRequest: 1 }]) {
    const redis = new Redis({ port: 1, lazyConnect: true, retryStrategy: () => 50, ...options });
    redis.on("error", () => {});
    const publisher = new JobEventPublisher(redis, "p");
    try {
      assert.equal(await publisher.publishWithin("job", { type: "status", data: { status: "running" } }, 500), null);
      await publisher.setProgress("job", { epoch: 0, batch: 1, batches: 2, samplesPerSecond: 1, remainingSeconds: 1, at: 0 });
      await publisher.clearProgress("job");
      assert.deepEqual(await publisher.readProgress(["a", "b"]), [undefined, undefined]);
    } finally {
      redis.disconnect();
    }
  }
});
