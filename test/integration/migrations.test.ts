// Migrations keep existing rows meaningful: a database holding data from the first migration is
// brought forward one migration at a time, and the rows it already had are checked after each.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import pg from "pg";
import { PG_BASE } from "../helpers/db.ts";

const dir = new URL("../../prisma/migrations/", import.meta.url);
const migrations = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
const name = `trainyard_mig_${randomBytes(6).toString("hex")}`;
let db: pg.Client;

before(async () => {
  const admin = new pg.Client({ connectionString: `${PG_BASE}/postgres` });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  db = new pg.Client({ connectionString: `${PG_BASE}/${name}` });
  await db.connect();
});
after(async () => {
  await db?.end();
  const admin = new pg.Client({ connectionString: `${PG_BASE}/postgres` });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
});

const apply = (m: string) => db.query(readFileSync(new URL(`${m}/migration.sql`, dir), "utf8"));

test("datasets and models from before named inputs and outputs keep working after the migrations", async () => {
  assert.ok(migrations.length >= 3, migrations.join(", "));
  await apply(migrations[0]);
  const tenant = "00000000-0000-0000-0000-000000000001";
  await db.query(`INSERT INTO "Tenant"(id, name) VALUES ($1, 't')`, [tenant]);
  await db.query(
    `INSERT INTO "Dataset"(id, "tenantId", name, task, "rowCount", "inputShape", classes, "targetSize", "featureNames", features, targets)
     VALUES ('00000000-0000-0000-0000-000000000002', $1, 'iris', 'classification', 1, '{4}', '{a,b}', 1, '{}', '\\x00', '\\x00')`,
    [tenant],
  );
  await db.query(
    `INSERT INTO "Model"(id, "tenantId", name, spec, "paramCount", "outputShape") VALUES
     ('00000000-0000-0000-0000-000000000003', $1, 'graph', '{"inputs": {}, "nodes": {}, "outputs": ["head"]}', 1, '{-1,3}'),
     ('00000000-0000-0000-0000-000000000004', $1, 'seq', '{"input": {"shape": [4]}, "layers": []}', 1, '{3}')`,
    [tenant],
  );
  for (const m of migrations.slice(1)) await apply(m);

  const ds = (await db.query(`SELECT inputs, "targetShape", outputs FROM "Dataset"`)).rows[0];
  assert.deepEqual(ds.inputs, [{ name: "input", shape: [4] }]);
  assert.deepEqual(ds.targetShape, [1]);
  assert.deepEqual(ds.outputs, [{ name: "output", task: "classification", classes: ["a", "b"], shape: [1] }]);
  // The one bytea value became the dataset's one shard.
  const shards = (await db.query(`SELECT "index", "rowStart", "rowCount", features, targets FROM "DatasetShard"`)).rows;
  assert.deepEqual(shards, [{ index: 0, rowStart: 0, rowCount: 1, features: Buffer.from([0]), targets: Buffer.from([0]) }]);
  assert.deepEqual((await db.query(`SELECT status, bytes FROM "Dataset"`)).rows, [{ status: "ready", bytes: "2" }]);
  const models = (await db.query(`SELECT name, outputs FROM "Model" ORDER BY name`)).rows;
  assert.deepEqual(models, [
    { name: "graph", outputs: [{ name: "head", shape: [null, 3] }] },
    { name: "seq", outputs: [{ name: "output", shape: [3] }] },
  ]);
});
