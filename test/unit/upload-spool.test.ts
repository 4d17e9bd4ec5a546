// Spooling a streamed upload to disk (issue 8): the limit is checked as bytes arrive, a refused or
// broken body leaves no file, and files left by a process that died are swept once stale.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { after, test } from "node:test";
import { spool, sweepSpooled } from "../../lib/data/formats/upload-spool.ts";
import { UploadTooLargeError } from "../../lib/data/formats/upload-limits.ts";

const dir = mkdtempSync(path.join(tmpdir(), "trainyard-spool-unit-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function* chunks(n: number, size: number) {
  for (let i = 0; i < n; i++) yield Buffer.alloc(size, i);
}

test("a body within the limit is written whole; removing it leaves nothing", async () => {
  const file = await spool(Readable.from(chunks(10, 1000)), 10_000, "CSV body", dir);
  assert.equal(file.bytes, 10_000);
  assert.equal(readFileSync(file.file).length, 10_000);
  await file.remove();
  assert.deepEqual(readdirSync(dir), []);
});

test("past the limit: a 413 as the bytes arrive (the rest is never read), and no file left", async () => {
  let read = 0;
  const body = Readable.from((function* () {
    for (const c of chunks(1000, 1000)) {
      read++;
      yield c;
    }
  })());
  await assert.rejects(spool(body, 5_500, "CSV body", dir), (err: unknown) => err instanceof UploadTooLargeError && /CSV body: holds more than the dataset file limit of 5500 bytes/.test(err.message));
  assert.ok(read < 20, `${read} chunks read`);
  assert.deepEqual(readdirSync(dir), []);
});

test("a body that fails midway (a client gone) leaves no file", async () => {
  const body = new Readable({ read() {} });
  const done = spool(body, 1e9, "CSV body", dir);
  body.push(Buffer.alloc(1000));
  setTimeout(() => body.destroy(new Error("aborted")), 20);
  await assert.rejects(done, /aborted/);
  assert.deepEqual(readdirSync(dir), []);
});

test("sweepSpooled removes uploads untouched for longer than asked, and nothing else", async () => {
  const stale = path.join(dir, "trainyard-upload-stale");
  const fresh = path.join(dir, "trainyard-upload-fresh");
  const other = path.join(dir, "something-else");
  for (const d of [stale, fresh, other]) {
    mkdirSync(d);
    writeFileSync(path.join(d, "body"), "x");
  }
  const hourAgo = new Date(Date.now() - 2 * 3_600_000);
  for (const p of [path.join(stale, "body"), stale, path.join(other, "body"), other]) utimesSync(p, hourAgo, hourAgo);
  assert.equal(await sweepSpooled(3_600_000, dir), 1);
  assert.equal(existsSync(stale), false);
  assert.equal(existsSync(fresh), true);
  assert.equal(existsSync(other), true);
  rmSync(fresh, { recursive: true });
  rmSync(other, { recursive: true });
});
