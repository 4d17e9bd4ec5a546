// A request must never crash the API (issue 7): thousands of mutated bodies per POST endpoint,
// each answered below 500 and, when refused, with a problem+json body. Seeded: the seed is
// printed, and TRAINYARD_FUZZ_SEED=<seed> replays a run (TRAINYARD_FUZZ_RUNS sets the bodies per
// endpoint); each case's body depends only on the seed, the endpoint and its number, though with
// four requests in flight what an earlier one stored (a taken name) may differ. Numbers in model
// specs stay at most 1e4: an enormous layer is a cost for the spec limits to refuse, not a
// malformed request, and would only make this test slow.
import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { gzipSync } from "node:zlib";
import { after, before, test } from "node:test";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { createModel, IRIS_CSV, IRIS_SPEC, uploadIris } from "../helpers/training.ts";
import { trainInProcess } from "../helpers/train-in-process.ts";

const SEED = Number(process.env.TRAINYARD_FUZZ_SEED ?? randomInt(2 ** 31));
const RUNS = Number(process.env.TRAINYARD_FUZZ_RUNS ?? 2000);
const IN_FLIGHT = 4;

/** mulberry32: small, fast and the same everywhere. */
class Rng {
  constructor(private s: number) {}
  next(): number {
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = Math.imul(this.s ^ (this.s >>> 15), 1 | this.s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

/** One case's generator, from the run's seed, the endpoint and the case number: any case replays alone. */
const caseRng = (endpoint: number, i: number) => new Rng((SEED ^ Math.imul(endpoint + 1, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
/** An object key emitted twice in the JSON text: the second value is what JSON.parse keeps. */
const DUPLICATE = Symbol("duplicate key");
type WithDuplicate = { [DUPLICATE]?: [string, Json] };

const NUMBERS = [0, -0, -1, 1, 2, 3, 0.5, 1.5, -1e308, 1e-308, 1e-7, 7, 16, 255, 256, 1e4, 9999.5, -(2 ** 31), Infinity, -Infinity] as const;
const HUGE_NUMBERS = [2 ** 31, 2 ** 53 + 1, 1e15, 1e308, Number.MAX_SAFE_INTEGER] as const;
const STRINGS = [
  "", " ", "a", "x\u0000y", "\u0000", "\ud800", "\udfff\ud800", "é", "日本語", "🙂🙃", "\u202eevil", "e\u0301", "\uffff", "\t\n\r",
  "0x10", "NaN", "Infinity", "1e999", "-0", "12", "true", "null", "__proto__", "constructor", "relu", "dense", "softmax", "input", "output",
  "00000000-0000-4000-8000-000000000000", "a".repeat(201), "b".repeat(5000), "c".repeat(100_000), "../../etc/passwd", "'; DROP TABLE \"Dataset\"; --", "%00", "\\u0000",
] as const;

function randomValue(rng: Rng, depth = 0, numbers: readonly number[] = NUMBERS): Json {
  switch (rng.int(depth > 2 ? 4 : 6)) {
    case 0: return null;
    case 1: return rng.chance(0.5);
    case 2: return rng.pick(numbers);
    case 3: return rng.pick(STRINGS);
    case 4: return Array.from({ length: rng.int(4) }, () => randomValue(rng, depth + 1, numbers));
    default: return Object.fromEntries(Array.from({ length: rng.int(4) }, () => [rng.pick(STRINGS), randomValue(rng, depth + 1, numbers)]));
  }
}

const GROWTH_BUDGET = 2_000_000;

/** About how many characters `v` renders to, counting no further than `cap`. */
function sizeAtMost(v: Json, cap: number): number {
  let size = 0;
  const stack: Json[] = [v];
  while (stack.length && size <= cap) {
    const x = stack.pop()!;
    if (typeof x === "string") size += x.length + 2;
    else if (Array.isArray(x)) { size += 2; stack.push(...x); }
    else if (x && typeof x === "object") for (const [k, c] of Object.entries(x)) { size += k.length + 3; stack.push(c); }
    else size += 5;
  }
  return size;
}

/** Every container and leaf of `root` with its parent, as far as `limit` nodes. */
function nodesOf(root: Json, limit = 2000): { parent: Json[] | Record<string, Json> | null; key: string | number; value: Json }[] {
  const out: ReturnType<typeof nodesOf> = [{ parent: null, key: "", value: root }];
  for (let i = 0; i < out.length && out.length < limit; i++) {
    const v = out[i].value;
    if (Array.isArray(v)) v.forEach((c, k) => out.push({ parent: v, key: k, value: c }));
    else if (v && typeof v === "object") for (const [k, c] of Object.entries(v)) out.push({ parent: v, key: k, value: c });
  }
  return out;
}

function mutateOnce(root: Json, rng: Rng, numbers: readonly number[]): Json {
  const nodes = nodesOf(root);
  const { parent, key, value } = rng.pick(nodes);
  const set = (v: Json | undefined) => {
    if (!parent) return v === undefined ? null : v;
    if (v === undefined) {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
    } else (parent as Record<string | number, Json>)[key] = v;
    return root;
  };
  switch (rng.int(11)) {
    case 0: return set(undefined); // drop
    case 1: return set(randomValue(rng, 0, numbers)); // wrong type
    case 2: return set(rng.pick(numbers));
    case 3: return set(rng.pick(STRINGS));
    case 4: { // deep nesting, on both sides of the 64-level limit
      let v = value;
      for (let d = rng.pick([2, 10, 62, 63, 64, 65, 300]); d > 0; d--) v = [v];
      return set(v);
    }
    case 5: { // grow an array, or an object by a key
      if (Array.isArray(value)) {
        const n = rng.pick([1, 2, 10, 100, 1000]);
        // Within a budget: compounded growth once made a 100 MB body whose cloning and rendering
        // blocked this process (the API's too, under inject) for 2 s. Oversized bodies are sent below.
        let added = 0;
        for (let k = 0; k < n && value.length; k++) {
          const copy = value[rng.int(value.length)];
          if ((added += sizeAtMost(copy, GROWTH_BUDGET)) > GROWTH_BUDGET) break;
          value.push(structuredClone(copy));
        }
        return root;
      }
      if (value && typeof value === "object") (value as Record<string, Json>)[rng.pick(STRINGS)] = randomValue(rng, 0, numbers);
      return root;
    }
    case 6: { // duplicate a key in the text
      if (value && typeof value === "object" && !Array.isArray(value)) {
        const keys = Object.keys(value);
        if (keys.length) (value as WithDuplicate)[DUPLICATE] = [rng.pick(keys), randomValue(rng, 0, numbers)];
      }
      return root;
    }
    case 7: { // rename a key
      if (parent && !Array.isArray(parent)) {
        delete parent[key];
        parent[rng.pick(STRINGS)] = value;
      }
      return root;
    }
    case 8: return set(rng.chance(0.5) ? [] : {});
    case 9: return set(structuredClone(rng.pick(nodes).value)); // another part of the body, here
    default: return set(typeof value === "string" ? value + rng.pick(STRINGS) : typeof value === "number" ? -value : rng.pick(STRINGS));
  }
}

/** JSON text, with duplicate keys and with ±Infinity written as numbers JSON.parse reads as ±Infinity. */
function render(v: Json): string {
  if (typeof v === "number") return Number.isFinite(v) ? JSON.stringify(v) : Number.isNaN(v) ? "null" : v > 0 ? "1e999" : "-1e999";
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(render).join(",")}]`;
  const dup = (v as WithDuplicate)[DUPLICATE];
  const entries = Object.entries(v).map(([k, c]) => `${JSON.stringify(k)}:${render(c)}`);
  if (dup) entries.push(`${JSON.stringify(dup[0])}:${render(dup[1])}`);
  return `{${entries.join(",")}}`;
}

interface Request {
  url: string;
  headers: Record<string, string>;
  payload?: string | Buffer;
}

const CONTENT_TYPES = ["text/plain", "text/csv", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=latin1", "application/json;;", "garbage", "application/csv"];

/** Text-level damage and wrong content types or encodings, on top of the structural mutations. */
function wrap(text: string, contentType: string, rng: Rng): Pick<Request, "headers" | "payload"> {
  const headers: Record<string, string> = { "content-type": contentType };
  let payload: string | Buffer = text;
  if (rng.chance(0.08)) payload = text.slice(0, rng.int(text.length)); // truncated
  if (rng.chance(0.002)) payload = Buffer.concat([Buffer.from(text), Buffer.alloc(65 * 2 ** 20, 0x20)]); // past the 64 MiB body limit
  if (rng.chance(0.03)) {
    const at = rng.int(text.length);
    payload = Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from([rng.pick([0xff, 0xc0, 0x80, 0xed, 0x00])]), Buffer.from(text.slice(at))]); // not UTF-8
  }
  if (rng.chance(0.06)) headers["content-type"] = rng.pick(CONTENT_TYPES);
  if (rng.chance(0.02)) delete headers["content-type"];
  if (rng.chance(0.04)) {
    headers["content-encoding"] = rng.pick(["gzip", "deflate", "br", "identity", "gzip, gzip", "x-gzip"]);
    if (headers["content-encoding"].includes("gzip") && rng.chance(0.7)) payload = gzipSync(payload);
  }
  return { headers, payload };
}

let env: TestEnv;
let auth: Record<string, string>;
let admin: Record<string, string>;
let datasetId: string;
let jobId: string;

interface Endpoint {
  name: string;
  request(rng: Rng): Request;
  /** Fewer cases where the body is not read. */
  runs?: number;
}

function jsonEndpoint(name: string, url: (rng: Rng) => string, headers: () => Record<string, string>, bases: () => object[], numbers: readonly number[] = [...NUMBERS, ...HUGE_NUMBERS]): Endpoint {
  return {
    name,
    request(rng) {
      let body = structuredClone(rng.pick(bases())) as Json;
      for (let n = 1 + rng.int(3); n > 0; n--) body = mutateOnce(body, rng, numbers);
      const wrapped = wrap(render(body), "application/json", rng);
      return { url: url(rng), headers: { ...headers(), ...wrapped.headers }, payload: wrapped.payload };
    },
  };
}

const CSV = IRIS_CSV.split("\n").slice(0, 21).join("\n") + "\n";
const CSV_BITS = [",", '"', "\n", "\r\n", "\u0000", "é", "\ud800", " ", "0x10", "1e999", "NaN", "-", "\t", '""', "\ufeff", "x".repeat(3000), ",,,,,", "\n\n\n"];

function csvRequest(rng: Rng): Request {
  const lines = CSV.split("\n");
  let text = CSV;
  for (let n = 1 + rng.int(3); n > 0; n--) {
    switch (rng.int(6)) {
      case 0: { const at = rng.int(text.length + 1); text = text.slice(0, at) + rng.pick(CSV_BITS) + text.slice(at); break; }
      case 1: { const at = rng.int(text.length); text = text.slice(0, at) + text.slice(at + 1 + rng.int(40)); break; }
      case 2: { const l = rng.int(lines.length); lines.splice(l, 0, ...Array.from({ length: rng.pick([1, 2, 50]) }, () => lines[l])); text = lines.join("\n"); break; }
      case 3: text = lines.slice(rng.int(3)).join("\n"); break;
      case 4: text = text.replace(/[0-9.]+/, rng.pick(["0x10", "0b1", "1e999", "-0", "", "Infinity", "1_0", "٣", "1,5", "9".repeat(400)])); break;
      default: text = rng.pick(["", "\n", "a", "a,b\n", "species\nx\ny\n", "a,b\n1,x\n1,x\n", "a,a\n1,2\n"]);
    }
  }
  const query = new URLSearchParams({ name: "fuzz", label: "species" });
  for (let n = rng.int(3); n > 0; n--) {
    const k = rng.pick(["name", "label", "task", "other"]);
    if (rng.chance(0.3)) query.delete(k);
    else if (rng.chance(0.2)) query.append(k, rng.pick(STRINGS));
    else query.set(k, rng.pick([...STRINGS, "classification", "regression", "sepal_length"]));
  }
  const wrapped = wrap(text, rng.chance(0.9) ? "text/csv" : "application/csv", rng);
  return { url: `/v1/datasets?${query}`, headers: { ...auth, ...wrapped.headers }, payload: wrapped.payload };
}

/** Model names in URLs: valid ones, unknown ones, and ones the route cannot match. */
const modelName = (rng: Rng, known: string) => rng.chance(0.85) ? known : rng.pick(["nope", "a.b-c_d", "x".repeat(101), "x".repeat(300), "%00", "%F0%9F%99%82", "%E0%A4%A", "%ED%A0%80", "..", "-a", "a%20b", "a:predict"]);

const SPECS = (): object[] => [
  IRIS_SPEC,
  { input: { shape: [28, 28, 1] }, layers: [{ type: "conv2d", filters: 4, kernelSize: 3, activation: "relu" }, { type: "maxPooling2d", poolSize: 2 }, { type: "flatten" }, { type: "dense", units: 10, activation: "softmax" }] },
  { input: { shape: [10, 3] }, layers: [{ type: "lstm", units: 8 }, { type: "dense", units: 1 }] },
  {
    inputs: { left: { shape: [4] }, right: { shape: [4] } },
    nodes: { l: { type: "dense", units: 8, activation: "relu", inputs: ["left"] }, r: { type: "shared", of: "l", inputs: ["right"] }, d: { type: "distance", inputs: ["l", "r"] } },
    outputs: ["d"], loss: "contrastive",
  },
];

const endpoints: Endpoint[] = [
  jsonEndpoint("POST /v1/api-keys", () => "/v1/api-keys", () => admin, () => [{ tenant: "fuzz-tenant", name: "k" }, { tenant: "acme" }]),
  jsonEndpoint("POST /v1/datasets (JSON)", () => "/v1/datasets", () => auth, () => [
    { name: "d", features: [[1, 2], [3, 4], [5, 6]], labels: ["a", "b", "a"] },
    { name: "r", features: [[1], [2]], labels: [0.5, 1.5], task: "regression", featureNames: ["x"] },
    { name: "img", features: [[[[0], [1]], [[1], [0]]], [[[1], [1]], [[0], [0]]]], labels: [[[0, 1], [1, 0]], [[1, 1], [0, 0]]], task: "classification" },
    { name: "flat", features: [[1, 2, 3, 4], [5, 6, 7, 8]], labels: ["a", "b"], inputShape: [2, 2, 1] },
    { name: "named", inputs: { left: [[1, 2], [3, 4]], right: [[5], [6]] }, outputs: { cls: ["a", "b"], val: [1, 2] }, task: { cls: "classification", val: "regression" } },
  ]),
  { name: "POST /v1/datasets (CSV)", request: csvRequest },
  jsonEndpoint("POST /v1/models", () => "/v1/models", () => auth, () => SPECS().map((spec, i) => ({ name: `fuzz-${i}`, spec })), NUMBERS),
  jsonEndpoint("POST /v1/models:validate", () => "/v1/models:validate", () => auth, () => SPECS().map((spec) => ({ spec })), NUMBERS),
  jsonEndpoint("POST /v1/models/{name}:predict (trained)", (rng) => `/v1/models/${modelName(rng, "iris")}:predict`, () => auth, () => [
    { instances: [[5.1, 3.5, 1.4, 0.2]] },
    { instances: [[5.1, 3.5, 1.4, 0.2], [6.4, 3.2, 4.5, 1.5]] },
    { instances: [{ input: [5.1, 3.5, 1.4, 0.2] }] },
  ]),
  jsonEndpoint("POST /v1/models/{name}:predict (untrained)", (rng) => `/v1/models/${modelName(rng, "untrained")}:predict`, () => auth, () => [{ instances: [[1, 2, 3, 4]] }]),
  // Probes cost gradients, not forward passes: fewer bodies, still every field mutated.
  { runs: Math.ceil(RUNS / 4), ...jsonEndpoint("POST /v1/models/{name}/versions/{v}/adversarial", (rng) => `/v1/models/${modelName(rng, "iris")}/versions/${rng.chance(0.9) ? 1 : rng.pick(["0", "2", "-1", "x", "1e3"])}/adversarial`, () => auth, () => [
    { method: "fgsm", epsilon: [0, 0.5], instances: [[5.1, 3.5, 1.4, 0.2], [6.4, 3.2, 4.5, 1.5]], labels: ["setosa", 1] },
    { method: "pgd", epsilon: 0.3, steps: 3, stepSize: 0.1, targetClass: "virginica", range: [0, 8], instances: [[5.1, 3.5, 1.4, 0.2]], labels: [0] },
  ]) },
  { runs: Math.ceil(RUNS / 4), ...jsonEndpoint("POST /v1/models/{name}/versions/{v}/occlusion", (rng) => `/v1/models/${modelName(rng, "iris")}/versions/1/${rng.pick(["occlusion", "saliency", "activations", "occlusion.png"])}`, () => auth, () => [
    { instances: [[5.1, 3.5, 1.4, 0.2]], class: "setosa", patch: 2, stride: 1, fill: 0 },
    { instances: [[5.1, 3.5, 1.4, 0.2], [6.4, 3.2, 4.5, 1.5]] },
    { layer: "l0_dense", instances: [[5.1, 3.5, 1.4, 0.2]] },
  ]) },
  // Insight over a dataset's rows: checked in full before a job is queued (no worker runs here).
  { runs: Math.ceil(RUNS / 4), ...jsonEndpoint("POST /v1/models/{name}/versions/{v}/tsne (jobs)", (rng) => `/v1/models/${modelName(rng, "iris")}/versions/1/${rng.pick(["tsne", "top-activations", "adversarial"])}`, () => auth, () => [
    { dataset: datasetId, layer: "l0_dense", perplexity: 5, iterations: 50, split: "all", rows: 100, seed: 3 },
    { dataset: datasetId, layer: "l0_dense", unit: 2, k: 4, split: "validation" },
    { dataset: datasetId, method: "pgd", epsilon: [0, 0.5], steps: 3, targetClass: "setosa", rows: 20 },
  ]) },
  { runs: Math.ceil(RUNS / 4), ...jsonEndpoint(
    "POST /v1/insight-jobs/{id}/cancel",
    (rng) => `/v1/insight-jobs/${rng.pick(["not-a-uuid", "00000000-0000-4000-8000-000000000000", "%00", "%E0%A4%A", "x".repeat(300)])}${rng.pick(["/cancel", ".png", ""])}`,
    () => auth,
    () => [{}],
  ) },
  jsonEndpoint("POST /v1/training-jobs", () => "/v1/training-jobs", () => auth, () => [
    { model: "iris", dataset: datasetId, epochs: 1, batchSize: 8, optimizer: { type: "adam", learningRate: 0.01 }, validationSplit: 0.2, seed: 1 },
    { model: "iris", dataset: datasetId },
    { model: "iris", dataset: datasetId, optimizer: { type: "sgd", learningRate: 0.1, momentum: 0.9 } },
  ]),
  { runs: Math.ceil(RUNS / 4), ...jsonEndpoint(
    "POST /v1/training-jobs/{id}/cancel",
    (rng) => `/v1/training-jobs/${rng.chance(0.85) ? jobId : rng.pick(["not-a-uuid", "00000000-0000-4000-8000-000000000000", "%00", "%E0%A4%A", "x".repeat(300)])}/cancel`,
    () => auth,
    () => [{}, { reason: "x" }],
  ) },
];

before(async () => {
  env = await createTestEnv();
  auth = await env.tenant("acme");
  admin = { authorization: `Bearer ${env.adminKey}` };
  const inject = env.app.inject.bind(env.app);
  datasetId = await uploadIris(inject, auth);
  await createModel(inject, auth, "iris");
  await createModel(inject, auth, "untrained");
  await trainInProcess(env, auth, "iris", datasetId);
  const job = await inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "iris", dataset: datasetId } });
  assert.equal(job.statusCode, 202, job.body);
  jobId = job.json().id;
});
after(async () => env?.close());

endpoints.forEach((endpoint, e) => {
  test(`fuzz: ${endpoint.name}`, async (t) => {
    if (e === 0) t.diagnostic(`seed ${SEED} (TRAINYARD_FUZZ_SEED=${SEED} replays it), ${RUNS} bodies per endpoint (TRAINYARD_FUZZ_RUNS)`);
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    const started = performance.now();
    const runs = endpoint.runs ?? RUNS;
    const one = async (i: number) => {
      const req = endpoint.request(caseRng(e, i));
      const what = () => `case ${i}: ${req.url} ${JSON.stringify(req.headers)} ${String(req.payload).slice(0, 300)}`;
      try {
        const res = await env.app.inject({ method: "POST", ...req });
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        if (res.statusCode >= 500) failures.push(`${what()}\n  → ${res.statusCode} ${res.body.slice(0, 300)}`);
        else if (res.statusCode >= 400 && !String(res.headers["content-type"]).startsWith("application/problem+json")) {
          failures.push(`${what()}\n  → ${res.statusCode} without problem+json: ${res.body.slice(0, 300)}`);
        }
      } catch (err) {
        failures.push(`${what()}\n  → inject threw ${(err as Error).stack}`);
      }
    };
    // A few requests in flight at once, so that one's database round trips overlap another's work.
    let next = 0;
    await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
      while (next < runs && failures.length < 5) await one(next++);
    }));
    const tally = [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(" ");
    t.diagnostic(`${endpoint.name}: ${runs} bodies in ${Math.round(performance.now() - started)} ms (${tally})`);
    assert.deepEqual(failures, [], `seed ${SEED}: rerun with TRAINYARD_FUZZ_SEED=${SEED}\n${failures.join("\n")}`);
  });
});
