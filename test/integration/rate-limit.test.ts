// Per-tenant rate limits against a real Redis: a burst beyond the bucket gets 429 with Retry-After
// and problem+json naming the limit; another tenant is unaffected; the bucket refills; two app
// instances (replicas) share it; a replica leases tokens (most requests make no Redis round trip)
// without ever letting a tenant past its limit; and with Redis gone, requests pass at once (fail open).
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { leaseSize, RateLimiter } from "../../lib/auth/rate-limit.ts";
import { apiConfigSchema, parseConfig } from "../../lib/config/env.ts";
import { buildApp, type App } from "../../services/app.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { startRedis } from "../helpers/servers.ts";

describe("rate limits", () => {
  let env: TestEnv;
  let acme: { authorization: string };
  let other: { authorization: string };
  const extra: App[] = [];

  before(async () => {
    env = await createTestEnv({
      TRAINYARD_RATE_LIMIT_PREDICT_PER_SECOND: "2", TRAINYARD_RATE_LIMIT_PREDICT_BURST: "3",
      TRAINYARD_RATE_LIMIT_UPLOADS_PER_MINUTE: "1", TRAINYARD_RATE_LIMIT_UPLOADS_BURST: "1",
    });
    acme = await env.tenant("acme");
    other = await env.tenant("other");
  });
  after(async () => {
    for (const app of extra) await app.close();
    await env?.close();
  });

  // The model does not exist: a request the limiter lets through answers 404, one it stops 429.
  const predict = (app: App, headers: Record<string, string>) =>
    app.inject({ method: "POST", url: "/v1/models/absent:predict", headers, payload: { instances: [[1]] } });

  test("a burst beyond the bucket gets 429 with Retry-After naming the limit; another tenant is unaffected; it refills", async () => {
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await predict(env.app, acme)).statusCode);
    assert.deepEqual(codes, [404, 404, 404, 429, 429]);
    const refused = await predict(env.app, acme);
    assert.equal(refused.statusCode, 429);
    assert.match(refused.headers["content-type"] as string, /^application\/problem\+json/);
    const retryAfter = Number(refused.headers["retry-after"]);
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 2, `Retry-After ${refused.headers["retry-after"]}`);
    const problem = refused.json();
    assert.equal(problem.status, 429);
    assert.match(problem.detail, /predict rate limit/);

    assert.equal((await predict(env.app, other)).statusCode, 404, "another tenant has its own bucket");

    await sleep(retryAfter * 1000);
    assert.equal((await predict(env.app, acme)).statusCode, 404, "after Retry-After seconds a request passes");
  });

  test("uploads have their own limit, checked before the body is read", async () => {
    const importXor = () => env.app.inject({ method: "POST", url: "/v1/datasets/builtin/xor", headers: other, payload: { name: `x${Math.random()}` } });
    const first = await importXor();
    assert.equal(first.statusCode, 201, first.body);
    const second = await env.app.inject({ method: "POST", url: "/v1/datasets?name=t&label=y", headers: { ...other, "content-type": "text/csv" }, payload: "x,y\n1,a\n2,b\n" });
    assert.equal(second.statusCode, 429, second.body);
    assert.match(second.json().detail, /uploads rate limit/);
    const retryAfter = Number(second.headers["retry-after"]);
    assert.ok(retryAfter > 50 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    // Predictions of the same tenant are not held by the upload limit.
    assert.equal((await predict(env.app, other)).statusCode, 404);
  });

  test("two app instances (replicas) share one bucket", async () => {
    const replica = await buildApp(env.config);
    extra.push(replica);
    await replica.ready();
    const tenant = await env.tenant("shared");
    const codes = [];
    for (const app of [env.app, replica, env.app, replica]) codes.push((await predict(app, tenant)).statusCode);
    assert.deepEqual(codes, [404, 404, 404, 429]);
  });

  test("with Redis gone, requests pass at once", async () => {
    const redis = await startRedis();
    const config = parseConfig(apiConfigSchema, { ...env.config, REDIS_URL: redis.url, TRAINYARD_RATE_LIMIT_PREDICT_PER_SECOND: "1", TRAINYARD_RATE_LIMIT_PREDICT_BURST: "1" } as unknown as NodeJS.ProcessEnv);
    const app = await buildApp(config);
    extra.push(app);
    await app.ready();
    const tenant = await env.tenant("outage");
    assert.deepEqual([(await predict(app, tenant)).statusCode, (await predict(app, tenant)).statusCode], [404, 429]);
    await redis.kill();
    const started = performance.now();
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await predict(app, tenant)).statusCode);
    assert.deepEqual(codes, [404, 404, 404, 404, 404]);
    // Five requests, each a Postgres lookup of the key and the model; the limiter adds no wait.
    assert.ok(performance.now() - started < 1000, `took ${performance.now() - started} ms`);
  });

  test("a replica leases tokens: one Redis round trip per lease, concurrent requests share it, and two replicas together never pass the limit", async () => {
    const prefix = `${env.config.TRAINYARD_QUEUE_PREFIX}-lease`;
    const limits = { predict: { perSecond: 100, burst: 20 }, uploads: { perSecond: 0, burst: 1 } };
    assert.equal(leaseSize(limits.predict), 5);
    const a = new RateLimiter(env.app.redis, prefix, limits);
    const b = new RateLimiter(env.app.redis, prefix, limits);
    const shared = async (tenant: string) => Number(await env.app.redis.hget(a.key("predict", tenant), "tokens"));

    // The bucket refills at 100 tokens a second: what may have come back between two readings is
    // measured, not assumed (a loaded machine takes tens of milliseconds between them).
    const refill = (since: number) => (100 * (performance.now() - since)) / 1000 + 0.5;
    // Three requests at once on an empty lease: one lease of five taken from the shared bucket.
    const t0 = performance.now();
    const first = await Promise.all(Array.from({ length: 3 }, () => a.take("predict", "t1")));
    assert.ok(first.every((d) => d.allowed && !("failedOpen" in d)), JSON.stringify(first));
    const afterLease = await shared("t1");
    assert.ok(afterLease >= 15 && afterLease < 15 + refill(t0), `the shared bucket holds ${afterLease}: one lease of 5 from 20 (plus a little refill)`);
    // Two more are spent from the lease, without Redis.
    for (let i = 0; i < 2; i++) assert.equal((await a.take("predict", "t1")).allowed, true);
    assert.ok((await shared("t1")) === afterLease, "the lease's tokens cost no round trip");
    // The sixth takes a new lease.
    assert.equal((await a.take("predict", "t1")).allowed, true);
    const afterSecond = await shared("t1");
    // The stored 15 dates from the first lease (before t0's reading ended), and refills from then.
    assert.ok(afterSecond >= afterLease - 5 && afterSecond < afterLease - 5 + refill(t0), `the shared bucket holds ${afterSecond}: a second lease of 5 from ${afterLease}`);

    // Two replicas race 60 requests each against one bucket: never more than the burst plus the refill.
    const started = performance.now();
    const decisions = await Promise.all(Array.from({ length: 120 }, (_, i) => (i % 2 ? a : b).take("predict", "t2")));
    const seconds = (performance.now() - started) / 1000;
    const allowed = decisions.filter((d) => d.allowed).length;
    assert.ok(decisions.every((d) => !("failedOpen" in d)), "Redis answered every check");
    assert.ok(allowed <= 20 + Math.ceil(100 * seconds) + 1, `${allowed} passed in ${seconds.toFixed(3)} s`);
    assert.ok(allowed >= 10, `${allowed} passed: leases unspent by one replica hold back at most one lease each`);
    const refused = decisions.find((d) => !d.allowed);
    assert.ok(refused && !refused.allowed && refused.retryAfterSeconds >= 1, "the rest are refused with a retry time");
  });
});
