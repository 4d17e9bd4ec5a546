// A spec must never freeze the API (issue 7): over-limit specs and oversized graphs are refused
// with a 400 that names the limit and where it is exceeded, before anything is built.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";

let env: TestEnv;
let auth: Record<string, string>;
before(async () => {
  // A low layer limit, so a graph can exceed it without reaching the schema's 1000 nodes.
  env = await createTestEnv({ TRAINYARD_MAX_LAYERS: "50" });
  auth = await env.tenant("limits");
});
after(async () => env?.close());

const validate = (spec: unknown) => env.app.inject({ method: "POST", url: "/v1/models:validate", headers: auth, payload: { spec } });

/** A graph spec that is a chain of n relu nodes. */
function chain(n: number) {
  const nodes: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) nodes[`n${i}`] = { type: "activation", activation: "relu", inputs: [i ? `n${i - 1}` : "x"] };
  return { inputs: { x: { shape: [4] } }, nodes, outputs: [`n${n - 1}`] };
}

test("a dense layer of 1e9 units answers 400 naming the parameter limit and the layer", async () => {
  const spec = { input: { shape: [4] }, layers: [{ type: "dense", units: 1e9 }] };
  const res = await validate(spec);
  assert.equal(res.statusCode, 400);
  assert.equal(res.headers["content-type"], "application/problem+json; charset=utf-8");
  assert.deepEqual(res.json().errors, [{ path: "spec.layers[0]", message: "the model has 5000000000 parameters, the limit is 50000000; this dense layer has 5000000000" }]);
  const create = await env.app.inject({ method: "POST", url: "/v1/models", headers: auth, payload: { name: "huge", spec } });
  assert.equal(create.statusCode, 400);
  assert.equal(create.json().errors[0].path, "spec.layers[0]");
});

test("a 1e8-parameter dense layer after a small one is named as the one that weighs", async () => {
  const res = await validate({ input: { shape: [10] }, layers: [{ type: "dense", units: 10000 }, { type: "dense", units: 10000 }] });
  assert.equal(res.statusCode, 400);
  assert.deepEqual(res.json().errors, [{ path: "spec.layers[1]", message: "the model has 100120000 parameters, the limit is 50000000; this dense layer has 100010000" }]);
});

test("a graph of 5,000 nodes answers 400 at spec.nodes (it used to answer 500: call stack exceeded)", async () => {
  const res = await validate(chain(5000));
  assert.equal(res.statusCode, 400, res.body.slice(0, 300));
  assert.deepEqual(res.json().errors, [{ path: "spec.nodes", message: "at most 1000 nodes" }]);
});

test("a graph over TRAINYARD_MAX_LAYERS answers 400 naming the limit", async () => {
  const res = await validate(chain(60));
  assert.equal(res.statusCode, 400);
  assert.deepEqual(res.json().errors, [{ path: "spec", message: "has 60 layers, the limit is 50" }]);
  const ok = await validate(chain(50));
  assert.equal(ok.statusCode, 200, ok.body.slice(0, 300));
  assert.equal(ok.json().summary.layers.length, 50);
});
