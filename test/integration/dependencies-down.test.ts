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

test("Postgres saturated: a transaction that gets no pooled connection in time answers 503, and the next one succeeds", async () => {
  // Found by the fuzzer: while a connection could not be had within Prisma's transaction wait
  // (2 s), creating an API key answered 500. Here every connection of the API's pool is held.
  const { poolOf } = await import("../../lib/db/prisma.ts");
  const pool = poolOf(healthy.app.db);
  const held = await Promise.all(Array.from({ length: pool.options.max ?? 10 }, () => pool.connect()));
  const admin = { authorization: `Bearer ${healthy.adminKey}` };
  try {
    const res = await healthy.app.inject({ method: "POST", url: "/v1/api-keys", headers: admin, payload: { tenant: "busy" } });
    assert.equal(res.statusCode, 503, res.body);
    assert.match(res.headers["content-type"] as string, /problem\+json/);
  } finally {
    for (const c of held) c.release();
  }
  const res = await healthy.app.inject({ method: "POST", url: "/v1/api-keys", headers: admin, payload: { tenant: "busy" } });
  assert.equal(res.statusCode, 201, res.body);
  assert.equal(await healthy.app.db.tenant.count({ where: { name: "busy" } }), 1);
});
