// `npm run bench:validate`: how long `POST /v1/models:validate` holds the event loop for a spec
// (its schema parse and ModelService.validate run synchronously, so their time is the block).
// Side by side:
//   - old path: build the model with every weight initialised, then check the limits (what
//     inspectSpec did before the preflight; today's buildModel adds its preflight walk, a few ms);
//   - new path: inspectSpec — limits from shapes first, then a build with zeroed weights.
// Each measurement runs in a fresh process, so one's wasm memory growth does not slow the next.
// The old path is not run where it is unbounded (minutes, gigabytes) or can no longer be reached.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { initBackend } from "../lib/engine/backend.ts";
import { buildModel } from "../lib/engine/build/build-model.ts";
import { z } from "zod";
import { ValidationError } from "../lib/errors.ts";
import { modelSpecSchema } from "../lib/model-spec/model-spec-schema.ts";
import { renderTemplate } from "../lib/model-spec/templates/index.ts";
import { inspectSpec } from "../lib/registry/model-service.ts";

/** The API's defaults (lib/config/env.ts). */
const LIMITS = { maxParams: 50_000_000, maxLayers: 1000, maxFlopsPerSample: 2e10 };

function chain(n: number) {
  const nodes: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) nodes[`n${i}`] = { type: "activation", activation: "relu", inputs: [i ? `n${i - 1}` : "x"] };
  return { inputs: { x: { shape: [4] } }, nodes, outputs: [`n${n - 1}`] };
}

/** name → [spec as a client sends it, why the old path is not run (undefined: it is)]. */
const CASES: Record<string, [() => unknown, string?]> = {
  "dense 1e9 units on [4] (5e9 params)": [() => ({ input: { shape: [4] }, layers: [{ type: "dense", units: 1e9 }] }), "minutes, >12 GB"],
  "dense 10,000 on [10000] (1e8 params)": [() => ({ input: { shape: [10000] }, layers: [{ type: "dense", units: 10000 }] })],
  "dense 7,000 on [7000] (4.9e7 params, just under)": [() => ({ input: { shape: [7000] }, layers: [{ type: "dense", units: 7000 }] })],
  "lstm 500 units on [10, 8] (1e6 params)": [() => ({ input: { shape: [10, 8] }, layers: [{ type: "lstm", units: 500 }] })],
  "positionalEncoding maxLength 7e6 on [10, 8] (5.6e7 table values)": [() => ({ input: { shape: [10, 8] }, layers: [{ type: "positionalEncoding", maxLength: 7_000_000 }] })],
  "positionalEncoding maxLength 6e6 on [10, 8] (4.8e7, just under)": [() => ({ input: { shape: [10, 8] }, layers: [{ type: "positionalEncoding", maxLength: 6_000_000 }] })],
  "resnet (zoo default, 32×32×3)": [() => renderTemplate("resnet", {})],
  "vgg (zoo default, 32×32×3)": [() => renderTemplate("vgg", {})],
  "vgg at 64×64×3": [() => renderTemplate("vgg", { inputShape: [64, 64, 3] })],
  "graph chain of 1,000 nodes (the most allowed)": [() => chain(1000)],
  "graph chain of 5,000 nodes": [() => chain(5000), "answered 500 (call stack exceeded); now refused by the schema"],
};

const args = process.argv.slice(2);
const arg = (name: string) => args[args.indexOf(`--${name}`) + 1];

/** One check of the spec as the route runs it: parse, then the old or the new path. Returns the answer. */
function check(body: { spec: unknown }, old: boolean): string {
  try {
    const spec = modelSpecSchema.parse(body.spec);
    if (old) {
      const { model, summary } = buildModel(spec);
      model.dispose();
      if (summary.totalParams > LIMITS.maxParams || summary.flopsPerSample > LIMITS.maxFlopsPerSample) return "400 (limit)";
    } else inspectSpec(spec, LIMITS);
    return "200";
  } catch (err) {
    if (err instanceof z.ZodError) return `400: ${err.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`;
    return `${err instanceof ValidationError ? 400 : 500}: ${(err as Error).message}`;
  }
}

if (args.includes("--run")) {
  // One case in this process. A check under half a second is repeated and the median of the warm
  // runs reported, as a running API would see it; a slower one is reported once.
  await initBackend("auto");
  const [make] = CASES[arg("case")];
  const body = JSON.parse(JSON.stringify({ spec: make() }));
  const old = arg("run") === "old";
  const timed = () => {
    const started = performance.now();
    const answer = check(body, old);
    return { ms: performance.now() - started, answer };
  };
  const first = timed();
  const warm = first.ms < 500 ? Array.from({ length: 5 }, () => timed().ms).sort((a, b) => a - b) : [];
  console.log(JSON.stringify({ ms: warm.length ? warm[2] : first.ms, answer: first.answer }));
} else {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const run = (name: string, how: string) => {
    const r = spawnSync(process.execPath, ["--import", "tsx", "bench/validate.bench.ts", "--run", how, "--case", name], { cwd: root, encoding: "utf8", timeout: 300_000 });
    const line = r.stdout.split("\n").find((l) => l.startsWith("{"));
    return line ? (JSON.parse(line) as { ms: number; answer: string }) : { ms: NaN, answer: r.error ? String(r.error.message) : r.stderr.slice(-200) };
  };
  console.log("\n:validate, event-loop time (schema parse + check), milliseconds (median of 5 warm runs when under 500)\n");
  console.log("| spec | old path: build, then limits | new path: preflight, then zeroed build | new answer |");
  console.log("|---|---:|---:|---|");
  for (const [name, [, skip]] of Object.entries(CASES)) {
    const oldCell = skip ? `not run: ${skip}` : (() => { const r = run(name, "old"); return `${r.ms.toFixed(0)}${r.answer === "200" ? "" : ` (${r.answer.slice(0, 11)})`}`; })();
    const fresh = run(name, "new");
    console.log(`| ${name} | ${oldCell} | ${fresh.ms.toFixed(0)} | ${fresh.answer.slice(0, 90)} |`);
  }
}
