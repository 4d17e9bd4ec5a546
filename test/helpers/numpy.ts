// NumPy files built byte by byte for tests, as numpy writes them (lib/format.py): .npy files of any
// version, dtype and byte order, .npz archives (a small zip writer, stored or deflated, that can
// also lie about sizes and checksums), and multipart/form-data bodies.
import { crc32, deflateRawSync } from "node:zlib";

/** A .npy header dict as numpy writes it. */
export const headerDict = (descr: string, shape: number[], fortran = false) =>
  `{'descr': '${descr}', 'fortran_order': ${fortran ? "True" : "False"}, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;

/** `values` encoded as `descr` ('<f4', '>i8', '|b1', …), in its byte order. */
export function encode(descr: string, values: readonly number[]): Buffer {
  const m = /^([<>|=])([fiub])(\d+)$/.exec(descr);
  if (!m) throw new Error(`test helper: cannot encode ${descr}`);
  const [, order, kind, sizeText] = m;
  const size = Number(sizeText);
  const le = order !== ">";
  const out = Buffer.alloc(values.length * size);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  values.forEach((v, i) => {
    const at = i * size;
    if (kind === "f" && size === 4) view.setFloat32(at, v, le);
    else if (kind === "f" && size === 8) view.setFloat64(at, v, le);
    else if (kind === "f" && size === 2) view.setUint16(at, toHalf(v), le);
    else if (kind === "i" && size === 8) view.setBigInt64(at, BigInt(v), le);
    else if (kind === "u" && size === 8) view.setBigUint64(at, BigInt(v), le);
    else if (size === 1) (kind === "i" ? view.setInt8(at, v) : view.setUint8(at, v));
    else if (size === 2) (kind === "i" ? view.setInt16(at, v, le) : view.setUint16(at, v, le));
    else if (size === 4) (kind === "i" ? view.setInt32(at, v, le) : view.setUint32(at, v, le));
  });
  return out;
}

/** Half precision for the few values tests use (exact ones). */
function toHalf(v: number): number {
  if (v === 0) return 0;
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  return sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
}

export interface NpyOptions {
  version?: 1 | 2 | 3;
  fortran?: boolean;
  /** The header dict text, instead of the one numpy would write. */
  header?: string;
}

/** A .npy file: the preamble, the header padded with spaces to 64 bytes and ended by \n, the data. */
export function npy(descr: string, shape: number[], data: Buffer | readonly number[], opts: NpyOptions = {}): Buffer {
  const version = opts.version ?? 1;
  const lengthBytes = version === 1 ? 2 : 4;
  const dict = opts.header ?? headerDict(descr, shape, opts.fortran);
  const body = Buffer.from(dict, version === 3 ? "utf8" : "latin1");
  const unpadded = 8 + lengthBytes + body.length + 1;
  const header = Buffer.concat([body, Buffer.alloc((64 - (unpadded % 64)) % 64, " "), Buffer.from("\n")]);
  const preamble = Buffer.alloc(8 + lengthBytes);
  Buffer.from([0x93, ...Buffer.from("NUMPY"), version, 0]).copy(preamble);
  if (version === 1) preamble.writeUInt16LE(header.length, 8);
  else preamble.writeUInt32LE(header.length, 8);
  return Buffer.concat([preamble, header, Buffer.isBuffer(data) ? data : encode(descr, data)]);
}

export interface ZipEntry {
  name: string;
  data: Buffer;
  deflate?: boolean;
  /** What the directory claims the entry unpacks to, instead of the truth. */
  declaredSize?: number;
  /** A CRC-32 instead of the right one. */
  crc?: number;
}

/** A zip archive (what np.savez writes), with the central directory numpy's zipfile writes. */
export function zip(entries: ZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, "utf8");
    const stored = e.deflate ? deflateRawSync(e.data) : e.data;
    const crc = e.crc ?? crc32(e.data);
    const size = e.declaredSize ?? e.data.length;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(e.deflate ? 8 : 0, 8);
    local.writeUInt32LE(0, 10); // time and date
    local.writeUInt32LE(crc >>> 0, 14);
    local.writeUInt32LE(stored.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(e.deflate ? 8 : 0, 10);
    central.writeUInt32LE(0, 12);
    central.writeUInt32LE(crc >>> 0, 16);
    central.writeUInt32LE(stored.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, stored);
    centrals.push(central, name);
    offset += local.length + name.length + stored.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

/** An .npz of named arrays, as np.savez (stored) or np.savez_compressed (deflate) writes it. */
export const npz = (arrays: Record<string, Buffer>, deflate = false) => zip(Object.entries(arrays).map(([name, data]) => ({ name: `${name}.npy`, data, deflate })));

export interface FormPart {
  name: string;
  /** Present for a file part. */
  filename?: string;
  type?: string;
  data: Buffer | string;
}

/** A multipart/form-data body and its Content-Type. */
export function formData(parts: FormPart[]): { payload: Buffer; contentType: string } {
  const boundary = "----trainyard-test-boundary-7d1f";
  const chunks: Buffer[] = [];
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ""}\r\n`;
    if (p.type) head += `Content-Type: ${p.type}\r\n`;
    chunks.push(Buffer.from(`${head}\r\n`), Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data), Buffer.from("\r\n"));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { payload: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** Iris (data/iris.csv) as arrays: float features [150, 4] and int class ids [150] (setosa 0, versicolor 1, virginica 2). */
export function irisArrays(csv: string): { x: number[]; y: number[]; rows: number } {
  const lines = csv.trim().split("\n").slice(1);
  const species = ["setosa", "versicolor", "virginica"];
  const x: number[] = [];
  const y: number[] = [];
  for (const line of lines) {
    const cells = line.split(",");
    x.push(...cells.slice(0, 4).map(Number));
    y.push(species.indexOf(cells[4].trim()));
  }
  return { x, y, rows: lines.length };
}
