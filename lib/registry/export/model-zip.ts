// An exported model as one zip (model.json, its shards, signature.json) and such a zip read back.
// Writing needs only zlib (deflate and crc32); reading uses yauzl, as image-zip uploads do.
import { crc32, deflateRawSync } from "node:zlib";
import yauzl from "yauzl";
import { ValidationError } from "../../errors.ts";

/** A zip of `files` (name → bytes), deflated, UTF-8 names, no folders. */
export function writeZip(files: Map<string, Uint8Array>): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of files) {
    const nameBytes = Buffer.from(name, "utf8");
    const body = deflateRawSync(data);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed: 2.0 (deflate)
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt32LE(0x00210000, 10); // 1980-01-01 00:00, a fixed time: the same model zips to the same bytes
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(0x00210000, 12);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, body);
    centrals.push(central, nameBytes);
    offset += local.length + nameBytes.length + body.length;
  }
  const centralSize = centrals.reduce((a, b) => a + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.size, 8);
  end.writeUInt16LE(files.size, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
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
