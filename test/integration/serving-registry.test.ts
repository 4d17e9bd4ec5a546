// The registry as serving sees it: version metadata and deletion, aliases that move atomically
// under concurrent predictions, a default alias, targeting a version or an alias, and the version
// lookup cache invalidated on this replica and, through Redis pub/sub, on another.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { buildApp, type App } from "../../services/app.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { createModel, uploadIris } from "../helpers/training.ts";
import { trainInProcess } from "../helpers/train-in-process.ts";

let env: TestEnv;
let auth: { authorization: string };
const ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]];
/** Each version's predictions for ROWS, to recognise which version answered. */
const expected = new Map<number, string>();

const inject = (opts: { method: "GET" | "PUT" | "DELETE"; url: string; headers: Record<string, string>; payload?: object }) => env.app.inject(opts);
const predict = (url = "/v1/models/iris:predict", app: App = env.app) =>
  app.inject({ method: "POST", url, headers: auth, payload: { instances: ROWS } });

before(async () => {
  // A long lookup TTL: whatever a test sees change, the invalidation did it, not the expiry.
  env = await createTestEnv({ TRAINYARD_VERSION_LOOKUP_TTL_MS: "60000" });
  auth = await env.tenant("acme");
  const dataset = await uploadIris(env.app.inject.bind(env.app), auth);
  await createModel(env.app.inject.bind(env.app), auth, "iris");
  for (const seed of [1, 2, 3]) await trainInProcess(env, auth, "iris", dataset, { epochs: 1, batchSize: 32, seed });
  for (const v of [1, 2, 3]) {
    const res = await predict(`/v1/models/iris/versions/${v}:predict`);
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers["x-trainyard-model-version"], String(v));
    expected.set(v, JSON.stringify(res.json().predictions));
  }
  assert.equal(new Set(expected.values()).size, 3, "the three versions answer differently");
});
after(async () => env?.close());

describe("versions", () => {
  test("a version's metadata: job, dataset, signature with preprocessing, metrics, size, aliases, created", async () => {
    const res = await inject({ method: "GET", url: "/v1/models/iris/versions/1", headers: auth });
    assert.equal(res.statusCode, 200, res.body);
    const v = res.json();
    assert.equal(v.version, 1);
    assert.match(v.jobId, /^[0-9a-f-]{36}$/);
    assert.match(v.datasetId, /^[0-9a-f-]{36}$/);
    assert.deepEqual(v.signature.inputs[0].shape, [4]);
    assert.ok(v.signature.inputs[0].preprocessing, "the fitted preprocessing is part of the signature");
    assert.deepEqual(v.signature.outputs[0].classes, ["setosa", "versicolor", "virginica"]);
    assert.equal(typeof v.metrics.loss, "number");
    assert.ok(v.sizeBytes > 4 * 100, `sizeBytes ${v.sizeBytes}`);
    assert.deepEqual(v.aliases, []);
    assert.ok(Date.parse(v.createdAt) > 0);
    // TF Serving's meaning of the same URL rides along.
    assert.deepEqual(v.model_version_status, [{ version: "1", state: "AVAILABLE", status: { error_code: "OK", error_message: "" } }]);
    const list = (await inject({ method: "GET", url: "/v1/models/iris/versions", headers: auth })).json();
    assert.deepEqual(list.versions.map((x: { version: number }) => x.version), [3, 2, 1]);
  });

  test("an unknown version or alias is a 404; prediction without an alias serves the latest", async () => {
    assert.equal((await predict("/v1/models/iris/versions/9:predict")).statusCode, 404);
    assert.equal((await predict("/v1/models/iris/labels/nope:predict")).statusCode, 404);
    const res = await predict();
    assert.equal(res.headers["x-trainyard-model-version"], "3");
    assert.equal(JSON.stringify(res.json().predictions), expected.get(3));
  });
});

describe("aliases", () => {
  test("an alias moves with one PUT, is targeted by /labels/, and guards its version against deletion", async () => {
    const put = await inject({ method: "PUT", url: "/v1/models/iris/aliases/production", headers: auth, payload: { version: 1 } });
    assert.equal(put.statusCode, 200, put.body);
    assert.equal(put.json().version, 1);
    let res = await predict("/v1/models/iris/labels/production:predict");
    assert.equal(res.headers["x-trainyard-model-version"], "1");
    assert.equal(JSON.stringify(res.json().predictions), expected.get(1));

    await inject({ method: "PUT", url: "/v1/models/iris/aliases/production", headers: auth, payload: { version: 2 } });
    res = await predict("/v1/models/iris/labels/production:predict");
    assert.equal(res.headers["x-trainyard-model-version"], "2", "the next request after the PUT sees the move");

    const del = await inject({ method: "DELETE", url: "/v1/models/iris/versions/2", headers: auth });
    assert.equal(del.statusCode, 409);
    assert.match(del.json().detail, /'production'/);
    assert.equal((await inject({ method: "PUT", url: "/v1/models/iris/aliases/production", headers: auth, payload: { version: 7 } })).statusCode, 404);
    assert.equal((await inject({ method: "PUT", url: "/v1/models/iris/aliases/7", headers: auth, payload: { version: 1 } })).statusCode, 400, "an alias is never all digits");
    const aliases = (await inject({ method: "GET", url: "/v1/models/iris/aliases", headers: auth })).json();
    assert.equal(aliases.defaultAlias, null);
    assert.deepEqual(aliases.aliases.map((a: { name: string; version: number }) => [a.name, a.version]), [["production", 2]]);
    assert.deepEqual((await inject({ method: "GET", url: "/v1/models/iris/versions/2", headers: auth })).json().aliases, ["production"]);
  });

  test("a default alias is served when no version is named; it cannot be deleted while it is the default", async () => {
    await inject({ method: "PUT", url: "/v1/models/iris/aliases/production", headers: auth, payload: { version: 2 } });
    const missing = await inject({ method: "PUT", url: "/v1/models/iris/default-alias", headers: auth, payload: { alias: "nope" } });
    assert.equal(missing.statusCode, 400);
    const set = await inject({ method: "PUT", url: "/v1/models/iris/default-alias", headers: auth, payload: { alias: "production" } });
    assert.equal(set.statusCode, 200, set.body);
    assert.equal(set.json().defaultAlias, "production");
    assert.equal((await predict()).headers["x-trainyard-model-version"], "2");
    assert.equal((await inject({ method: "DELETE", url: "/v1/models/iris/aliases/production", headers: auth })).statusCode, 409);
    await inject({ method: "PUT", url: "/v1/models/iris/default-alias", headers: auth, payload: { alias: null } });
    assert.equal((await predict()).headers["x-trainyard-model-version"], "3", "null serves the latest again");
  });

  test("under ~200 concurrent predictions an alias moves back and forth; each answer is wholly the old or the new version", async () => {
    await inject({ method: "PUT", url: "/v1/models/iris/aliases/live", headers: auth, payload: { version: 1 } });
    let predicting = true;
    let moved = 0;
    const moves = (async () => {
      while (predicting || moved < 4) {
        const to = moved % 2 ? 1 : 3;
        const res = await inject({ method: "PUT", url: "/v1/models/iris/aliases/live", headers: auth, payload: { version: to } });
        assert.equal(res.statusCode, 200);
        moved++;
        // Right after a move returns, this replica serves the new version.
        const next = await predict("/v1/models/iris/labels/live:predict");
        assert.equal(next.headers["x-trainyard-model-version"], String(to));
      }
    })();
    // 200 predictions, 20 in flight at a time, while the alias keeps moving.
    const answers = [];
    for (let wave = 0; wave < 10; wave++) answers.push(...(await Promise.all(Array.from({ length: 20 }, () => predict("/v1/models/iris/labels/live:predict")))));
    predicting = false;
    await moves;
    const seen = new Set<string>();
    for (const res of answers) {
      assert.equal(res.statusCode, 200, res.body);
      const version = Number(res.headers["x-trainyard-model-version"]);
      assert.ok(version === 1 || version === 3, `version ${version}`);
      assert.equal(JSON.stringify(res.json().predictions), expected.get(version), "the outputs are the named version's");
      seen.add(String(version));
    }
    assert.equal(seen.size, 2, "the alias moved while predictions ran");
  });

  test("a deleted version stops being served at once; deleting it again is a 404", async () => {
    assert.equal((await predict("/v1/models/iris/versions/1:predict")).statusCode, 200);
    await inject({ method: "DELETE", url: "/v1/models/iris/aliases/live", headers: auth });
    const aliases = (await inject({ method: "GET", url: "/v1/models/iris/aliases", headers: auth })).json().aliases;
    for (const a of aliases.filter((x: { version: number }) => x.version === 1)) await inject({ method: "DELETE", url: `/v1/models/iris/aliases/${a.name}`, headers: auth });
    const del = await inject({ method: "DELETE", url: "/v1/models/iris/versions/1", headers: auth });
    assert.equal(del.statusCode, 204, del.body);
    assert.equal((await predict("/v1/models/iris/versions/1:predict")).statusCode, 404);
    assert.equal((await inject({ method: "DELETE", url: "/v1/models/iris/versions/1", headers: auth })).statusCode, 404);
  });
});

describe("another replica", () => {
  test("sees an alias move through Redis pub/sub, long before its lookup TTL", async () => {
    const other = await buildApp(env.config);
    await other.ready();
    try {
      await inject({ method: "PUT", url: "/v1/models/iris/aliases/canary", headers: auth, payload: { version: 2 } });
      assert.equal((await predict("/v1/models/iris/labels/canary:predict", other)).headers["x-trainyard-model-version"], "2", "cached on the other replica now");
      await inject({ method: "PUT", url: "/v1/models/iris/aliases/canary", headers: auth, payload: { version: 3 } });
      const deadline = Date.now() + 5000;
      let version = "";
      while (Date.now() < deadline) {
        version = (await predict("/v1/models/iris/labels/canary:predict", other)).headers["x-trainyard-model-version"] as string;
        if (version === "3") break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(version, "3");
    } finally {
      await other.close();
    }
  });
});

describe("per-model batching", () => {
  test("a model's own batching settings govern how its concurrent predictions merge; bad values are 400s", async () => {
    const runtime = env.app.services.runtime;
    const burst = async () => {
      const before = (await runtime.refreshStats()).batches;
      // Version 3: the tests above deleted versions 1 and 2.
      const answers = await Promise.all(Array.from({ length: 30 }, () => predict("/v1/models/iris/versions/3:predict")));
      for (const a of answers) assert.equal(JSON.stringify(a.json().predictions), expected.get(3), a.body);
      return (await runtime.refreshStats()).batches - before;
    };
    const off = await inject({ method: "PUT", url: "/v1/models/iris/batching", headers: auth, payload: { maxDelayMs: 0 } });
    assert.equal(off.statusCode, 200, off.body);
    assert.deepEqual(off.json(), { maxDelayMs: 0 });
    assert.deepEqual((await inject({ method: "GET", url: "/v1/models/iris", headers: auth })).json().batching, { maxDelayMs: 0 });
    assert.equal(await burst(), 30, "batching off for this model: a forward pass per request");
    assert.equal((await inject({ method: "PUT", url: "/v1/models/iris/batching", headers: auth, payload: { maxBatchSize: 64, maxDelayMs: 200 } })).statusCode, 200);
    const merged = await burst();
    assert.ok(merged < 30, `30 concurrent requests in ${merged} forward passes`);

    const bad = await inject({ method: "PUT", url: "/v1/models/iris/batching", headers: auth, payload: { maxDelayMs: 5000 } });
    assert.equal(bad.statusCode, 400, bad.body);
    assert.equal(bad.json().errors[0].path, "maxDelayMs");
    assert.equal((await inject({ method: "PUT", url: "/v1/models/nope/batching", headers: auth, payload: {} })).statusCode, 404);
    assert.equal((await inject({ method: "PUT", url: "/v1/models/iris/batching", headers: auth, payload: {} })).statusCode, 200, "{}: the API's defaults");
  });
});
