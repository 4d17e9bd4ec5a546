// No size cliff (issue 8): CSV, TSV, NDJSON and image zips stream. The API spools the body to a
// file within the dataset file limit, reads it twice, and stores it shard by shard; the body limit
// (for bodies read whole) does not apply to them. Refused, broken or interrupted uploads leave
// nothing: no dataset (not even one `uploading`) and no spooled file. Against the real Postgres,
// over the real HTTP stack where a client disconnecting matters, and with a real API process whose
// heap is several times smaller than the file it takes.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { gzipSync } from "node:zlib";
import { after, before, describe, test } from "node:test";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { encode, makeZip } from "../helpers/image-zips.ts";
import { freePort, startProcess, type Proc } from "../helpers/processes.ts";

const BODY_LIMIT = 64 * 1024;
const FILE_LIMIT = 4 * 1024 * 1024;

/** A CSV of `rows` rows: two numeric columns, a categorical one and a class label; about 30 bytes a row. */
function csvOf(rows: number, sep = ","): string {
  const lines = [["x", "y", "colour", "label"].join(sep)];
  for (let i = 0; i < rows; i++) lines.push([i, (i * 0.37).toFixed(3), ["red", "green", "blue"][i % 3], i % 2 ? "odd" : "even"].join(sep));
  return `${lines.join("\n")}\n`;
}

describe("streamed uploads, past the body limit and within the dataset file limit", () => {
  let env: TestEnv;
  let auth: Record<string, string>;
  let spoolDir: string;
  before(async () => {
    spoolDir = mkdtempSync(path.join(tmpdir(), "trainyard-spool-test-"));
    env = await createTestEnv({ TRAINYARD_MAX_UPLOAD_BYTES: String(BODY_LIMIT), TRAINYARD_MAX_DATASET_BYTES: String(FILE_LIMIT), TRAINYARD_UPLOAD_DIR: spoolDir });
    auth = await env.tenant("streamer");
  });
  after(async () => {
    await env?.close();
    rmSync(spoolDir, { recursive: true, force: true });
  });

  const post = (query: string, type: string, payload: string | Buffer, headers: Record<string, string> = {}) =>
    env.app.inject({ method: "POST", url: `/v1/datasets?${query}`, headers: { ...auth, "content-type": type, ...headers }, payload });
  /** Every dataset row, `uploading` ones included, and what is left in the spool dir. */
  const leftovers = async () => ({ datasets: await env.app.db.dataset.count(), shards: await env.app.db.datasetShard.count(), spooled: readdirSync(spoolDir) });

  test("a CSV 20 times the body limit is stored, described and previewed; the same file again is recognised", async () => {
    const text = csvOf(60_000);
    assert.ok(text.length > 20 * BODY_LIMIT, `${text.length} bytes`);
    const res = await post("name=wide&label=label", "text/csv", text);
    assert.equal(res.statusCode, 201, res.body);
    const view = res.json();
    assert.equal(view.rows, 60_000);
    assert.deepEqual(view.inputs[0].columns.map((c: { kind: string }) => c.kind), ["numeric", "numeric", "categorical"]);
    assert.deepEqual(view.inputs[0].columns[2].categories, ["blue", "green", "red"]);
    assert.deepEqual(view.outputs[0].classes, ["even", "odd"]);
    assert.deepEqual(view.outputs[0].counts, [30_000, 30_000]);
    assert.equal(view.bytes, 60_000 * 4 * 4);
    const rows = await env.app.inject({ url: `/v1/datasets/${view.id}/rows?offset=59998&limit=2`, headers: auth });
    assert.deepEqual(rows.json().items.map((r: { features: Record<string, unknown> }) => r.features), [
      { x: 59998, y: Number((59998 * 0.37).toFixed(3)), colour: "green" },
      { x: 59999, y: Number((59999 * 0.37).toFixed(3)), colour: "blue" },
    ]);
    const again = await post("name=wide&label=label", "text/csv", text);
    assert.equal(again.statusCode, 200, again.body);
    assert.equal(again.json().id, view.id);
    assert.equal(again.json().contentHash, view.contentHash);
    // The same data by another road (JSON rows) has the same hash: the hash is of what is stored.
    const small = csvOf(50);
    const fromCsv = (await post("name=same&label=label", "text/csv", small)).json();
    const objects = small.trim().split("\n").slice(1).map((l) => {
      const [x, y, colour, label] = l.split(",");
      return { x: Number(x), y: Number(y), colour, label };
    });
    const fromJson = await env.app.inject({ method: "POST", url: "/v1/datasets", headers: auth, payload: { name: "same", rows: objects, label: "label" } });
    assert.equal(fromJson.statusCode, 200, fromJson.body);
    assert.equal(fromJson.json().id, fromCsv.id);
    assert.deepEqual((await leftovers()).spooled, []);
  });

  test("TSV, NDJSON, gzip-encoded CSV and a multipart CSV file stream too", async () => {
    const tsv = await post("name=tsv&label=label", "text/tab-separated-values", csvOf(20_000, "\t"));
    assert.equal(tsv.statusCode, 201, tsv.body);
    assert.equal(tsv.json().rows, 20_000);
    const lines = Array.from({ length: 20_000 }, (_, i) => JSON.stringify({ a: i, b: i % 5 === 0 ? "p" : "q", y: i % 3 }));
    const nd = await post("name=nd&task=classification", "application/x-ndjson", lines.join("\n"));
    assert.equal(nd.statusCode, 201, nd.body);
    assert.deepEqual([nd.json().rows, nd.json().outputs[0].classes], [20_000, ["0", "1", "2"]]);
    const gz = await post("name=gz&label=label", "text/csv", gzipSync(csvOf(20_000)), { "content-encoding": "gzip" });
    assert.equal(gz.statusCode, 201, gz.body);
    assert.equal(gz.json().rows, 20_000);
    const boundary = "----trainyard" + randomBytes(6).toString("hex");
    const multipart = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nmp\r\n`),
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\nContent-Type: application/octet-stream\r\n\r\n`),
      Buffer.from(csvOf(20_000)),
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const mp = await post("", `multipart/form-data; boundary=${boundary}`, multipart);
    assert.equal(mp.statusCode, 201, mp.body);
    assert.equal(mp.json().rows, 20_000);
    // A multipart .npz is still read whole, within the body limit.
    assert.deepEqual((await leftovers()).spooled, []);
  });

  test("an image zip larger than the body limit streams", async () => {
    const entries = [];
    for (let i = 0; i < 40; i++) {
      const pixels = Uint8Array.from({ length: 32 * 32 * 3 }, () => Math.floor(Math.random() * 256));
      entries.push({ name: `${i % 2 ? "cat" : "dog"}/${i}.png`, data: await encode(pixels, 32, 32, 3) });
    }
    const zip = makeZip(entries);
    assert.ok(zip.length > BODY_LIMIT, `${zip.length} bytes`);
    const res = await post("name=pets", "application/zip", zip);
    assert.equal(res.statusCode, 201, res.body);
    assert.deepEqual([res.json().rows, res.json().inputShape, res.json().outputs[0].counts], [40, [32, 32, 3], [20, 20]]);
  });

  test("past the dataset file limit: a 413 naming the limit, and nothing stored or left on disk", async () => {
    const before = await leftovers();
    const text = csvOf(Math.ceil((FILE_LIMIT * 1.2) / 30));
    assert.ok(text.length > FILE_LIMIT);
    const res = await post("name=huge", "text/csv", text);
    assert.equal(res.statusCode, 413, res.body);
    assert.match(res.json().detail, new RegExp(`dataset file limit of ${FILE_LIMIT} bytes`));
    // Compressed, the limit holds for what it inflates to.
    const gz = await post("name=huge", "text/csv", gzipSync(text), { "content-encoding": "gzip" });
    assert.equal(gz.statusCode, 413, gz.body);
    assert.match(gz.json().detail, /CSV body: holds more than the dataset file limit/);
    assert.deepEqual(await leftovers(), before);
  });

  test("a problem on the last row of a large file: a 400 at its row, and nothing stored", async () => {
    const before = await leftovers();
    const res = await post("name=late&label=label", "text/csv", `${csvOf(50_000)}12,oops,red,odd\n`);
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().errors[0].path, "CSV row 50002, column 'y'");
    const missing = await post("label=label", "text/csv", csvOf(10));
    assert.equal(missing.statusCode, 400, missing.body);
    assert.equal(missing.json().errors[0].path, "querystring.name");
    assert.deepEqual(await leftovers(), before);
  });

  test("over real HTTP: a Content-Length over the limit is refused before the body, and a client that disconnects mid-upload leaves nothing", async () => {
    await env.app.listen({ port: 0, host: "127.0.0.1" });
    const { port } = env.app.server.address() as { port: number };
    const before = await leftovers();

    // Declared too large: answered at once, with the body never sent.
    const declared = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ port, method: "POST", path: "/v1/datasets?name=declared", headers: { ...auth, "content-type": "text/csv", "content-length": String(FILE_LIMIT + 1) } }, (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      });
      req.on("error", reject);
      req.write("x,label\n");
    });
    assert.equal(declared.status, 413, declared.body);
    assert.match(declared.body, /Content-Length \d+ is more than the dataset file limit/);

    // Half a body, then the connection drops.
    const text = csvOf(100_000);
    await new Promise<void>((resolve) => {
      const req = http.request({ port, method: "POST", path: "/v1/datasets?name=dropped&label=label", headers: { ...auth, "content-type": "text/csv", "content-length": String(text.length) } });
      req.on("error", () => resolve());
      req.write(text.slice(0, text.length / 2), () => setTimeout(() => req.destroy(), 200));
    });
    // The API notices the disconnect and cleans up: poll briefly, then compare.
    for (let i = 0; i < 50 && readdirSync(spoolDir).length; i++) await sleep(100);
    await sleep(200);
    assert.deepEqual(await leftovers(), before);
  });
});

describe("memory: a CSV several times the API's heap", () => {
  const HEAP_MB = 128;
  const CSV_MB = 420;
  let db: TestDatabase;
  let api: Proc;
  let dir: string;
  let port: number;
  const adminKey = randomBytes(32).toString("hex");
  before(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(path.join(tmpdir(), "trainyard-heap-test-"));
    port = await freePort();
    api = startProcess("services/server.ts", {
      DATABASE_URL: db.url, TRAINYARD_ADMIN_KEY: adminKey, PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "info",
      TRAINYARD_QUEUE_PREFIX: `tyheap-${randomBytes(3).toString("hex")}`, TRAINYARD_UPLOAD_DIR: dir,
      // The heap is capped: an API that held the file (or its rows) would die of it.
      NODE_OPTIONS: `--max-old-space-size=${HEAP_MB}`,
    });
    await api.waitFor(/Trainyard API on/, 60_000);
  });
  after(async () => {
    await api?.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  test(`a ${CSV_MB} MB CSV uploads through an API whose heap is capped at ${HEAP_MB} MB`, { timeout: 300_000 }, async (t) => {
    const file = path.join(dir, "big.csv");
    await writeCsv(file, CSV_MB * 1e6);
    const bytes = statSync(file).size;
    const key = await fetch(`http://127.0.0.1:${port}/v1/api-keys`, { method: "POST", headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" }, body: JSON.stringify({ tenant: "heap" }) }).then((r) => r.json());
    const started = performance.now();
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ port, method: "POST", path: "/v1/datasets?name=big", headers: { authorization: `Bearer ${key.key}`, "content-type": "text/csv", "content-length": String(bytes) } }, (r) => {
        let body = "";
        r.on("data", (d) => (body += d));
        r.on("end", () => resolve({ status: r.statusCode!, body }));
      });
      req.on("error", (err) => reject(new Error(`${err.message}; the API said:\n${api.output().slice(-3000)}`)));
      createReadStream(file).pipe(req);
    });
    const seconds = (performance.now() - started) / 1000;
    assert.equal(res.status, 201, `${res.body}\n${api.output().slice(-2000)}`);
    const view = JSON.parse(res.body);
    assert.ok(bytes > 3 * HEAP_MB * 1024 * 1024, `${bytes} bytes`);
    assert.ok(view.rows > 4_000_000, `${view.rows} rows`);
    assert.equal(api.child.exitCode, null);
    t.diagnostic(`${(bytes / 1e6).toFixed(0)} MB CSV, ${view.rows} rows, through a ${HEAP_MB} MB heap in ${seconds.toFixed(1)} s (${(bytes / 1e6 / seconds).toFixed(1)} MB/s)`);
  });
});

/** A CSV of about `bytes` bytes (ten numeric columns of about 8 characters and a label, like measurements): 20,000 distinct rows, written over and over (formatting every row took a quarter of the test). */
async function writeCsv(file: string, bytes: number): Promise<void> {
  const out = createWriteStream(file);
  out.write("a,b,c,d,e,f,g,h,i,j,label\n");
  const blocks: string[] = [];
  for (let b = 0, i = 0; b < 10; b++) {
    let block = "";
    for (let k = 0; k < 2000; k++, i++) {
      const cells = Array.from({ length: 10 }, (_, c) => (((i + 1) * (c + 3) * 0.6180339) % 1000).toFixed(4));
      block += `${cells.join(",")},${i % 3 ? "a" : "b"}\n`;
    }
    blocks.push(block);
  }
  let written = 0;
  for (let b = 0; written < bytes; b++) {
    const block = blocks[b % blocks.length];
    written += block.length;
    if (!out.write(block)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}
