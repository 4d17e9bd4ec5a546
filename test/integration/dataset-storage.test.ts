// Datasets are stored in shards of rows and read back shard by shard: what a worker loads is
// exactly what was uploaded, however many shards it took, for several inputs and outputs.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { DatasetRepository } from "../../lib/data/dataset-repository.ts";
import type { ParsedDataset } from "../../lib/data/packing.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";

let env: TestEnv;
let tenantId: string;
before(async () => {
  env = await createTestEnv();
  tenantId = randomUUID();
  await env.app.db.tenant.create({ data: { id: tenantId, name: "acme" } });
});
after(async () => env?.close());

function dataset(rows: number): ParsedDataset {
  // Two inputs ([3] and [2, 2]) and two outputs (a class and a [2] regression target), each value distinct.
  const inputs = [{ name: "a", shape: [3] }, { name: "b", shape: [2, 2] }];
  const outputs = [
    { name: "y", task: "classification" as const, classes: ["n", "p"], shape: [1] },
    { name: "z", task: "regression" as const, classes: [], shape: [2] },
  ];
  const features = Float32Array.from({ length: rows * 7 }, (_, i) => i + 0.5);
  const targets = new Float32Array(rows * 3);
  for (let r = 0; r < rows; r++) targets[r] = r % 2;
  for (let i = rows; i < rows * 3; i++) targets[i] = -i;
  return { name: "sharded", inputs, outputs, featureNames: [], features, targets, rows };
}

test("a dataset written in many shards reads back value for value, and shows only once complete", async () => {
  const parsed = dataset(101);
  // 40 bytes a row (7 + 3 values): 64-byte shards hold one row each.
  const repo = new DatasetRepository(env.app.db, 64);
  const view = await repo.create(tenantId, parsed);
  assert.equal(view.created, true);
  assert.equal(await env.app.db.datasetShard.count({ where: { datasetId: view.id } }), 101);
  const loaded = await repo.loadTensors(tenantId, view.id);
  assert.deepEqual(loaded.x, parsed.features);
  assert.deepEqual(loaded.y, parsed.targets);
  assert.equal(view.bytes, 101 * 40);
  assert.deepEqual(view.outputs[0].counts, [51, 50]);

  // Larger shards, the same values.
  const wide = await new DatasetRepository(env.app.db, 40 * 30).create(tenantId, { ...parsed, name: "wide" });
  assert.equal(await env.app.db.datasetShard.count({ where: { datasetId: wide.id } }), 4);
  assert.deepEqual((await repo.loadTensors(tenantId, wide.id)).x, parsed.features);

  // Uploading again: recognised by its content hash under the same name, not stored twice.
  const again = await repo.create(tenantId, parsed);
  assert.deepEqual([again.created, again.id, again.contentHash], [false, view.id, view.contentHash]);

  // An upload still being written is invisible and, once abandoned, swept.
  await env.app.db.dataset.update({ where: { id: wide.id }, data: { status: "uploading" } });
  assert.deepEqual((await repo.list(tenantId)).map((d) => d.id), [view.id]);
  await assert.rejects(repo.get(tenantId, wide.id), /was not found/);
  assert.equal(await repo.sweepAbandoned(0), 1);
  assert.equal(await env.app.db.datasetShard.count({ where: { datasetId: wide.id } }), 0, "its shards went with it");
});
