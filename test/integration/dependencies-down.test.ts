// When Postgres or Redis does not answer, the API says 503 — not 500, and not a hang.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { createModel, uploadIris } from "../helpers/training.ts";

// Port 1 on loopback: nothing listens there, so connections are refused at once.
const DEAD_REDIS = "redis://127.0.0.1:1";
const DEAD_POSTGRES = "postgresql://postgres@127.0.0.1:1/nothing";

let healthy: TestEnv;
before(async () => {
  healthy = await createTestEnv();
});
after(async () => healthy?.close());

test("Redis down: queueing a job answers 503 and leaves no job row behind", async () => {
  // Same database as the healthy env, but a Redis that refuses connections.
  const broken = await createTestEnv({ REDIS_URL: DEAD_REDIS });
  try {
    const auth = await broken.tenant("acme");
    const inject = broken.app.inject.bind(broken.app);
    const dataset = await uploadIris(inject, auth);
    await createModel(inject, auth, "iris");
    const before = await broken.app.db.trainingJob.count();
    const res = await inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "iris", dataset } });
    assert.equal(res.statusCode, 503, res.body);
    assert.match(res.headers["content-type"] as string, /problem\+json/);
    assert.equal(await broken.app.db.trainingJob.count(), before, "the job row was removed");
    const ready = await inject({ url: "/readyz" });
    assert.equal(ready.statusCode, 503);
    assert.deepEqual(ready.json().checks, { postgres: true, redis: false });
  } finally {
    await broken.close();
  }
});

test("Postgres down: requests answer 503 and readyz says which dependency is missing", async () => {
  const { buildApp } = await import("../../services/app.ts");
  const app = await buildApp({ ...healthy.config, DATABASE_URL: DEAD_POSTGRES });
  try {
    const res = await app.inject({ method: "GET", url: "/v1/datasets", headers: { authorization: "Bearer ty_0123456789abcdef_" + "a".repeat(43) } });
    assert.equal(res.statusCode, 503, res.body);
    assert.doesNotMatch(res.body, /127\.0\.0\.1|ECONNREFUSED/, "no internals in the body");
    const ready = await app.inject({ url: "/readyz" });
    assert.equal(ready.statusCode, 503);
    assert.deepEqual(ready.json().checks, { postgres: false, redis: true });
  } finally {
    await app.close();
  }
});
