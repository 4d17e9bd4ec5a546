// `npm run bench:train`: training throughput, one thread each, side by side in one run:
//   - tfjs model.fit with wasm's own kernels: what a plain TensorFlow.js script gets on this backend
//     (with Trainyard's Conv2DBackpropFilter, which stock wasm lacks, so that LeNet-5 runs at all);
//   - a plain loop (batches built in JavaScript, optimizer.minimize with tfjs's own Adam) on Trainyard's kernels;
//   - Trainyard's training loop in process (lib/engine/train), on one thread and on two (data parallel);
//   - Trainyard through the service: the API and a real worker process on a database of its own,
//     a job per workload (for LeNet-5 a second one on two threads): its steady epochs (from the
//     job's event stream) and job start → finish;
//   - PyTorch on the CPU, one thread (bench/pytorch-yardstick.py), when python3-torch is installed.
//     node --import tsx bench/train-compare.ts [--rows 8192] [--epochs 4] [--workloads mlp-128,lenet5-64] [--skip-service]
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { Redis } from "ioredis";
import { apiConfigSchema, parseConfig } from "../lib/config/env.ts";
import { currentBackend, initBackend } from "../lib/engine/backend.ts";
import { buildModel } from "../lib/engine/build/build-model.ts";
import { withSeededRandom } from "../lib/engine/seeded-random.ts";
import { compileForTraining, train, type TrainData } from "../lib/engine/train/trainer.ts";
import { registerMissingWasmKernels } from "../lib/engine/wasm-kernels.ts";
import { ensureDatabase, migrateDeploy } from "../lib/db/migrate.ts";
import { modelSpecSchema, type ModelSpec } from "../lib/model-spec/model-spec-schema.ts";
import { renderTemplate } from "../lib/model-spec/templates/index.ts";
import { eventStreamKey } from "../lib/training/job-events.ts";
import { buildApp } from "../services/app.ts";
import { cleanRedis } from "../test/helpers/app.ts";
import { dropDatabase } from "../test/helpers/db.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const arg = (name: string, d: string) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : d);
const ROWS = Number(arg("rows", "8192"));
const EPOCHS = Number(arg("epochs", "4"));
const progress = (m: string) => process.stderr.write(`${m}\n`);

interface Workload {
  id: string;
  label: string;
  spec: ModelSpec;
  batchSize: number;
  data: () => TrainData;
  /** The same rows as the service's dataset upload takes them. */
  upload: "mnist" | "sequences";
}

const mnist = (n: number): TrainData => {
  const sets = createRequire(import.meta.url)("mnist").set(Math.min(n, 10_000), 0) as { training: { input: number[]; output: number[] }[] };
  const rows = sets.training;
  const x = new Float32Array(rows.length * 784);
  rows.forEach((r, i) => x.set(r.input, i * 784));
  return {
    rows: rows.length, inputs: [{ data: x, shape: [28, 28, 1] }],
    targets: [{ name: "output", task: "classification", classes: Array.from({ length: 10 }, (_, i) => String(i)), data: Float32Array.from(rows, (r) => r.output.indexOf(1)), shape: [1] }],
  };
};

/** Seeded sequences [20, 8] in 4 classes (the class shifts the mean): the LSTM's data. */
const sequences = (n: number): TrainData => {
  let s = 7;
  const random = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const x = new Float32Array(n * 160);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 4;
    for (let j = 0; j < 160; j++) x[i * 160 + j] = random() - 0.5 + 0.2 * y[i];
  }
  return { rows: n, inputs: [{ data: x, shape: [20, 8] }], targets: [{ name: "output", task: "classification", classes: ["0", "1", "2", "3"], data: y, shape: [1] }] };
};

const mlpSpec = modelSpecSchema.parse({ input: { shape: [28, 28, 1] }, layers: [{ type: "flatten" }, { type: "dense", units: 256, activation: "relu" }, { type: "dense", units: 128, activation: "relu" }, { type: "dense", units: 10, activation: "softmax" }] });
const WORKLOADS: Workload[] = [
  { id: "mlp-128", label: "MLP 784-256-128-10, batch 128", spec: mlpSpec, batchSize: 128, data: () => mnist(ROWS), upload: "mnist" },
  { id: "mlp-512", label: "MLP 784-256-128-10, batch 512", spec: mlpSpec, batchSize: 512, data: () => mnist(ROWS), upload: "mnist" },
  { id: "lenet5-64", label: "LeNet-5 28×28×1, batch 64", spec: renderTemplate("lenet5", { inputShape: [28, 28, 1], classes: 10 }), batchSize: 64, data: () => mnist(ROWS), upload: "mnist" },
  { id: "lstm-64", label: "LSTM 32 over 20×8, batch 64", spec: modelSpecSchema.parse({ input: { shape: [20, 8] }, layers: [{ type: "lstm", units: 32 }, { type: "dense", units: 4, activation: "softmax" }] }), batchSize: 64, data: () => sequences(ROWS), upload: "sequences" },
];
const chosen = arg("workloads", WORKLOADS.map((w) => w.id).join(",")).split(",");
const workloads = WORKLOADS.filter((w) => chosen.includes(w.id));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** Samples per second of the steady epochs (the first pays for warm-up). */
const steadyRate = (rows: number, epochMs: number[]) => Math.round(rows / (median(epochMs.slice(1)) / 1000));

async function model(spec: ModelSpec): Promise<tf.LayersModel> {
  return withSeededRandom(1, () => buildModel(spec).model);
}

const oneHot = (d: TrainData, rows: ArrayLike<number>) => {
  const k = d.targets[0].classes.length;
  const out = new Float32Array(rows.length * k);
  for (let j = 0; j < rows.length; j++) out[j * k + d.targets[0].data[rows[j]]] = 1;
  return tf.tensor2d(out, [rows.length, k]);
};

async function fit(w: Workload, d: TrainData): Promise<number> {
  registerMissingWasmKernels({ fastTransposedMatMul: false, fastAvgPoolGrad: false, fastTanh: false, fastConv2dBackpropInput: false });
  try {
    const m = await model(w.spec);
    m.compile({ optimizer: tf.train.adam(0.001), loss: "categoricalCrossentropy" });
    const x = tf.tensor(d.inputs[0].data, [d.rows, ...d.inputs[0].shape]);
    const y = oneHot(d, Int32Array.from({ length: d.rows }, (_, i) => i));
    const epochMs: number[] = [];
    let t = performance.now();
    await m.fit(x, y, { batchSize: w.batchSize, epochs: EPOCHS, shuffle: true, verbose: 0, callbacks: { onEpochEnd: async () => {
      epochMs.push(performance.now() - t);
      t = performance.now();
    } } });
    tf.dispose([x, y]);
    m.dispose();
    return steadyRate(d.rows, epochMs);
  } finally {
    registerMissingWasmKernels();
  }
}

async function plainLoop(w: Workload, d: TrainData): Promise<number> {
  const m = await model(w.spec);
  const optimizer = tf.train.adam(0.001);
  const width = d.inputs[0].shape.reduce((a, b) => a * b, 1);
  const epochMs: number[] = [];
  for (let e = 0; e < EPOCHS; e++) {
    const order = tf.util.createShuffledIndices(d.rows);
    const t = performance.now();
    for (let s = 0; s < d.rows; s += w.batchSize) {
      const rows = order.subarray(s, Math.min(s + w.batchSize, d.rows));
      const xb = new Float32Array(rows.length * width);
      rows.forEach((r, j) => xb.set(d.inputs[0].data.subarray(r * width, (r + 1) * width), j * width));
      tf.tidy(() => {
        const x = tf.tensor(xb, [rows.length, ...d.inputs[0].shape]);
        const y = oneHot(d, rows);
        const loss = optimizer.minimize(() => tf.mean(tf.metrics.categoricalCrossentropy(y, m.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar, true);
        loss?.dataSync();
      });
    }
    epochMs.push(performance.now() - t);
  }
  m.dispose();
  optimizer.dispose();
  return steadyRate(d.rows, epochMs);
}

async function trainerLoop(w: Workload, d: TrainData, threads = 1): Promise<number> {
  const m = await model(w.spec);
  compileForTraining(m, { type: "adam", learningRate: 0.001 }, "categoricalCrossentropy");
  const epochMs: number[] = [];
  let t = performance.now();
  await train(m, d, { epochs: EPOCHS, batchSize: w.batchSize, optimizer: { type: "adam", learningRate: 0.001 }, validationSplit: 0, seed: 1, threads }, "categoricalCrossentropy", {
    onEpochEnd: async () => {
      epochMs.push(performance.now() - t);
      t = performance.now();
    },
  });
  m.dispose();
  return steadyRate(d.rows, epochMs);
}

// ---- through the service -------------------------------------------------------------------------

const pgBase = (process.env.PG_URL ?? "postgresql://postgres@127.0.0.1:5432").replace(/\/$/, "");
const suffix = randomBytes(4).toString("hex");
const dbName = `trainyard_bench_train_${suffix}`;
const databaseUrl = `${pgBase}/${dbName}`;
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const prefix = `bench-train-${suffix}`;
const adminKey = randomBytes(32).toString("hex");
let worker: ChildProcess | undefined;

interface Served {
  steady: number;
  endToEnd: number;
  /** A second job with `threads: 2` (conv nets: where data parallelism is meant to pay). */
  steady2?: number;
}

async function service(todo: Workload[]): Promise<Map<string, Served>> {
  const out = new Map<string, Served>();
  await ensureDatabase(databaseUrl);
  await migrateDeploy(databaseUrl);
  const env = { DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, TRAINYARD_QUEUE_PREFIX: prefix, TRAINYARD_ADMIN_KEY: adminKey, LOG_LEVEL: "warn" };
  const app = await buildApp(parseConfig(apiConfigSchema, env));
  await app.ready();
  const redis = new Redis(redisUrl);
  worker = spawn(process.execPath, ["--import", "tsx", "workers/worker.ts"], { cwd: root, env: { ...process.env, ...env, TRAINYARD_INSIGHT_CONCURRENCY: "0" }, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let tail = "";
  for (const s of [worker.stdout!, worker.stderr!]) s.on("data", (b: Buffer) => { if (process.env.BENCH_WORKER_LOG) process.stderr.write(b); tail = (tail + b.toString()).slice(-4000); });
  try {
    const call = async (method: "GET" | "POST", url: string, key: string, payload?: unknown) => {
      const res = await app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, payload: payload as object });
      if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body.slice(0, 500)}`);
      return res.json();
    };
    const { key } = await call("POST", "/v1/api-keys", adminKey, { tenant: "bench" });
    const datasets = new Map<string, string>();
    for (const w of todo) {
      if (!datasets.has(w.upload)) {
        let id: string;
        if (w.upload === "mnist") id = (await call("POST", "/v1/datasets/builtin/mnist", key, { name: "mnist", rows: ROWS })).id;
        else {
          const d = sequences(ROWS);
          const features = Array.from({ length: d.rows }, (_, i) => Array.from({ length: 20 }, (_, t) => Array.from(d.inputs[0].data.subarray(i * 160 + t * 8, i * 160 + t * 8 + 8))));
          id = (await call("POST", "/v1/datasets", key, { name: "sequences", features, labels: Array.from(d.targets[0].data, String) })).id;
        }
        datasets.set(w.upload, id);
      }
      await call("POST", "/v1/models", key, { name: w.id, spec: w.spec });
      const runJob = async (threads: number) => {
        const job = await call("POST", "/v1/training-jobs", key, { model: w.id, dataset: datasets.get(w.upload), epochs: EPOCHS, batchSize: w.batchSize, validationSplit: 0, optimizer: { type: "adam", learningRate: 0.001 }, seed: 1, threads });
        let done: { status: string; startedAt: string; finishedAt: string };
        for (;;) {
          done = await call("GET", `/v1/training-jobs/${job.id}`, key);
          if (["succeeded", "failed", "cancelled"].includes(done.status)) break;
          if (worker!.exitCode !== null) throw new Error(`the worker exited:\n${tail}`);
          await sleep(200);
        }
        if (done.status !== "succeeded") throw new Error(`${w.id}: the job ${done.status}: ${JSON.stringify(done)}`);
        // Epoch events' stream ids are their times (ms): the steady epochs as the job ran them.
        const events = await redis.xrange(eventStreamKey(prefix, job.id), "-", "+");
        const at = events.filter(([, fields]) => fields.includes("epoch")).map(([id]) => Number(id.split("-")[0]));
        const epochMs = at.slice(1).map((t, i) => t - at[i]);
        const rows = (await call("GET", `/v1/datasets/${datasets.get(w.upload)}`, key)).rows as number;
        return {
          steady: Math.round(rows / (median(epochMs) / 1000)),
          endToEnd: Math.round((rows * EPOCHS) / ((Date.parse(done.finishedAt) - Date.parse(done.startedAt)) / 1000)),
        };
      };
      const one = await runJob(1);
      out.set(w.id, { ...one, ...(w.id.startsWith("lenet") ? { steady2: (await runJob(2)).steady } : {}) });
      progress(`service ${w.id}: ${JSON.stringify(out.get(w.id))}`);
    }
  } finally {
    if (worker.pid) process.kill(-worker.pid, "SIGKILL");
    redis.disconnect();
    await app.close();
  }
  return out;
}

async function cleanup(): Promise<void> {
  if (worker?.pid && worker.exitCode === null) {
    try {
      process.kill(-worker.pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  await cleanRedis(prefix).catch(() => {});
  await dropDatabase(dbName, pgBase).catch((err: Error) => console.error(`cleanup: database ${dbName} not dropped: ${err.message}`));
}

function pytorch(todo: Workload[]): Map<string, number> | undefined {
  // Debian's python3-torch is for Debian's python3, which a pyenv shim may hide: $PYTHON, then both.
  const python = [process.env.PYTHON, "python3", "/usr/bin/python3"].filter((p): p is string => !!p)
    .find((p) => spawnSync(p, ["-c", "import torch"], { encoding: "utf8" }).status === 0);
  if (!python) return undefined;
  const probe = spawnSync(python, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" });
  // One thread: torch's own, and OpenBLAS's (Debian's libopenblas0-pthread; with the reference BLAS PyTorch's matmuls are 4–10× slower).
  const env = { ...process.env, OPENBLAS_NUM_THREADS: "1", OMP_NUM_THREADS: "1" };
  const r = spawnSync(python, ["bench/pytorch-yardstick.py", "--rows", String(ROWS), "--epochs", String(EPOCHS), "--workloads", todo.map((w) => w.id).join(",")], { cwd: root, encoding: "utf8", env });
  if (r.status !== 0) throw new Error(`PyTorch failed: ${r.stderr.slice(-2000)}`);
  const blas = spawnSync(python, ["-c", "import torch; torch.ones(64, 64) @ torch.ones(64, 64); print('OpenBLAS' if 'openblas' in open('/proc/self/maps').read() else 'not OpenBLAS: apt-get install libopenblas0-pthread')"], { encoding: "utf8", env });
  progress(`PyTorch ${probe.stdout.trim()} (BLAS: ${blas.stdout.trim() || "?"})`);
  return new Map(r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)).map((o) => [o.workload, o.samplesPerSec]));
}

async function main(): Promise<void> {
  await initBackend((process.env.TRAINYARD_BACKEND as "auto" | undefined) ?? "auto", () => {});
  progress(`backend ${currentBackend()?.name}; ${ROWS} rows, ${EPOCHS} epochs (rates: median of the steady ones)`);
  const local = new Map<string, { fit: number; plain: number; trainer: number; trainer2: number }>();
  for (const w of workloads) {
    const d = w.data();
    const r = { fit: await fit(w, d), plain: await plainLoop(w, d), trainer: await trainerLoop(w, d), trainer2: await trainerLoop(w, d, 2) };
    local.set(w.id, r);
    progress(`${w.id}: ${JSON.stringify(r)}`);
  }
  const torch = pytorch(workloads);
  const served = process.argv.includes("--skip-service") ? new Map() : await service(workloads);
  const f = (v: number | undefined) => (v === undefined ? "—" : v.toLocaleString("en-US"));
  const ratio = (a: number | undefined, b: number | undefined) => (a && b ? `${(a / b).toFixed(2)}` : "—");
  console.log(`\nTraining throughput, samples/s, one thread each (${currentBackend()?.name}; ${ROWS} rows, ${EPOCHS} epochs, median of the steady epochs; service: also job start → finish)\n`);
  console.log("| workload | tfjs model.fit, wasm's kernels | plain loop, Trainyard's kernels | Trainyard loop | service (steady) | service (start → finish) | PyTorch | service / plain loop | service / PyTorch |");
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const w of workloads) {
    const l = local.get(w.id)!;
    const s = served.get(w.id);
    const p = torch?.get(w.id);
    console.log(`| ${w.label} | ${f(l.fit)} | ${f(l.plain)} | ${f(l.trainer)} | ${f(s?.steady)} | ${f(s?.endToEnd)} | ${f(p)} | ${ratio(s?.steady, l.plain)} | ${p ? `1/${(p / (s?.steady ?? l.trainer)).toFixed(1)}` : "—"} |`);
  }
  console.log(`\nTwo threads (data parallel: the \`threads\` job option), samples/s\n`);
  console.log("| workload | Trainyard loop, 1 thread | Trainyard loop, 2 threads | 2 threads / 1 | service, 1 thread (steady) | service, 2 threads (steady) | 2 threads / 1 |");
  console.log("|---|---:|---:|---:|---:|---:|---:|");
  for (const w of workloads) {
    const l = local.get(w.id)!;
    const s = served.get(w.id);
    console.log(`| ${w.label} | ${f(l.trainer)} | ${f(l.trainer2)} | ${ratio(l.trainer2, l.trainer)} | ${f(s?.steady)} | ${f(s?.steady2)} | ${ratio(s?.steady2, s?.steady)} |`);
  }
  if (!torch) console.log("\nPyTorch: not installed (apt-get install python3-torch); its column is empty.");
}

for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => void cleanup().finally(() => process.exit(130)));
try {
  await main();
} finally {
  await cleanup();
}
