// An exported model as one zip (model.json, its shards, signature.json) and such a zip read back:
// written with yazl and read with yauzl (as image-zip uploads are), the pair of well-kept libraries
// by one author, rather than a zip encoder of our own.
import yauzl from "yauzl";
import yazl from "yazl";
import { ValidationError } from "../../errors.ts";

// A fixed time for every entry: the same model zips to the same bytes.
const EPOCH = new Date(Date.UTC(1980, 0, 1));

/** A zip of `files` (name → bytes), deflated, UTF-8 names, no folders. */
export function writeZip(files: Map<string, Uint8Array>): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const [name, data] of files) zip.addBuffer(Buffer.from(data.buffer, data.byteOffset, data.byteLength), name, { mtime: EPOCH, compress: true });
  zip.end();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    zip.outputStream.on("data", (c: Buffer) => chunks.push(c)).on("end", () => resolve(Buffer.concat(chunks))).on("error", reject);
  });
}

/** The files of a zip by name (folders skipped), refusing one that unpacks to more than `maxBytes`. */
export async function readZip(zip: Buffer, maxBytes: number, where = "body"): Promise<Map<string, Buffer>> {
  const bad = (message: string) => ValidationError.at(where, message);
  const archive = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.fromBuffer(zip, { lazyEntries: true, validateEntrySizes: true, strictFileNames: false }, (err, z) => (err ? reject(bad(`not a readable zip (${err.message})`)) : resolve(z))),
  );
  const files = new Map<string, Buffer>();
  let total = 0;
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      archive.close();
      reject(err instanceof ValidationError ? err : bad(`not a readable zip (${err.message})`));
    };
    archive.on("error", fail);
    archive.on("end", () => resolve(files));
    archive.on("entry", (entry: yauzl.Entry) => {
      if (entry.fileName.endsWith("/") || entry.fileName.startsWith("__MACOSX/")) return archive.readEntry();
      total += entry.uncompressedSize;
      if (total > maxBytes) return fail(bad(`the zip unpacks to more than ${maxBytes} bytes`));
      archive.openReadStream(entry, (err, stream) => {
        if (err) return fail(err);
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("error", fail);
        stream.on("end", () => {
          // One enclosing folder (my-model/model.json) is fine: files are keyed by their base name.
          files.set(entry.fileName.split("/").pop()!, Buffer.concat(chunks));
          archive.readEntry();
        });
      });
    });
    archive.readEntry();
  });
}
