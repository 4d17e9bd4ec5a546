// Verified API keys are cached (a request no longer looks its key up in Postgres), and a revoked
// key stops working at once: on the replica that revoked it, and on another one through Redis.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import { buildApp } from "../../services/app.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";

let env: TestEnv;
let other: Awaited<ReturnType<typeof buildApp>>;

before(async () => {
  env = await createTestEnv({ TRAINYARD_AUTH_CACHE_MS: "60000" });
  // A second replica: same database, same Redis prefix.
  other = await buildApp(env.config);
  await other.ready();
});
after(async () => {
  await other?.close();
  await env?.close();
});

test("a verified key is served from the cache; revoking it ends it at once on every replica", async () => {
  const admin = { authorization: `Bearer ${env.adminKey}` };
  const created = await env.app.inject({ method: "POST", url: "/v1/api-keys", headers: admin, payload: { tenant: "cached" } });
  const { id, key } = created.json();
  const auth = { authorization: `Bearer ${key}` };
  for (const app of [env.app, other]) assert.equal((await app.inject({ url: "/v1/datasets", headers: auth })).statusCode, 200);

  // Cached: even with the key's row gone from Postgres's point of view (revoked behind the API's
  // back), the replicas keep trusting it until told.
  await env.app.db.apiKey.update({ where: { id }, data: { revokedAt: new Date() } });
  assert.equal((await other.inject({ url: "/v1/datasets", headers: auth })).statusCode, 200, "served from the cache");
  await env.app.db.apiKey.update({ where: { id }, data: { revokedAt: null } });

  // Revoked through the API on one replica: 401 there at once, and on the other once the message arrives.
  assert.equal((await env.app.inject({ method: "DELETE", url: `/v1/api-keys/${id}`, headers: admin })).statusCode, 200);
  assert.equal((await env.app.inject({ url: "/v1/datasets", headers: auth })).statusCode, 401);
  let status = 0;
  for (const deadline = Date.now() + 2000; Date.now() < deadline; await sleep(20)) {
    status = (await other.inject({ url: "/v1/datasets", headers: auth })).statusCode;
    if (status === 401) break;
  }
  assert.equal(status, 401, "the other replica forgot the revoked key");
});

test("a wrong secret with a known prefix is never taken from the cache", async () => {
  const admin = { authorization: `Bearer ${env.adminKey}` };
  const { key } = (await env.app.inject({ method: "POST", url: "/v1/api-keys", headers: admin, payload: { tenant: "cached" } })).json();
  assert.equal((await env.app.inject({ url: "/v1/datasets", headers: { authorization: `Bearer ${key}` } })).statusCode, 200);
  const forged = key.slice(0, -4) + (key.endsWith("AAAA") ? "BBBB" : "AAAA");
  assert.equal((await env.app.inject({ url: "/v1/datasets", headers: { authorization: `Bearer ${forged}` } })).statusCode, 401);
});
