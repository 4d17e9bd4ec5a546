import assert from "node:assert/strict";
import { test } from "node:test";
import { apiConfigSchema, ConfigError, parseConfig, workerConfigSchema } from "../../lib/config/env.ts";

const key = "k".repeat(32);

test("defaults fill everything but the admin key", () => {
  const c = parseConfig(apiConfigSchema, { TRAINYARD_ADMIN_KEY: key });
  assert.equal(c.PORT, 8080);
  assert.equal(c.DATABASE_URL, "postgresql://postgres@127.0.0.1:5432/trainyard");
  assert.equal(c.TRAINYARD_BACKEND, "auto");
  assert.ok(Object.isFrozen(c));
});

test("the API refuses to start without an admin key; every problem is listed", () => {
  assert.throws(() => parseConfig(apiConfigSchema, { PORT: "eighty", TRAINYARD_BACKEND: "tpu" }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    const joined = err.problems.join("\n");
    assert.match(joined, /TRAINYARD_ADMIN_KEY/);
    assert.match(joined, /PORT/);
    assert.match(joined, /TRAINYARD_BACKEND/);
    return true;
  });
  assert.throws(() => parseConfig(apiConfigSchema, { TRAINYARD_ADMIN_KEY: "short" }), /at least 32 characters/);
});

test("numbers are coerced from strings; URLs are checked", () => {
  const w = parseConfig(workerConfigSchema, { TRAINYARD_WORKER_CONCURRENCY: "3", TRAINYARD_JOB_LOCK_MS: "5000" });
  assert.equal(w.TRAINYARD_WORKER_CONCURRENCY, 3);
  assert.throws(() => parseConfig(workerConfigSchema, { REDIS_URL: "localhost:6379" }), /REDIS_URL: must be a redis:\/\/ URL/);
  assert.throws(() => parseConfig(workerConfigSchema, { TRAINYARD_WORKER_CONCURRENCY: "0" }), /TRAINYARD_WORKER_CONCURRENCY/);
});
