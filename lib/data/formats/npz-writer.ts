// Writes a NumPy .npz (what np.load reads, and what formats/npz.ts reads back as an upload) as a
// stream: every array's size is known from its shape before a value is read, so the .npy headers,
// the zip's layout and the total length are fixed up front, and the values go out in chunks as
// they are read (one shard of a dataset at a time), never the whole file in memory.
//
// Each array is one zip entry, STORED (float data hardly deflates, and a stored entry streams).
// Its CRC-32 is known only once its bytes have gone by, so each entry is followed by a data
// descriptor (general purpose flag bit 3), as Python's zipfile writes an entry it streams; ZIP64
// records are used only when an entry or the archive reaches 4 GiB.
import { crc32 } from "node:zlib";
import { DEFAULT_INPUT, DEFAULT_OUTPUT } from "../../model-spec/model-spec-schema.ts";
import { kindOf, type DatasetInput, type DatasetOutput } from "../dataset-schema.ts";
import { toFloats } from "../packing.ts";

/** The dtypes this writer emits, as numpy spells them, and their sizes in bytes. */
export const NPY_ITEMSIZE = { "<f4": 4, "<f8": 8, "<i4": 4, "<i8": 8, "|u1": 1 } as const;
export type NpyDescr = keyof typeof NPY_ITEMSIZE;

/** One array of the archive: stored as `<name>.npy`, C order, its values handed over in chunks. */
export interface NpyArray {
  name: string;
  descr: NpyDescr;
  shape: number[];
  /** The values as the bytes of `descr`, in order; together exactly `prod(shape) × itemsize` bytes. */
  chunks: () => AsyncIterable<Uint8Array>;
}

const U32_MAX = 0xffffffff;
const UTF8_NAMES = 0x0800;
const DATA_DESCRIPTOR = 0x0008;
/** 1980-01-01 00:00, the earliest DOS date: the same arrays always give the same bytes. */
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;

/** The .npy preamble and header of an array: magic, version 1.0, the dict padded with spaces to a multiple of 64 bytes. */
export function npyHeader(descr: NpyDescr, shape: readonly number[]): Buffer {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  const unpadded = 10 + dict.length + 1;
  const text = dict + " ".repeat((64 - (unpadded % 64)) % 64) + "\n";
  const out = Buffer.alloc(10 + text.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  out.writeUInt16LE(text.length, 8);
  out.write(text, 10, "latin1");
  return out;
}

interface Planned {
  array: NpyArray;
  name: Buffer;
  header: Buffer;
  dataBytes: number;
  /** The .npy file's size: header and data. */
  size: number;
  offset: number;
}

/** An archive laid out before a byte is read: its total length (a Content-Length) and its bytes, streamed. */
export interface NpzPlan {
  bytes: number;
  stream(): AsyncGenerator<Uint8Array>;
}

export function planNpz(arrays: NpyArray[], opts: { forceZip64?: boolean } = {}): NpzPlan {
  const planned: Omit<Planned, "offset">[] = arrays.map((array) => {
    const header = npyHeader(array.descr, array.shape);
    const dataBytes = array.shape.reduce((a, b) => a * b, 1) * NPY_ITEMSIZE[array.descr];
    return { array, name: Buffer.from(`${array.name}.npy`, "utf8"), header, dataBytes, size: header.length + dataBytes };
  });
  const layout = (zip64: boolean) => {
    let offset = 0;
    const entries = planned.map((p) => {
      const entry = { ...p, offset };
      offset += 30 + p.name.length + (zip64 ? 20 : 0) + p.size + (zip64 ? 24 : 16);
      return entry;
    });
    const directoryBytes = entries.reduce((a, e) => a + 46 + e.name.length + (zip64 ? 28 : 0), 0);
    return { entries, directoryOffset: offset, directoryBytes, bytes: offset + directoryBytes + (zip64 ? 56 + 20 : 0) + 22 };
  };
  let zip64 = opts.forceZip64 ?? false;
  let plan = layout(zip64);
  if (!zip64 && (plan.bytes >= U32_MAX || planned.some((p) => p.size >= U32_MAX))) plan = layout((zip64 = true));
  const { entries, directoryOffset, directoryBytes, bytes } = plan;

  return {
    bytes,
    async *stream() {
      const crcs: number[] = [];
      let written = 0;
      const emit = (chunk: Uint8Array) => {
        written += chunk.byteLength;
        return chunk;
      };
      for (const e of entries) {
        yield emit(localHeader(e, zip64));
        yield emit(e.header);
        let crc = crc32(e.header);
        let data = 0;
        for await (const chunk of e.array.chunks()) {
          data += chunk.byteLength;
          if (data > e.dataBytes) throw new Error(`npz ${e.array.name}: more than the ${e.dataBytes} bytes its shape ${JSON.stringify(e.array.shape)} holds`);
          crc = crc32(chunk, crc);
          yield emit(chunk);
        }
        if (data !== e.dataBytes) throw new Error(`npz ${e.array.name}: ${data} bytes, its shape ${JSON.stringify(e.array.shape)} holds ${e.dataBytes}`);
        crcs.push(crc >>> 0);
        yield emit(dataDescriptor(crc, e.size, zip64));
      }
      for (const [i, e] of entries.entries()) yield emit(centralHeader(e, crcs[i], zip64));
      yield emit(endRecords(entries.length, directoryOffset, directoryBytes, zip64));
      if (written !== bytes) throw new Error(`npz: wrote ${written} bytes, planned ${bytes}`);
    },
  };
}

function localHeader(e: Planned, zip64: boolean): Buffer {
  // With a data descriptor, the CRC and sizes of the local header are zero (ZIP64: in its extra field).
  const b = Buffer.alloc(30 + e.name.length + (zip64 ? 20 : 0));
  b.writeUInt32LE(0x04034b50, 0);
  b.writeUInt16LE(zip64 ? 45 : 20, 4);
  b.writeUInt16LE(UTF8_NAMES | DATA_DESCRIPTOR, 6);
  b.writeUInt16LE(0, 8); // stored
  b.writeUInt16LE(DOS_TIME, 10);
  b.writeUInt16LE(DOS_DATE, 12);
  b.writeUInt32LE(0, 14);
  b.writeUInt32LE(zip64 ? U32_MAX : 0, 18);
  b.writeUInt32LE(zip64 ? U32_MAX : 0, 22);
  b.writeUInt16LE(e.name.length, 26);
  b.writeUInt16LE(zip64 ? 20 : 0, 28);
  e.name.copy(b, 30);
  if (zip64) {
    const x = 30 + e.name.length;
    b.writeUInt16LE(0x0001, x);
    b.writeUInt16LE(16, x + 2);
    // Sizes 0 here: the data descriptor has them.
  }
  return b;
}

function dataDescriptor(crc: number, size: number, zip64: boolean): Buffer {
  const b = Buffer.alloc(zip64 ? 24 : 16);
  b.writeUInt32LE(0x08074b50, 0);
  b.writeUInt32LE(crc >>> 0, 4);
  if (zip64) {
    b.writeBigUInt64LE(BigInt(size), 8);
    b.writeBigUInt64LE(BigInt(size), 16);
  } else {
    b.writeUInt32LE(size, 8);
    b.writeUInt32LE(size, 12);
  }
  return b;
}

function centralHeader(e: Planned, crc: number, zip64: boolean): Buffer {
  const b = Buffer.alloc(46 + e.name.length + (zip64 ? 28 : 0));
  b.writeUInt32LE(0x02014b50, 0);
  b.writeUInt16LE((3 << 8) | (zip64 ? 45 : 20), 4); // made by: Unix
  b.writeUInt16LE(zip64 ? 45 : 20, 6);
  b.writeUInt16LE(UTF8_NAMES | DATA_DESCRIPTOR, 8);
  b.writeUInt16LE(0, 10);
  b.writeUInt16LE(DOS_TIME, 12);
  b.writeUInt16LE(DOS_DATE, 14);
  b.writeUInt32LE(crc, 16);
  b.writeUInt32LE(zip64 ? U32_MAX : e.size, 20);
  b.writeUInt32LE(zip64 ? U32_MAX : e.size, 24);
  b.writeUInt16LE(e.name.length, 28);
  b.writeUInt16LE(zip64 ? 28 : 0, 30);
  b.writeUInt32LE(0o100644 * 0x10000, 38); // a regular file, rw-r--r--
  b.writeUInt32LE(zip64 ? U32_MAX : e.offset, 42);
  e.name.copy(b, 46);
  if (zip64) {
    const x = 46 + e.name.length;
    b.writeUInt16LE(0x0001, x);
    b.writeUInt16LE(24, x + 2);
    b.writeBigUInt64LE(BigInt(e.size), x + 4);
    b.writeBigUInt64LE(BigInt(e.size), x + 12);
    b.writeBigUInt64LE(BigInt(e.offset), x + 20);
  }
  return b;
}

function endRecords(count: number, directoryOffset: number, directoryBytes: number, zip64: boolean): Buffer {
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(count, 8);
  end.writeUInt16LE(count, 10);
  end.writeUInt32LE(zip64 ? U32_MAX : directoryBytes, 12);
  end.writeUInt32LE(zip64 ? U32_MAX : directoryOffset, 16);
  if (!zip64) return end;
  const record = Buffer.alloc(56);
  record.writeUInt32LE(0x06064b50, 0);
  record.writeBigUInt64LE(44n, 4);
  record.writeUInt16LE((3 << 8) | 45, 12);
  record.writeUInt16LE(45, 14);
  record.writeBigUInt64LE(BigInt(count), 24);
  record.writeBigUInt64LE(BigInt(count), 32);
  record.writeBigUInt64LE(BigInt(directoryBytes), 40);
  record.writeBigUInt64LE(BigInt(directoryOffset), 48);
  const locator = Buffer.alloc(20);
  locator.writeUInt32LE(0x07064b50, 0);
  locator.writeBigUInt64LE(BigInt(directoryOffset + directoryBytes), 8);
  locator.writeUInt32LE(1, 16);
  return Buffer.concat([record, locator, end]);
}

/** What the download of a dataset needs to know of it: its rows and parts, as stored. */
export interface StoredLayout {
  rows: number;
  inputs: DatasetInput[];
  outputs: DatasetOutput[];
}

/** Reads one part of a dataset (input k of `features`, output k of `targets`) shard by shard, as stored float32 bytes. */
export type PartReader = (column: "features" | "targets", k: number) => AsyncIterable<Uint8Array>;

/**
 * A stored dataset as the arrays an .npz upload is read from (formats/npz.ts), so that uploading
 * the download again stores the same thing: `x`/`y` for the one default-named input and output,
 * `inputs.<name>`/`outputs.<name>` otherwise, each [rows, ...shape]. Values are float32 as stored,
 * except where float32 would not come back the same: images are uint8 pixels (what makes an .npz
 * input an image), and class labels are integers (what makes .npz labels classes), written as the
 * class values when the class names are numbers (an .npz's classes are its distinct label values)
 * and as class ids otherwise.
 */
export function datasetArrays(d: StoredLayout, read: PartReader): NpyArray[] {
  const oneInput = d.inputs.length === 1 && d.inputs[0].name === DEFAULT_INPUT;
  const oneOutput = d.outputs.length === 1 && d.outputs[0].name === DEFAULT_OUTPUT;
  const inputs = d.inputs.map((input, k): NpyArray => {
    const name = oneInput ? "x" : `inputs.${input.name}`;
    const shape = [d.rows, ...input.shape];
    if (kindOf(input) !== "image") return { name, descr: "<f4", shape, chunks: () => read("features", k) };
    return { name, descr: "|u1", shape, chunks: () => mapChunks(read("features", k), (v) => Uint8Array.from(v, (p, i) => pixel(p, name, i))) };
  });
  const outputs = d.outputs.map((output, k): NpyArray => {
    const name = oneOutput ? "y" : `outputs.${output.name}`;
    const shape = [d.rows, ...output.shape];
    if (output.task !== "classification") return { name, descr: "<f4", shape, chunks: () => read("targets", k) };
    const { descr, value } = classValues(output.classes);
    const encode = (ids: Float32Array): Uint8Array => {
      const values = ids.map((id) => classId(id, output.classes.length, name));
      if (descr === "<i4") return bytesOf(Int32Array.from(values, value));
      if (descr === "<i8") return bytesOf(BigInt64Array.from(values, (id) => BigInt(value(id))));
      return bytesOf(Float64Array.from(values, value));
    };
    return { name, descr, shape, chunks: () => mapChunks(read("targets", k), encode) };
  });
  return [...inputs, ...outputs];
}

/** How classes are written: their values when every name is a number as String() writes it ("3", "-1", "0.5"), else their ids. */
function classValues(classes: string[]): { descr: "<i4" | "<i8" | "<f8"; value: (id: number) => number } {
  const values = classes.map(Number);
  const numeric = classes.every((c, i) => String(values[i]) === c);
  if (!numeric) return { descr: "<i4", value: (id) => id };
  const value = (id: number) => values[id];
  if (values.every((v) => Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31)) return { descr: "<i4", value };
  if (values.every((v) => Number.isSafeInteger(v))) return { descr: "<i8", value };
  return { descr: "<f8", value };
}

const bytesOf = (a: Int32Array | BigInt64Array | Float64Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

async function* mapChunks(chunks: AsyncIterable<Uint8Array>, f: (values: Float32Array) => Uint8Array): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) yield f(toFloats(chunk));
}

// Stored values that cannot be what the layout says they are: the stored data is corrupt, and the
// download stops rather than write something else.
function pixel(v: number, name: string, i: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 255) throw new Error(`npz ${name}: stored value ${v} (at ${i} of a shard) is not a pixel value 0–255`);
  return v;
}

function classId(id: number, classes: number, name: string): number {
  if (!Number.isInteger(id) || id < 0 || id >= classes) throw new Error(`npz ${name}: stored class id ${id} is not one of its ${classes} classes`);
  return id;
}
