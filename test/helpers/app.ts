// A real API (real Postgres database of its own, real Redis with its own queue prefix) for tests.
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { apiConfigSchema, parseConfig, workerConfigSchema, type ApiConfig, type WorkerConfig } from "../../lib/config/env.ts";
import { buildApp, type App } from "../../services/app.ts";
import { createTestDatabase, type TestDatabase } from "./db.ts";

export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

export interface TestEnv {
  app: App;
  db: TestDatabase;
  config: ApiConfig;
  workerConfig: WorkerConfig;
  adminKey: string;
  /** Creates a tenant key and returns its Authorization header. */
  tenant(name?: string): Promise<{ authorization: string }>;
  close(): Promise<void>;
}

export async function createTestEnv(overrides: Record<string, string> = {}): Promise<TestEnv> {
  const db = await createTestDatabase();
  const prefix = `tytest-${randomBytes(4).toString("hex")}`;
  const adminKey = randomBytes(32).toString("hex");
  const env = { DATABASE_URL: db.url, REDIS_URL, TRAINYARD_QUEUE_PREFIX: prefix, TRAINYARD_ADMIN_KEY: adminKey, LOG_LEVEL: "silent", TRAINYARD_BACKEND: process.env.TRAINYARD_BACKEND ?? "auto",
    // Tests send bursts no client would; the rate limits have a test of their own (rate-limit.test.ts).
    TRAINYARD_RATE_LIMIT_PREDICT_PER_SECOND: "0", TRAINYARD_RATE_LIMIT_UPLOADS_PER_MINUTE: "0", ...overrides };
  const config = parseConfig(apiConfigSchema, env);
  const workerConfig = parseConfig(workerConfigSchema, { ...env, TRAINYARD_JOB_LOCK_MS: "5000" });
  const app = await buildApp(config);
  await app.ready();
  let n = 0;
  return {
    app, db, config, workerConfig, adminKey,
    async tenant(name = `tenant-${++n}`) {
      const res = await app.inject({ method: "POST", url: "/v1/api-keys", headers: { authorization: `Bearer ${adminKey}` }, payload: { tenant: name } });
      if (res.statusCode !== 201) throw new Error(`creating a key failed: ${res.statusCode} ${res.body}`);
      return { authorization: `Bearer ${res.json().key}` };
    },
    async close() {
      await app.close();
      await cleanRedis(prefix);
      await db.drop();
    },
  };
}

/** Deletes every key under a test's queue prefix. */
export async function cleanRedis(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 500);
      if (keys.length) await redis.del(...keys);
      cursor = next;
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}
