// Learning curves through the API: a job queued before any worker runs answers a picture saying it
// has no epochs yet; once a real worker has trained it (Iris, with a held-out test split), both
// pictures name its metrics, the PNG decodes to its size, and another tenant sees a 404.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import sharp from "sharp";
import { createTrainingWorker, type TrainingWorker } from "../../workers/training-worker.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { createModel, uploadIris, waitForJob } from "../helpers/training.ts";

let env: TestEnv;
let worker: TrainingWorker | undefined;
let auth: Record<string, string>;
let jobId: string;

before(async () => {
  env = await createTestEnv();
  auth = await env.tenant("acme");
  const inject = env.app.inject.bind(env.app);
  const iris = await uploadIris(inject, auth);
  await createModel(inject, auth, "iris");
  const res = await inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "iris", dataset: iris, epochs: 8, batchSize: 16, optimizer: { type: "adam", learningRate: 0.02 }, validationSplit: 0.2, testSplit: 0.2, seed: 3 } });
  assert.equal(res.statusCode, 202, res.body);
  jobId = res.json().id;
});
after(async () => {
  await worker?.close();
  await env?.close();
});

const get = (url: string, headers = auth) => env.app.inject({ method: "GET", url, headers });

test("a queued job's curves are a picture saying there are no epochs yet, never cached", async () => {
  // No worker has started yet, so the job is certainly still queued.
  const svg = await get(`/v1/training-jobs/${jobId}/curves.svg`);
  assert.equal(svg.statusCode, 200, svg.body);
  assert.equal(svg.headers["content-type"], "image/svg+xml");
  assert.equal(svg.headers["cache-control"], "no-store");
  assert.match(svg.body, /no epochs yet/);
  assert.match(svg.body, new RegExp(`iris — training job ${jobId}`));
  const png = await get(`/v1/training-jobs/${jobId}/curves.png`);
  assert.equal(png.statusCode, 200);
  assert.equal(png.headers["content-type"], "image/png");
  assert.equal((await sharp(png.rawPayload).metadata()).format, "png");
});

test("a trained job's curves show loss and accuracy, training, validation and test, as SVG and PNG", async () => {
  worker = createTrainingWorker(env.workerConfig, () => {});
  const done = await waitForJob(env.app.inject.bind(env.app), auth, jobId);
  assert.equal(done.status, "succeeded", JSON.stringify(done));

  const svg = await get(`/v1/training-jobs/${jobId}/curves.svg`);
  assert.equal(svg.statusCode, 200, svg.body);
  assert.equal(svg.headers["content-type"], "image/svg+xml");
  assert.equal(svg.headers["cache-control"], "private, max-age=3600", "a finished job's picture no longer changes");
  assert.equal(svg.headers["content-security-policy"], "default-src 'none'");
  for (const key of ["loss", "val_loss", "test_loss", "accuracy", "val_accuracy", "test_accuracy"]) assert.ok(svg.body.includes(`<title>${key}</title>`), `legend entry ${key}`);
  assert.match(svg.body, /succeeded · epoch 8 of 8/);
  const [, width, height] = svg.body.match(/^<svg[^>]* width="(\d+)" height="(\d+)"/)!;

  const png = await get(`/v1/training-jobs/${jobId}/curves.png`);
  assert.equal(png.statusCode, 200);
  assert.equal(png.headers["content-type"], "image/png");
  const meta = await sharp(png.rawPayload).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ["png", Number(width), Number(height)]);
});

test("an unknown job, another tenant's job and no key are problems, not pictures", async () => {
  for (const format of ["svg", "png"]) {
    const unknown = await get(`/v1/training-jobs/00000000-0000-4000-8000-000000000000/curves.${format}`);
    assert.equal(unknown.statusCode, 404, unknown.body);
    assert.match(String(unknown.headers["content-type"]), /^application\/problem\+json/);
    assert.equal(unknown.json().status, 404);

    const other = await get(`/v1/training-jobs/${jobId}/curves.${format}`, await env.tenant("globex"));
    assert.equal(other.statusCode, 404, other.body);
    assert.match(String(other.headers["content-type"]), /^application\/problem\+json/);

    const anonymous = await get(`/v1/training-jobs/${jobId}/curves.${format}`, {});
    assert.equal(anonymous.statusCode, 401);
  }
});
