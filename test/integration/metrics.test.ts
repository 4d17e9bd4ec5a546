// /metrics against a real Postgres and Redis: request counters by route pattern (never the raw
// URL), the predict route's model label, training jobs by status as Postgres has them, the
// training queue's depth as BullMQ has it, busy time of the event loop and the inference threads,
// and series that do not grow with random URLs.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { createModel, uploadIris } from "../helpers/training.ts";
import { trainInProcess } from "../helpers/train-in-process.ts";

const METRICS_TOKEN = randomBytes(24).toString("hex");

/** The samples of one metric: label sets as objects, with their values. */
function samples(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

describe("metrics", () => {
  let env: TestEnv;
  let auth: { authorization: string };

  before(async () => {
    env = await createTestEnv({ TRAINYARD_METRICS_TOKEN: METRICS_TOKEN });
    auth = await env.tenant();
  });
  after(() => env?.close());

  const scrape = async () => {
    const res = await env.app.inject({ method: "GET", url: "/metrics", headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    assert.equal(res.statusCode, 200, res.body);
    return res;
  };

  test("requests by route pattern and model; jobs by status and queue depth as Postgres and BullMQ have them", async () => {
    // The first scrape of this app: job and queue counts are cached for a few seconds after one.
    const inject = env.app.inject.bind(env.app);
    const dataset = await uploadIris(inject, auth);
    await createModel(inject, auth, "iris");
    await trainInProcess(env, auth, "iris", dataset);
    // A second job stays queued (no worker here): one succeeded, one queued.
    const queued = await inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "iris", dataset, epochs: 1 } });
    assert.equal(queued.statusCode, 202, queued.body);

    for (let i = 0; i < 3; i++) {
      const ok = await inject({ method: "POST", url: "/v1/models/iris:predict", headers: auth, payload: { instances: [[5.1, 3.5, 1.4, 0.2]] } });
      assert.equal(ok.statusCode, 200, ok.body);
    }
    const missing = await inject({ method: "POST", url: `/v1/models/nope-${randomBytes(4).toString("hex")}:predict`, headers: auth, payload: { instances: [[1, 2, 3, 4]] } });
    assert.equal(missing.statusCode, 404);
    await inject({ method: "GET", url: `/v1/datasets/${dataset}`, headers: auth });

    const text = (await scrape()).body;
    const requests = samples(text, "trainyard_http_requests_total");
    const find = (l: Record<string, string>) => requests.find((s) => Object.entries(l).every(([k, v]) => s.labels[k] === v));
    assert.equal(find({ route: "/v1/models/:name:predict", method: "POST", status: "200", model: "iris" })?.value, 3, text);
    assert.equal(find({ route: "/v1/models/:name:predict", status: "404", model: "unknown" })?.value, 1);
    assert.equal(find({ route: "/v1/datasets/:id", method: "GET", status: "200", model: "" })?.value, 1);
    assert.ok(!requests.some((s) => s.labels.route.includes(dataset)), "no raw URL becomes a label");
    const latency = samples(text, "trainyard_http_request_duration_seconds_count");
    assert.ok(latency.some((s) => s.labels.route === "/v1/models/:name:predict" && s.labels.model === "iris" && s.value === 3));

    // Busy time of the loops that limit throughput: the API's, and the inference thread's (which loaded and ran iris).
    const loop = samples(text, "trainyard_event_loop_busy_seconds_total")[0]?.value ?? 0;
    const thread = samples(text, "trainyard_inference_thread_busy_seconds_total")[0]?.value ?? 0;
    assert.ok(loop > 0 && thread > 0, `event loop ${loop} s, inference threads ${thread} s`);
    const later = (await scrape()).body;
    assert.ok((samples(later, "trainyard_event_loop_busy_seconds_total")[0]?.value ?? 0) >= loop, "a total never goes down");

    const rows = await env.app.db.trainingJob.groupBy({ by: ["status"], _count: { _all: true } });
    const jobs = samples(text, "trainyard_training_jobs");
    assert.equal(jobs.length, 6, "one series per status");
    for (const s of jobs) assert.equal(s.value, rows.find((r) => r.status === s.labels.status)?._count._all ?? 0, `status ${s.labels.status}`);
    assert.equal(jobs.find((s) => s.labels.status === "queued")?.value, 1);
    assert.equal(jobs.find((s) => s.labels.status === "succeeded")?.value, 1);

    const counts = await env.app.trainingQueue.getJobCounts("waiting", "active", "delayed", "prioritized");
    const depth = samples(text, "trainyard_queue_jobs");
    assert.equal(depth.length, 4);
    for (const s of depth) {
      assert.equal(s.labels.queue, "training");
      assert.equal(s.value, counts[s.labels.state], `state ${s.labels.state}`);
    }
    assert.ok(depth.reduce((a, s) => a + s.value, 0) >= 1, "the queued job is in the queue");
  });

  test("only the metrics token or the admin key may read /metrics", async () => {
    assert.equal((await env.app.inject({ method: "GET", url: "/metrics" })).statusCode, 401);
    const asTenant = await env.app.inject({ method: "GET", url: "/metrics", headers: auth });
    assert.equal(asTenant.statusCode, 401);
    assert.match(asTenant.headers["content-type"] as string, /problem\+json/);
    assert.equal((await env.app.inject({ method: "GET", url: "/metrics", headers: { authorization: `Bearer ${env.adminKey}` } })).statusCode, 200);
    const res = await scrape();
    assert.match(res.headers["content-type"] as string, /^text\/plain; version=0\.0\.4/);
  });

  test("random URLs and model names do not add series", async () => {
    const burst = async () => {
      for (let i = 0; i < 20; i++) {
        const r = randomBytes(6).toString("hex");
        await env.app.inject({ method: "GET", url: `/v1/${r}`, headers: auth });
        await env.app.inject({ method: "GET", url: `/${r}?q=${r}` });
        await env.app.inject({ method: "POST", url: `/v1/models/m${r}:predict`, headers: auth, payload: { instances: "not a list" } });
        await env.app.inject({ method: "GET", url: `/v1/datasets/${r}`, headers: auth });
      }
    };
    await burst();
    const before = samples((await scrape()).body, "trainyard_http_requests_total");
    await burst();
    const afterBurst = samples((await scrape()).body, "trainyard_http_requests_total");
    assert.equal(afterBurst.length, before.length);
    const unmatched = afterBurst.filter((s) => s.labels.route === "unmatched");
    assert.ok(unmatched.length >= 1 && unmatched.reduce((a, s) => a + s.value, 0) >= 80);
    for (const s of afterBurst) assert.ok(!/[0-9a-f]{12}/.test(Object.values(s.labels).join(" ")), JSON.stringify(s.labels));
  });

  test("the runtime's numbers, once connected, are exposed as totals", async () => {
    // The app's own runtime is connected already (and the counters keep what it counted): from here, deltas.
    const counted = (text: string, name: string) => samples(text, name)[0]?.value ?? 0;
    const base = await scrape().then((r) => ({ hits: counted(r.body, "trainyard_model_cache_hits_total"), evictions: counted(r.body, "trainyard_model_cache_evictions_total") }));
    let hits = 10;
    // Three batches of 4, 16 and 64 rows, as the runtime keeps them: cumulative counts per bound.
    const batchSize = { buckets: [1, 8, 32, 64], counts: [0, 1, 2, 3], count: 3, sum: 84 };
    env.app.metrics.setRuntimeStatsSource(() => ({ cacheHits: hits, cacheMisses: 2, evictions: 1, cacheBytes: 4096, loadedModels: 1, batchSize }));
    let text = (await scrape()).body;
    assert.equal(samples(text, "trainyard_inference_batch_size_count")[0]?.value, 3);
    assert.equal(samples(text, "trainyard_inference_batch_size_sum")[0]?.value, 84);
    assert.deepEqual(samples(text, "trainyard_inference_batch_size_bucket").map((s) => [s.labels.le, s.value]), [["1", 0], ["8", 1], ["32", 2], ["64", 3], ["+Inf", 3]]);
    assert.equal(counted(text, "trainyard_model_cache_hits_total"), base.hits + 10);
    assert.equal(samples(text, "trainyard_model_cache_bytes")[0]?.value, 4096);
    hits = 15;
    text = (await scrape()).body;
    assert.equal(samples(text, "trainyard_inference_batch_size_count")[0]?.value, 3, "totals are not added twice");
    assert.equal(counted(text, "trainyard_model_cache_hits_total"), base.hits + 15);
    assert.equal(counted(text, "trainyard_model_cache_evictions_total"), base.evictions + 1);
    env.app.metrics.setRuntimeStatsSource(undefined);
  });
});
