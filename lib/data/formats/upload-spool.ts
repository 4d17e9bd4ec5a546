// Uploads that stream are written to a file as they arrive, and read from there (twice, for a
// table) a part at a time: the API's memory stays flat whatever the upload's size, and the file's
// size is checked as the bytes arrive (413 the moment it passes the limit), not after.
// Every spooled file lives in a directory of its own, removed once the upload is stored or refused.
import { createWriteStream } from "node:fs";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { UploadTooLargeError } from "./upload-limits.ts";

const PREFIX = "trainyard-upload-";

export interface SpooledFile {
  /** Where the bytes are. */
  file: string;
  bytes: number;
  /** Removes the file; never throws. */
  remove(): Promise<void>;
}

/**
 * Writes `body` to a new file under `dir` (default: the system's temp dir), refusing it with a 413
 * once it holds more than `maxBytes`; `what` names the upload in that message (`CSV body`). A body
 * that fails or is refused leaves no file behind.
 */
export async function spool(body: Readable, maxBytes: number, what: string, dir = tmpdir()): Promise<SpooledFile> {
  const folder = await mkdtemp(path.join(dir, PREFIX));
  const remove = () => rm(folder, { recursive: true, force: true }).catch(() => {});
  const file = path.join(folder, "body");
  let bytes = 0;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      if (bytes > maxBytes) return done(new UploadTooLargeError(`${what}: holds more than the dataset file limit of ${maxBytes} bytes (TRAINYARD_MAX_DATASET_BYTES)`));
      done(null, chunk);
    },
  });
  try {
    await pipeline(body, count, createWriteStream(file));
  } catch (err) {
    await remove();
    throw err;
  }
  return { file, bytes, remove };
}

/**
 * Removes spooled uploads under `dir` not written for longer than `olderThanMs`: left by an API
 * process that died while reading them (a live upload is written, then read for minutes at most). Returns
 * how many.
 */
export async function sweepSpooled(olderThanMs: number, dir = tmpdir()): Promise<number> {
  const cutoff = Date.now() - olderThanMs;
  let removed = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(PREFIX)) continue;
    const folder = path.join(dir, name);
    const files = await readdir(folder).catch(() => [] as string[]);
    const times = await Promise.all([folder, ...files.map((f) => path.join(folder, f))].map((p) => stat(p).then((s) => s.mtimeMs, () => 0)));
    if (Math.max(...times) >= cutoff) continue;
    await rm(folder, { recursive: true, force: true }).catch(() => {});
    removed++;
  }
  return removed;
}
