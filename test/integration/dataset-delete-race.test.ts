// Deleting a dataset while a job on it is being created: the job's creation holds the dataset
// row (a share lock) until its row exists, and the delete locks it for update, so the delete
// either waits and sees the job (409) or goes first and the job finds no dataset (400). The
// "creation" here is a real transaction on its own connection, paused between its two steps.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { createModel, uploadIris } from "../helpers/training.ts";

let env: TestEnv;
let auth: { authorization: string };
before(async () => {
  env = await createTestEnv();
  auth = await env.tenant("acme");
});
after(async () => env?.close());

test("a delete racing a job's creation waits for it and refuses (409); a job after a delete finds no dataset (400)", async () => {
  const inject = env.app.inject.bind(env.app);
  const dataset = await uploadIris(inject, auth);
  await createModel(inject, auth, "iris");
  const tenant = (await env.app.db.tenant.findUniqueOrThrow({ where: { name: "acme" } })).id;
  const model = (await env.app.db.model.findFirstOrThrow()).id;

  const creator = new pg.Client({ connectionString: env.db.url });
  await creator.connect();
  try {
    await creator.query("BEGIN");
    const held = await creator.query(`SELECT "id" FROM "Dataset" WHERE "id" = $1 AND "tenantId" = $2 AND "status" = 'ready' FOR SHARE`, [dataset, tenant]);
    assert.equal(held.rowCount, 1);
    // The delete starts while the creation holds the dataset, and must wait for it.
    let settled = false;
    const deleting = inject({ method: "DELETE", url: `/v1/datasets/${dataset}`, headers: auth }).then((r) => ((settled = true), r));
    await sleep(300);
    assert.equal(settled, false, "the delete waits for the job's creation");
    const job = randomUUID();
    await creator.query(
      `INSERT INTO "TrainingJob" ("id", "tenantId", "modelId", "datasetId", "status", "hyperparameters", "epochs", "updatedAt") VALUES ($1, $2, $3, $4, 'queued', '{}', 1, now())`,
      [job, tenant, model, dataset],
    );
    await creator.query("COMMIT");
    const res = await deleting;
    assert.equal(res.statusCode, 409, res.body);
    assert.match(res.json().detail, new RegExp(job));
    await env.app.db.trainingJob.update({ where: { id: job }, data: { status: "cancelled" } });
  } finally {
    await creator.end();
  }

  const gone = await inject({ method: "DELETE", url: `/v1/datasets/${dataset}`, headers: auth });
  assert.equal(gone.statusCode, 204, gone.body);
  const late = await inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "iris", dataset, epochs: 1 } });
  assert.equal(late.statusCode, 400, late.body);
  assert.match(late.json().detail, /dataset: no dataset with id/);
});
