// Each test file gets its own database, cloned from a migrated template: real Postgres, full
// isolation, and no migration run per test.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { ensureDatabase, migrateDeploy } from "../../lib/db/migrate.ts";

export const PG_BASE = process.env.TEST_PG_URL ?? "postgresql://postgres@127.0.0.1:5432";
const TEMPLATE = "trainyard_test_template";
const LOCK = 7270_0001;

async function admin<T>(fn: (c: pg.Client) => Promise<T>, base = PG_BASE): Promise<T> {
  const c = new pg.Client({ connectionString: `${base}/postgres` });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Brings the template up to the latest migration (serialized: test files start in parallel). */
export async function prepareTemplate(): Promise<void> {
  await admin(async (c) => {
    await c.query("SELECT pg_advisory_lock($1)", [LOCK]);
    try {
      await ensureDatabase(`${PG_BASE}/${TEMPLATE}`);
      await migrateDeploy(`${PG_BASE}/${TEMPLATE}`);
    } finally {
      await c.query("SELECT pg_advisory_unlock($1)", [LOCK]);
    }
  });
}

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  if (!process.env.TRAINYARD_TEST_TEMPLATE_READY) await prepareTemplate();
  const name = `trainyard_test_${randomBytes(6).toString("hex")}`;
  await admin(async (c) => {
    // CREATE DATABASE ... TEMPLATE fails while anything is connected to the template: serialize.
    await c.query("SELECT pg_advisory_lock($1)", [LOCK]);
    try {
      await c.query(`CREATE DATABASE "${name}" TEMPLATE "${TEMPLATE}"`);
    } finally {
      await c.query("SELECT pg_advisory_unlock($1)", [LOCK]);
    }
  });
  return {
    name,
    url: `${PG_BASE}/${name}`,
    drop: () => dropDatabase(name),
  };
}

/** Drops a database of the tests' (or a benchmark's, on `base`), whoever is still connected to it. */
export function dropDatabase(name: string, base = PG_BASE): Promise<void> {
  return admin(async (c) => void (await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)), base);
}
