// Postgres going away under an upload answers 503 (a dependency failure, like every other), not
// 500, and leaves no half-written dataset. Two APIs share a Postgres of this test's own: one
// connected directly (its pooled connection dies under it, and writing a large row to it fails
// with EPIPE, which once answered 500), one through a small TCP relay that lets the test kill
// Postgres at the exact moment the dataset's bytes are on their way to it.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, connect, type Server, type Socket } from "node:net";
import { after, afterEach, before, test } from "node:test";
import pg from "pg";
import { apiConfigSchema, parseConfig } from "../../lib/config/env.ts";
import { buildApp, type App } from "../../services/app.ts";
import { cleanRedis, REDIS_URL } from "../helpers/app.ts";
import { startPostgres, waitForPostgres, type OwnPostgres } from "../helpers/servers.ts";

/** Relays connections to `port`; once armed, calls `trip` when one connection has sent `bytes` more, holding the rest of its data back. */
function relay(port: number) {
  const sockets = new Set<Socket>();
  /** Bytes each client has sent since the relay was last armed. */
  const sent = new Map<Socket, number>();
  let armed: { bytes: number; trip: () => void } | undefined;
  const server: Server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    sockets.add(client).add(upstream);
    client.on("data", (chunk: Buffer) => {
      const total = (sent.get(client) ?? 0) + chunk.length;
      sent.set(client, total);
      if (armed && total > armed.bytes) {
        // The client is now mid-write: stop reading from it and let the trip kill the server.
        const { trip } = armed;
        armed = undefined;
        client.pause();
        trip();
        return;
      }
      upstream.write(chunk);
    });
    client.on("end", () => upstream.end());
    upstream.on("data", (chunk) => client.write(chunk));
    const close = () => {
      sent.delete(client);
      sockets.delete(client);
      sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  return {
    listen: () => new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port))),
    /** Counts from now: the next connection to send `bytes` trips. */
    arm(bytes: number, trip: () => void) {
      armed = { bytes, trip };
      sent.clear();
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let postgres: OwnPostgres;
let down = false;
const killPostgres = () => {
  down = true;
  return postgres.kill();
};
let proxy: ReturnType<typeof relay>;
/** Connected to Postgres directly, and through the relay. */
let direct: App;
let relayed: App;
let auth: { authorization: string };
const prefix = `tytest-${randomBytes(4).toString("hex")}`;

async function apiOn(databaseUrl: string, adminKey: string): Promise<App> {
  const config = parseConfig(apiConfigSchema, {
    DATABASE_URL: databaseUrl, REDIS_URL, TRAINYARD_QUEUE_PREFIX: prefix, TRAINYARD_ADMIN_KEY: adminKey,
    LOG_LEVEL: process.env.DEBUG_LOG ?? "silent", TRAINYARD_BACKEND: process.env.TRAINYARD_BACKEND ?? "auto",
  });
  const app = await buildApp(config);
  // Test-only: lets a request take Postgres down once it has been authenticated and read.
  app.addHook("preHandler", async (request) => {
    if (request.headers["x-test-kill-postgres"]) await killPostgres();
  });
  await app.ready();
  return app;
}

before(async () => {
  postgres = await startPostgres();
  proxy = relay(postgres.port);
  const port = await proxy.listen();
  const adminKey = randomBytes(32).toString("hex");
  direct = await apiOn(postgres.url, adminKey);
  relayed = await apiOn(postgres.url.replace(`:${postgres.port}/`, `:${port}/`), adminKey);
  const res = await direct.inject({ method: "POST", url: "/v1/api-keys", headers: { authorization: `Bearer ${adminKey}` }, payload: { tenant: "acme" } });
  assert.equal(res.statusCode, 201, res.body);
  auth = { authorization: `Bearer ${res.json().key}` };
});
afterEach(async () => {
  await restartAndCountDatasets();
});
after(async () => {
  await direct?.close();
  await relayed?.close();
  await proxy?.close();
  await postgres?.stop();
  await cleanRedis(prefix);
});

/** A JSON dataset whose packed rows are a few MB: long enough a write to be caught in flight. */
function bigDataset(name: string, rows = 40_000, width = 25) {
  const features = Array.from({ length: rows }, (_, i) => Array.from({ length: width }, (_, j) => ((i * 31 + j * 7) % 1000) / 1000));
  return JSON.stringify({ name, features, labels: features.map((_, i) => (i % 2 ? "a" : "b")) });
}

/**
 * Starts the killed Postgres again and counts its datasets, once what an interrupted upload left
 * behind (invisible, `uploading`) has been swept, as every API replica does now and then.
 */
async function restartAndCountDatasets(): Promise<number> {
  if (down) await postgres.start();
  down = false;
  await waitForPostgres(postgres.url);
  const visible = await direct.services.datasets.list((await direct.db.tenant.findFirstOrThrow()).id);
  await direct.services.datasets.sweepAbandoned(0);
  const all = await direct.db.dataset.count();
  assert.equal(all, visible.length, "after the sweep, every dataset left is a visible one");
  const c = new pg.Client({ connectionString: postgres.url });
  await c.connect();
  try {
    return Number((await c.query('SELECT count(*) FROM "Dataset"')).rows[0].count);
  } finally {
    await c.end();
  }
}

const upload = (app: App, payload: string, headers: Record<string, string> = {}) =>
  app.inject({ method: "POST", url: "/v1/datasets", headers: { ...auth, "content-type": "application/json", ...headers }, payload });
const small = JSON.stringify({ name: "small", features: [[1], [2]], labels: ["a", "b"] });

test("Postgres killed while a large upload is in the API: its write meets a dead connection, 503, nothing stored", async () => {
  const res = await upload(direct, bigDataset("big"), { "x-test-kill-postgres": "1" });
  assert.equal(res.statusCode, 503, res.body);
  assert.match(res.headers["content-type"] as string, /problem\+json/);
  assert.doesNotMatch(res.body, /EPIPE|127\.0\.0\.1/, "no internals in the body");
  assert.equal(await restartAndCountDatasets(), 0, "nothing of the upload was stored");
  // Once Postgres is back, the same API stores uploads again.
  const again = await upload(direct, small);
  assert.equal(again.statusCode, 201, again.body);
});

test("Postgres killed while the dataset's bytes are on their way to it: 503, no half-written dataset", async () => {
  const before = await direct.db.dataset.count();
  let killed: Promise<void> | undefined;
  // 1 MiB into the write (the packed rows alone are 4 MB), Postgres dies.
  proxy.arm(1024 * 1024, () => {
    killed = killPostgres();
  });
  const res = await upload(relayed, bigDataset("big"));
  assert.ok(killed, "Postgres was killed during the write");
  await killed;
  assert.equal(res.statusCode, 503, res.body);
  assert.equal(await restartAndCountDatasets(), before, "nothing of the upload was stored");
});

test("Postgres down for the whole upload: 503", async () => {
  const before = await direct.db.dataset.count();
  await killPostgres();
  const res = await upload(direct, small);
  assert.equal(res.statusCode, 503, res.body);
  assert.equal(await restartAndCountDatasets(), before);
});
