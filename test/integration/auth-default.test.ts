// Auth is deny-by-default: a route that states no level is refused when it is registered, so the
// app cannot start with it; stated levels are enforced, and the docs stay public.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { apiConfigSchema, parseConfig } from "../../lib/config/env.ts";
import { buildApp, type App } from "../../services/app.ts";
import { REDIS_URL } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";

describe("auth levels", () => {
  let db: TestDatabase;
  let app: App;
  before(async () => {
    db = await createTestDatabase();
    const config = parseConfig(apiConfigSchema, {
      DATABASE_URL: db.url, REDIS_URL, TRAINYARD_QUEUE_PREFIX: `tytest-${randomBytes(4).toString("hex")}`,
      TRAINYARD_ADMIN_KEY: randomBytes(32).toString("hex"), LOG_LEVEL: "silent", TRAINYARD_BACKEND: process.env.TRAINYARD_BACKEND ?? "auto",
    });
    app = await buildApp(config);
  });
  after(async () => {
    await app?.close();
    await db?.drop();
  });

  it("refuses to register a route that states no auth level, and enforces the levels routes state", async () => {
    assert.throws(() => app.get("/v2/models", async () => ({ secret: true })), /GET \/v2\/models states no auth level/);
    assert.throws(() => app.post("/v2/x", { config: { auth: "everyone" as "public" } }, async () => ({})), /states no auth level/);
    app.get("/v2/open", { config: { auth: "public" } }, async () => ({ open: true }));
    app.get("/v2/closed", { config: { auth: "tenant" } }, async () => ({ open: false }));
    await app.ready();

    assert.equal((await app.inject({ url: "/v2/models" })).statusCode, 404, "the refused route does not exist");
    assert.equal((await app.inject({ url: "/v2/open" })).statusCode, 200);
    const closed = await app.inject({ url: "/v2/closed" });
    assert.equal(closed.statusCode, 401, closed.body);
    assert.equal((await app.inject({ url: "/docs/json" })).statusCode, 200, "the OpenAPI document is public");
    assert.equal((await app.inject({ url: "/v1/no-such-route" })).statusCode, 401, "/v1/ asks for a key before it says what exists");
  });
});
