// `npm run bench:dataset-upload`: what a large upload costs end to end, between real processes.
// Generates a CSV (numeric columns, a categorical one and a class label) and a zip of small PNGs
// in class folders, streamed to a temp dir; uploads each over HTTP to a fresh API process
// (services/server.ts) and times it; then trains one epoch on each stored dataset in a fresh
// worker (workers/worker.ts). Memory is the kernel's peak RSS (VmHWM in /proc/<pid>/status) of the
// API and of the worker's training child, read every 100 ms. A failed upload (413, the API dying
// out of memory, a timeout) is a result in the table, not a failure of the bench.
//
//   npm run bench:dataset-upload                                  # 50 MB CSV, 2,000 images
//   npm run bench:dataset-upload -- --csv-mb 500 --images 20000   # the sizes of issue 8
//
// Options: --csv-mb N, --images N (0 skips one), --columns N (default 20, label and categorical
// included), --no-train, --upload-timeout S and --job-timeout S (default 900 each), --api-heap-mb N
// (the API's V8 heap limit, --max-old-space-size: with a lazy collector, RSS shows how far V8 let
// garbage pile up; with a cap, what the upload keeps alive). It uses its
// own database (trainyard_bench_<random>, dropped at the end) and Redis key prefix (deleted),
// PG_URL (default postgresql://postgres@127.0.0.1:5432) and REDIS_URL from the environment.
// MB is 10^6 bytes.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync, type WriteStream } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { getHeapStatistics } from "node:v8";
import { crc32 } from "node:zlib";
import { Redis } from "ioredis";
import { ensureDatabase, migrateDeploy } from "../lib/db/migrate.ts";
import { mulberry32 } from "../lib/random/seeded-random.ts";
import { dropDatabase } from "../test/helpers/db.ts";
import { drawShape, encode, SHAPES } from "../test/helpers/image-zips.ts";
import { freePort } from "../test/helpers/processes.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const MB = 1e6;
const IMAGE_SIDE = 32;

// ---- options ----------------------------------------------------------------------------------

interface Options {
  csvMb: number;
  images: number;
  columns: number;
  train: boolean;
  uploadTimeoutS: number;
  jobTimeoutS: number;
  apiHeapMb: number;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { csvMb: 50, images: 2000, columns: 20, train: true, uploadTimeoutS: 900, jobTimeoutS: 900, apiHeapMb: 0 };
  const numeric: Record<string, keyof Options> = {
    "--csv-mb": "csvMb", "--images": "images", "--columns": "columns", "--upload-timeout": "uploadTimeoutS", "--job-timeout": "jobTimeoutS", "--api-heap-mb": "apiHeapMb",
  };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--no-train") {
      o.train = false;
      continue;
    }
    const key = numeric[argv[i]];
    const value = Number(argv[i + 1]);
    if (!key) throw new Error(`unknown option ${argv[i]} (use --csv-mb N, --images N, --columns N, --no-train, --upload-timeout S, --job-timeout S, --api-heap-mb N)`);
    if (!Number.isFinite(value) || value < 0) throw new Error(`${argv[i]}: expected a number >= 0, got '${argv[i + 1]}'`);
    (o[key] as number) = value;
    i++;
  }
  o.images = Math.floor(o.images);
  o.columns = Math.floor(o.columns);
  if (o.columns < 3) throw new Error("--columns: at least 3 (a numeric column, the categorical one and the label)");
  // The zip written here has no zip64 records; the API takes at most 100,000 files anyway.
  if (o.images > 65_000) throw new Error("--images: at most 65,000");
  if (o.uploadTimeoutS <= 0 || o.jobTimeoutS <= 0) throw new Error("timeouts must be > 0");
  return o;
}

// ---- processes --------------------------------------------------------------------------------

/** A child process in its own process group, so that it and whatever it forks stop together. */
class Service {
  readonly child: ChildProcess;
  private tail = "";
  private readonly exited: Promise<void>;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(readonly entry: string, env: Record<string, string>) {
    this.child = spawn(process.execPath, ["--import", "tsx", entry], { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const keep = (d: Buffer) => {
      // The last 64 KB is enough to say why a process died.
      this.tail = (this.tail + d.toString()).slice(-65_536);
    };
    this.child.stdout!.on("data", keep);
    this.child.stderr!.on("data", keep);
    this.exited = new Promise((resolve) => this.child.on("exit", (code, signal) => {
      this.exit = { code, signal };
      resolve();
    }));
    running.add(this);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  output(): string {
    return this.tail;
  }

  async waitFor(ready: () => Promise<boolean> | boolean, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.alive) throw new Error(`${this.entry} exited (${describeExit(this.exit)}) before ${what}:\n${this.tail.slice(-3000)}`);
      if (await ready()) return;
      await sleep(200);
    }
    throw new Error(`${this.entry}: no ${what} within ${timeoutMs / 1000} s:\n${this.tail.slice(-3000)}`);
  }

  /** Waits up to `ms` for the process to exit (it may already have). */
  async exitWithin(ms: number): Promise<void> {
    await Promise.race([this.exited, sleep(ms)]);
  }

  /** SIGTERM to the group, SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.alive) {
      signalGroup(this.pid, "SIGTERM");
      await Promise.race([this.exited, sleep(graceMs)]);
    }
    // Whatever the group forked (a training child) goes too.
    signalGroup(this.pid, "SIGKILL");
    await Promise.race([this.exited, sleep(2000)]);
    running.delete(this);
  }
}

const running = new Set<Service>();

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* the group is gone */
  }
}

function describeExit(exit: Service["exit"]): string {
  if (!exit) return "running";
  return exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

/** Why a process died, from its exit and the end of its output. */
function deathOf(service: Service): string {
  const out = service.output();
  const why = /JavaScript heap out of memory|^\w*Error: [^\n]{0,200}/m.exec(out);
  return `${describeExit(service.exit)}${why ? `: ${why[0]}` : ""}`;
}

// ---- memory -----------------------------------------------------------------------------------

/** VmRSS and VmHWM (peak RSS) of a process in MB, or undefined once it is gone. */
function memoryOf(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
    return { rss: (kb("VmRSS") * 1024) / MB, hwm: (kb("VmHWM") * 1024) / MB };
  } catch {
    return undefined;
  }
}

/** Resets a process's VmHWM to its current RSS (Linux 4.0+), so that the next peak is the next step's alone. */
function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** Direct children of a process, from every one of its threads (a fork may come from any). */
function childrenOf(pid: number): number[] {
  const out = new Set<number>();
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        for (const c of readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim().split(/\s+/)) if (c) out.add(Number(c));
      } catch {
        /* the thread ended */
      }
    }
  } catch {
    /* the process ended */
  }
  return [...out];
}

/** Samples the peak RSS of a process (and of its children, each on its own) every 100 ms. */
class MemorySampler {
  /** Peak (VmHWM, the kernel's; at least the largest sample of VmRSS) per pid. */
  readonly peaks = new Map<number, number>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number, private readonly withChildren = false) {
    this.sample();
    this.timer = setInterval(() => this.sample(), 100);
  }

  sample(): void {
    const pids = this.withChildren ? [this.pid, ...childrenOf(this.pid)] : [this.pid];
    for (const p of pids) {
      const m = memoryOf(p);
      if (m) this.peaks.set(p, Math.max(this.peaks.get(p) ?? 0, m.hwm, m.rss));
    }
  }

  get main(): number | undefined {
    return this.peaks.get(this.pid);
  }

  /** The largest peak of any child seen. */
  get child(): number | undefined {
    const others = [...this.peaks].filter(([p]) => p !== this.pid).map(([, v]) => v);
    return others.length ? Math.max(...others) : undefined;
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}

// ---- generated files --------------------------------------------------------------------------

async function write(out: WriteStream, data: string | Buffer): Promise<void> {
  if (!out.write(data)) await once(out, "drain");
}

async function close(out: WriteStream): Promise<void> {
  out.end();
  await once(out, "finish");
}

/**
 * A CSV of about `bytes` bytes: numeric columns x0..xk, a categorical `colour` and a `class`
 * label that depends on x0 + x1, written a megabyte at a time.
 */
async function writeCsv(file: string, bytes: number, columns: number): Promise<{ rows: number; bytes: number }> {
  const random = mulberry32(1);
  const numeric = columns - 2;
  const colours = ["amber", "blue", "green", "red", "violet"];
  const out = createWriteStream(file);
  const header = `${Array.from({ length: numeric }, (_, i) => `x${i}`).join(",")},colour,class\n`;
  await write(out, header);
  let written = header.length;
  let rows = 0;
  while (written < bytes) {
    let chunk = "";
    while (chunk.length < 1 << 20 && written + chunk.length < bytes) {
      let line = "";
      let signal = 0;
      for (let i = 0; i < numeric; i++) {
        const v = random() * 20 - 10;
        if (i < 2) signal += v;
        line += `${v.toFixed(4)},`;
      }
      const cls = signal < -4 ? "low" : signal > 4 ? "high" : "mid";
      chunk += `${line}${colours[Math.floor(random() * colours.length)]},${cls}\n`;
      rows++;
    }
    await write(out, chunk); // ASCII: characters are bytes
    written += chunk.length;
  }
  await close(out);
  return { rows, bytes: written };
}

/** A zip of stored (uncompressed: PNG is compressed already) entries, written as they come. */
class StoredZipWriter {
  private offset = 0;
  private readonly central: Buffer[] = [];

  constructor(private readonly out: WriteStream) {}

  async add(name: string, data: Buffer): Promise<void> {
    const n = Buffer.from(name, "utf8");
    const crc = crc32(data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(n.length, 26);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE(20, 4);
    entry.writeUInt16LE(20, 6);
    entry.writeUInt16LE(0x0800, 8);
    entry.writeUInt32LE(crc, 16);
    entry.writeUInt32LE(data.length, 20);
    entry.writeUInt32LE(data.length, 24);
    entry.writeUInt16LE(n.length, 28);
    entry.writeUInt32LE(this.offset, 42);
    this.central.push(entry, n);
    await write(this.out, Buffer.concat([local, n, data]));
    this.offset += 30 + n.length + data.length;
    if (this.offset > 0xffff_ffff) throw new Error("the zip passed 4 GiB (no zip64 here)");
  }

  async finish(): Promise<void> {
    const cd = Buffer.concat(this.central);
    const count = this.central.length / 2;
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(count, 8);
    end.writeUInt16LE(count, 10);
    end.writeUInt32LE(cd.length, 12);
    end.writeUInt32LE(this.offset, 16);
    await write(this.out, cd);
    await write(this.out, end);
    await close(this.out);
  }
}

/** `count` 32×32×3 PNGs of circles, squares and crosses, one folder per shape. */
async function writeImageZip(file: string, count: number): Promise<{ images: number; bytes: number }> {
  const random = mulberry32(2);
  const zip = new StoredZipWriter(createWriteStream(file));
  // A few encodes at a time keep sharp's threads busy without holding more than a batch.
  const BATCH = 16;
  for (let start = 0; start < count; start += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, count - start) }, (_, j) => {
      const i = start + j;
      const shape = SHAPES[i % SHAPES.length];
      return { name: `${shape}/${String(i).padStart(6, "0")}.png`, png: encode(drawShape(shape, IMAGE_SIDE, random), IMAGE_SIDE, IMAGE_SIDE, 3) };
    });
    for (const b of batch) await zip.add(b.name, await b.png);
  }
  await zip.finish();
  return { images: count, bytes: statSync(file).size };
}

// ---- HTTP -------------------------------------------------------------------------------------

interface UploadResult {
  status: string;
  ok: boolean;
  seconds: number;
  /** When the last byte of the body was handed to the socket. */
  sentSeconds?: number;
  body?: any;
}

/** POSTs a file, streamed from disk; never throws: a refused, dropped or timed-out upload is a result. */
function uploadFile(base: string, urlPath: string, key: string, file: string, contentType: string, timeoutMs: number): Promise<UploadResult> {
  const size = statSync(file).size;
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  return new Promise((resolve) => {
    let sentSeconds: number | undefined;
    let settled = false;
    const finish = (r: Omit<UploadResult, "seconds" | "sentSeconds">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...r, seconds: elapsed(), sentSeconds });
    };
    const req = http.request(`${base}${urlPath}`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": contentType, "content-length": String(size) },
    });
    const timer = setTimeout(() => {
      finish({ status: `timeout (${timeoutMs / 1000} s)`, ok: false });
      req.destroy();
    }, timeoutMs);
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        if (text.length < 1 << 20) text += d;
      });
      res.on("end", () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        finish({ status: String(res.statusCode), ok: res.statusCode === 201, body });
      });
      res.on("error", (err) => finish({ status: `response error: ${err.message}`, ok: false }));
    });
    // An answer before the whole body (413) may come with the connection closed under us.
    req.on("error", (err) => finish({ status: `connection error: ${(err as NodeJS.ErrnoException).code ?? err.message}`, ok: false }));
    const source = createReadStream(file);
    source.on("end", () => (sentSeconds = elapsed()));
    source.on("error", (err) => req.destroy(err));
    source.pipe(req);
  });
}

async function call(base: string, method: string, urlPath: string, key: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${urlPath}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    return { status: res.status, body: text };
  }
}

// ---- the run ----------------------------------------------------------------------------------

interface Row {
  file: string;
  bytes: number;
  count: string;
  upload?: UploadResult;
  apiPeak?: number;
  datasetId?: string;
  childPeak?: number;
  workerPeak?: number;
  jobStatus?: string;
  jobSeconds?: number;
  notes: string[];
}

const suffix = randomBytes(4).toString("hex");
const pgBase = (process.env.PG_URL ?? "postgresql://postgres@127.0.0.1:5432").replace(/\/$/, "");
const dbName = `trainyard_bench_${suffix}`;
const databaseUrl = `${pgBase}/${dbName}`;
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const prefix = `trainyard-bench-${suffix}`;
const adminKey = randomBytes(32).toString("hex");
let workDir: string | undefined;
let databaseCreated = false;
const progress = (msg: string) => console.error(`· ${msg}`);

async function cleanup(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop(5000).catch(() => {})));
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = "0";
    let rounds = 0;
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 500);
      if (keys.length) await redis.del(...keys);
      cursor = next;
    } while (cursor !== "0" && ++rounds < 100_000);
  } catch (err) {
    console.error(`cleanup: Redis keys ${prefix}:* not deleted: ${(err as Error).message}`);
  } finally {
    redis.disconnect();
  }
  if (databaseCreated) {
    await dropDatabase(dbName, pgBase).catch((err: Error) => console.error(`cleanup: database ${dbName} not dropped: ${err.message}`));
  }
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

let cleaning: Promise<void> | undefined;
let interrupted = false;
const cleanOnce = () => (cleaning ??= cleanup());
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    interrupted = true;
    console.error(`\n${signal}: cleaning up`);
    void cleanOnce().finally(() => process.exit(130));
  });
}
// Last resort (an exit nobody awaited): no process group outlives the bench.
process.on("exit", () => {
  for (const s of running) signalGroup(s.pid, "SIGKILL");
});

function serviceEnv(port: number): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, TRAINYARD_QUEUE_PREFIX: prefix, TRAINYARD_ADMIN_KEY: adminKey,
    HOST: "127.0.0.1", PORT: String(port), LOG_LEVEL: "warn",
    // The default limits: a CSV and an image zip stream, within TRAINYARD_MAX_DATASET_BYTES (2 GiB).
    // A training child that dies is retried once, not five times: the bench stays bounded.
    TRAINYARD_MAX_ATTEMPTS_WITHOUT_PROGRESS: "1", TRAINYARD_RETRY_DELAY_MS: "500",
  };
}

async function startApi(heapMb: number): Promise<{ api: Service; base: string }> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const api = new Service("services/server.ts", { ...serviceEnv(port), ...(heapMb ? { NODE_OPTIONS: `--max-old-space-size=${heapMb}` } : {}) });
  await api.waitFor(async () => {
    try {
      return (await fetch(`${base}/v1/info`, { signal: AbortSignal.timeout(2000) })).ok;
    } catch {
      return false;
    }
  }, "an answer on /v1/info", 120_000);
  return { api, base };
}

const fmt = (v: number | undefined, digits = 0) => (v === undefined || Number.isNaN(v) ? "—" : v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }));

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  workDir = mkdtempSync(path.join(tmpdir(), "trainyard-bench-"));
  // Room for both files, and a margin for everything else on the disk.
  const { bavail, bsize } = statfsSync(workDir);
  const needed = o.csvMb * MB + o.images * 2000 + 1e9;
  if (bavail * bsize < needed) throw new Error(`${workDir}: ${(bavail * bsize / 1e9).toFixed(1)} GB free, need about ${(needed / 1e9).toFixed(1)} GB`);

  const rows: Row[] = [];
  if (o.csvMb > 0) {
    const started = performance.now();
    const file = path.join(workDir, "table.csv");
    const csv = await writeCsv(file, o.csvMb * MB, o.columns);
    progress(`generated ${file}: ${fmt(csv.bytes / MB, 1)} MB, ${fmt(csv.rows)} rows, ${o.columns} columns in ${fmt((performance.now() - started) / 1000, 1)} s`);
    rows.push({ file, bytes: csv.bytes, count: fmt(csv.rows), notes: [] });
  }
  if (o.images > 0) {
    const started = performance.now();
    const file = path.join(workDir, "shapes.zip");
    const zip = await writeImageZip(file, o.images);
    progress(`generated ${file}: ${fmt(zip.bytes / MB, 1)} MB, ${fmt(zip.images)} PNGs of ${IMAGE_SIDE}×${IMAGE_SIDE}×3 in ${fmt((performance.now() - started) / 1000, 1)} s`);
    rows.push({ file, bytes: zip.bytes, count: fmt(zip.images), notes: [] });
  }

  databaseCreated = true; // (dropped IF EXISTS: a signal during the creation leaves nothing behind)
  await ensureDatabase(databaseUrl);
  await migrateDeploy(databaseUrl);
  progress(`database ${dbName}, Redis prefix ${prefix}`);

  // Each upload goes to a fresh API, so each peak is that upload's alone (and a crash costs one).
  let key: string | undefined;
  for (const row of rows) {
    const { api, base } = await startApi(o.apiHeapMb);
    if (!key) {
      const res = await call(base, "POST", "/v1/api-keys", adminKey, { tenant: "bench" });
      if (res.status !== 201) throw new Error(`creating a tenant key: ${res.status} ${JSON.stringify(res.body)}`);
      key = res.body.key as string;
    }
    // Start-up (tsx compiling, the backend loading) has its own peak: let it settle and forget it.
    await sleep(2000);
    const baseline = memoryOf(api.pid)?.rss;
    if (!resetPeak(api.pid)) row.notes.push("API peak includes its start-up (/proc/<pid>/clear_refs not writable)");
    const sampler = new MemorySampler(api.pid);
    const csv = row.file.endsWith(".csv");
    const query = csv ? "?name=bench-table&label=class" : "?name=bench-shapes";
    progress(`uploading ${path.basename(row.file)} (${fmt(row.bytes / MB, 1)} MB) to API pid ${api.pid} (RSS ${fmt(baseline)} MB at rest)`);
    row.upload = await uploadFile(base, `/v1/datasets${query}`, key, row.file, csv ? "text/csv" : "application/zip", o.uploadTimeoutS * 1000);
    // A dropped connection may be the API dying: give its exit a moment to arrive.
    if (!row.upload.ok) await api.exitWithin(3000);
    sampler.stop();
    row.apiPeak = sampler.main;
    if (!api.alive) row.upload = { ...row.upload, status: `API died (${deathOf(api)}); client saw ${row.upload.status}`, ok: false };
    else if (!row.upload.ok) {
      if (row.upload.body !== undefined) row.notes.push(`answer: ${JSON.stringify(row.upload.body).slice(0, 300)}`);
      const logged = api.output().trim().split("\n").at(-1);
      if (logged) row.notes.push(`API log: ${logged.slice(0, 400)}`);
    }
    if (row.upload.ok) row.datasetId = row.upload.body.id;
    if (row.upload.ok && !csv) row.notes.push(`${fmt(row.upload.body.rows / row.upload.seconds)} images/s`);
    row.notes.push(`API RSS at rest ${fmt(baseline)} MB; body sent after ${fmt(row.upload.sentSeconds, 1)} s`);
    progress(`${path.basename(row.file)}: ${row.upload.status} after ${fmt(row.upload.seconds, 1)} s (body sent after ${fmt(row.upload.sentSeconds, 1)} s), API peak ${fmt(row.apiPeak)} MB`);
    await api.stop();
  }

  if (o.train && key && rows.some((r) => r.datasetId)) {
    const { api, base } = await startApi(o.apiHeapMb);
    for (const row of rows.filter((r) => r.datasetId)) {
      const view = (await call(base, "GET", `/v1/datasets/${row.datasetId}`, key)).body;
      const input = view.inputs[0];
      const classes = (view.classes as string[]).length;
      const model = `bench-${row.datasetId!.slice(0, 8)}`;
      let spec: object;
      let batchSize: number;
      if (input.kind === "image") {
        spec = {
          input: { shape: input.shape },
          layers: [
            { type: "conv2d", filters: 8, kernelSize: 3, activation: "relu" }, { type: "maxPooling2d", poolSize: 2 },
            { type: "conv2d", filters: 16, kernelSize: 3, activation: "relu" }, { type: "globalAveragePooling2d" },
            { type: "dense", units: classes, activation: "softmax" },
          ],
        };
        batchSize = 64;
      } else {
        // The model sees the processed row: categorical columns are one-hot by default.
        const width = (input.columns as { kind: string; categories?: string[] }[]).reduce((w, c) => w + (c.kind === "categorical" ? (c.categories?.length ?? 1) : 1), 0);
        spec = { input: { shape: [width] }, layers: [{ type: "dense", units: 32, activation: "relu" }, { type: "dense", units: classes, activation: "softmax" }] };
        batchSize = 1024;
      }
      const created = await call(base, "POST", "/v1/models", key, { name: model, spec });
      if (created.status !== 201) {
        row.jobStatus = `model ${created.status}`;
        row.notes.push(`model: ${JSON.stringify(created.body).slice(0, 300)}`);
        continue;
      }
      // A fresh worker per job: BullMQ reuses its training child, whose peak would carry over.
      const worker = new Service("workers/worker.ts", serviceEnv(0));
      await worker.waitFor(() => /consuming 'training'/.test(worker.output()), "its 'consuming' line", 120_000);
      const sampler = new MemorySampler(worker.pid, true);
      const job = await call(base, "POST", "/v1/training-jobs", key, { model, dataset: row.datasetId, epochs: 1, batchSize, seed: 1 });
      if (job.status !== 202) {
        row.jobStatus = `job ${job.status}`;
        row.notes.push(`job: ${JSON.stringify(job.body).slice(0, 300)}`);
      } else {
        progress(`training ${model} on ${path.basename(row.file)} (job ${job.body.id}, worker pid ${worker.pid})`);
        const deadline = Date.now() + o.jobTimeoutS * 1000;
        let view = job.body;
        while (!["succeeded", "failed", "cancelled"].includes(view.status) && Date.now() < deadline && worker.alive) {
          await sleep(1000);
          view = (await call(base, "GET", `/v1/training-jobs/${view.id}`, key)).body;
        }
        row.jobStatus = view.status;
        if (!["succeeded", "failed", "cancelled"].includes(view.status)) {
          row.jobStatus = worker.alive ? `${view.status}, timeout (${o.jobTimeoutS} s)` : `${view.status}, worker died (${deathOf(worker)})`;
          await call(base, "POST", `/v1/training-jobs/${view.id}/cancel`, key).catch(() => {});
        }
        if (view.startedAt && view.finishedAt) row.jobSeconds = (Date.parse(view.finishedAt) - Date.parse(view.startedAt)) / 1000;
        if (view.error) row.notes.push(`job error: ${String(view.error).slice(0, 300)}`);
        if (view.lastInterruption) row.notes.push(`job interruption: ${String(view.lastInterruption).slice(0, 300)}`);
        if (view.metrics) row.notes.push(`job metrics: ${Object.entries(view.metrics as Record<string, number>).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(", ")}`);
        const load = /load(?:ed|ing)? (?:the )?dataset[^\n]*?(\d+(?:\.\d+)?\s*m?s)\b/i.exec(worker.output());
        row.notes.push(load ? `worker log: ${load[0]}` : "dataset load time: not in the worker log");
        const deaths = worker.output().match(/[^\n]*(?:died|failed)[^\n]*/g);
        if (deaths) row.notes.push(...deaths.slice(0, 3).map((l) => `worker log: ${l.slice(0, 300)}`));
      }
      sampler.stop();
      row.childPeak = sampler.child;
      row.workerPeak = sampler.main;
      row.notes.push(`worker process peak ${fmt(row.workerPeak)} MB`);
      progress(`${path.basename(row.file)}: job ${row.jobStatus}${row.jobSeconds === undefined ? "" : ` in ${fmt(row.jobSeconds, 1)} s`}, training child peak ${fmt(row.childPeak)} MB`);
      await worker.stop();
    }
    await api.stop();
  }

  const heap = getHeapStatistics().heap_size_limit / MB;
  const apiHeap = o.apiHeapMb ? `the API's V8 heap capped at ${o.apiHeapMb} MB` : `V8 heap limit ${fmt(heap)} MB`;
  console.log(`\nDataset uploads end to end: the API and a worker as separate processes (node ${process.version}, ${apiHeap}; MB = 10^6 bytes; peak = VmHWM)\n`);
  console.log("| file | size MB | rows/images | upload status | upload s | MB/s | API peak RSS MB | worker child peak RSS MB | job status | job s |");
  console.log("|---|---:|---:|---|---:|---:|---:|---:|---|---:|");
  for (const r of rows) {
    const u = r.upload;
    const mbps = u?.ok ? r.bytes / MB / u.seconds : undefined;
    console.log(
      `| ${path.basename(r.file)} | ${fmt(r.bytes / MB, 1)} | ${r.count} | ${u?.status ?? "—"} | ${fmt(u?.seconds, 1)} | ${fmt(mbps, 1)} | ${fmt(r.apiPeak)} | ${fmt(r.childPeak)} | ${r.jobStatus ?? "—"} | ${fmt(r.jobSeconds, 1)} |`,
    );
  }
  console.log("");
  for (const r of rows) for (const n of r.notes) console.log(`- ${path.basename(r.file)}: ${n}`);
}

try {
  await main();
} catch (err) {
  // After a signal, main fails on the processes the cleanup stops: nothing worth showing.
  if (!interrupted) console.error(err instanceof Error ? err.stack : err);
  process.exitCode = 1;
} finally {
  await cleanOnce();
}
