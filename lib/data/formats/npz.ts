// NumPy .npz uploads (np.savez, np.savez_compressed: a zip of .npy files) and the dataset that
// named arrays hold, which multipart `features` and `labels` parts share:
//   x or features, y or labels                  one input, one set of labels;
//   inputs.<name>, outputs.<name>               several, by the names of a graph spec's nodes.
// The first axis of every array is rows. The zip is read within the upload limit twice over: by
// the sizes its directory declares, before one byte is inflated, and by the bytes actually read.
import { crc32 } from "node:zlib";
import yauzl from "yauzl";
import { ValidationError } from "../../errors.ts";
import { DEFAULT_INPUT, DEFAULT_OUTPUT, nodeName } from "../../model-spec/model-spec-schema.ts";
import type { DatasetInput, DatasetOutput, InputKind, Task, UploadQuery } from "../dataset-schema.ts";
import { size, type ParsedDataset } from "../packing.ts";
import { decodeNpyInto, indexOf, readNpyHeader, shapeText, valueReader, type NpyHeader } from "./npy.ts";
import { DEFAULT_UPLOAD_LIMITS, UploadTooLargeError, type UploadLimits } from "./upload-limits.ts";

/** More arrays than any dataset needs; a zip with thousands of entries is refused before it is read. */
export const MAX_NPZ_ENTRIES = 64;
/** Most dimensions of a row, as in JSON uploads (and of a model input in a spec). */
const MAX_ROW_RANK = 8;

/** One uploaded array: its name under the convention above, where it came from (for messages), its .npy bytes. */
export interface NamedArray {
  name: string;
  where: string;
  npy: Buffer;
}

export async function parseNpzDataset(body: Buffer, query: UploadQuery, limits: UploadLimits = DEFAULT_UPLOAD_LIMITS): Promise<ParsedDataset> {
  if (!query.name) throw ValidationError.at("querystring.name", "is required for an .npz upload (?name=...)");
  const arrays = await readNpz(body, limits);
  return datasetFromArrays(arrays, { name: query.name, task: query.task }, "npz");
}

/** The .npy files of an .npz, by array name (the entry name without `.npy`). */
export async function readNpz(body: Buffer, limits: UploadLimits): Promise<NamedArray[]> {
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.fromBufferPromise(body, { lazyEntries: true, validateEntrySizes: true, decodeStrings: true });
  } catch (err) {
    throw ValidationError.at("npz", `is not a readable zip archive (${(err as Error).message})`);
  }
  try {
    if (zip.entryCount > MAX_NPZ_ENTRIES) throw ValidationError.at("npz", `has ${zip.entryCount} entries; an .npz upload holds at most ${MAX_NPZ_ENTRIES} arrays`);
    const entries: yauzl.Entry[] = [];
    let declared = 0;
    try {
      for await (const entry of zip.eachEntry()) {
        const where = `npz '${entry.fileName}'`;
        if (!entry.fileName.endsWith(".npy")) throw ValidationError.at(where, "is not a .npy file; an .npz holds only .npy arrays");
        if (entries.some((e) => e.fileName === entry.fileName)) throw ValidationError.at(where, "appears twice in the archive");
        if (entry.isEncrypted()) throw ValidationError.at(where, "is encrypted");
        if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) throw ValidationError.at(where, `uses compression method ${entry.compressionMethod}; np.savez stores and np.savez_compressed deflates`);
        declared += entry.uncompressedSize;
        if (declared > limits.maxBytes) {
          throw new UploadTooLargeError(`npz: its arrays unpack to more than the upload limit of ${limits.maxBytes} bytes (${declared} bytes declared so far, at '${entry.fileName}')`);
        }
        entries.push(entry);
      }
    } catch (err) {
      if (err instanceof ValidationError || err instanceof UploadTooLargeError) throw err;
      throw ValidationError.at("npz", `is not a readable zip archive (${(err as Error).message})`);
    }
    if (entries.length === 0) throw ValidationError.at("npz", "holds no arrays");
    const arrays: NamedArray[] = [];
    for (const entry of entries) arrays.push({ name: entry.fileName.slice(0, -".npy".length), where: `npz '${entry.fileName}'`, npy: await readEntry(zip, entry) });
    return arrays;
  } finally {
    zip.close();
  }
}

/** An entry's bytes, never more than it declared (yauzl checks that too), and checked against its CRC. */
async function readEntry(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<Buffer> {
  const where = `npz '${entry.fileName}'`;
  const chunks: Buffer[] = [];
  let read = 0;
  try {
    const stream = await zip.openReadStreamPromise(entry);
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      read += chunk.length;
      if (read > entry.uncompressedSize) {
        stream.destroy();
        throw ValidationError.at(where, `inflates to more than the ${entry.uncompressedSize} bytes its zip entry declares`);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof ValidationError) throw err;
    throw ValidationError.at(where, `cannot be read from the zip archive (${(err as Error).message})`);
  }
  const bytes = Buffer.concat(chunks, read);
  if (read !== entry.uncompressedSize) throw ValidationError.at(where, `holds ${read} bytes, its zip entry declares ${entry.uncompressedSize}`);
  if (crc32(bytes) >>> 0 !== entry.crc32 >>> 0) throw ValidationError.at(where, "is corrupt: its bytes do not match the zip entry's CRC-32");
  return bytes;
}

type Role = { role: "input" | "output"; name: string; named: boolean };

const NAMING = "name the features x (or features) and the labels y (or labels), or several inputs.<name> and outputs.<name>";

function roleOf(a: NamedArray): Role {
  if (a.name === "x" || a.name === "features") return { role: "input", name: DEFAULT_INPUT, named: false };
  if (a.name === "y" || a.name === "labels") return { role: "output", name: DEFAULT_OUTPUT, named: false };
  const m = /^(inputs|outputs)\.(.+)$/.exec(a.name);
  if (!m) throw ValidationError.at(a.where, `'${a.name}' is not an array name this upload reads: ${NAMING}`);
  if (!nodeName.safeParse(m[2]).success) throw ValidationError.at(a.where, `'${m[2]}' is not a valid ${m[1].slice(0, -1)} name: letters, digits, _ . - starting with a letter or _`);
  return { role: m[1] === "inputs" ? "input" : "output", name: m[2], named: true };
}

interface Checked extends NamedArray, Role {
  header: NpyHeader;
  /** The shape of one row: the array's shape without its first axis ([1] for an array of one value per row). */
  rowShape: number[];
}

/**
 * The dataset held by named arrays (an .npz's, or multipart `features` and `labels`). Every
 * header is read and checked (rows agree, shapes, dtypes) before any value is converted, and
 * the features and labels are each converted once, into the packed arrays that are stored.
 */
export function datasetFromArrays(arrays: NamedArray[], opts: { name: string; task?: Task }, container: string): ParsedDataset {
  const checked: Checked[] = [];
  for (const a of arrays) {
    const role = roleOf(a);
    const same = checked.find((c) => c.role === role.role && c.name === role.name);
    if (same) throw ValidationError.at(a.where, `is the same ${role.role} as ${same.where}: give one of them`);
    const other = checked.find((c) => c.role === role.role && c.named !== role.named);
    if (other) throw ValidationError.at(a.where, `mixes with ${other.where}: ${role.role === "input" ? "give x (or features) for one input, or inputs.<name> for each" : "give y (or labels) for one output, or outputs.<name> for each"}`);
    const header = readNpyHeader(a.npy, a.where);
    if (header.shape.length === 0) throw ValidationError.at(`${a.where} header.shape`, "is () (a single value); the first axis of every array is rows");
    const rowShape = header.shape.length === 1 ? [1] : header.shape.slice(1);
    if (header.shape[0] === 0) throw ValidationError.at(`${a.where} header.shape`, `is ${shapeText(header.shape)}: no rows`);
    if (rowShape.some((d) => d === 0)) throw ValidationError.at(`${a.where} header.shape`, `is ${shapeText(header.shape)}: every row is empty`);
    if (rowShape.length > MAX_ROW_RANK) throw ValidationError.at(`${a.where} header.shape`, `is ${shapeText(header.shape)}: a row has at most ${MAX_ROW_RANK} dimensions, as a model input does`);
    checked.push({ ...a, ...role, header, rowShape });
  }
  const inputs = checked.filter((c) => c.role === "input");
  const outputs = checked.filter((c) => c.role === "output");
  if (!inputs.length) throw ValidationError.at(container, `has no features: ${NAMING}`);
  if (!outputs.length) throw ValidationError.at(container, `has no labels: ${NAMING}`);
  const rows = inputs[0].header.shape[0];
  for (const c of checked) {
    if (c.header.shape[0] !== rows) throw ValidationError.at(`${c.where} header.shape`, `is ${shapeText(c.header.shape)}: ${c.header.shape[0]} rows (first axis), ${inputs[0].where} has ${rows}`);
  }

  const warnings: string[] = [];
  const warnRounded = (c: Checked, r: { index: number; value: number } | undefined) => {
    if (r) warnings.push(`${c.where}${indexOf(r.index, c.header.shape)}: ${r.value} and other integers beyond ±2^24 are rounded to the nearest float32 (${Math.fround(r.value)})`);
  };

  const features = new Float32Array(inputs.reduce((a, c) => a + c.header.count, 0));
  let at = 0;
  for (const c of inputs) {
    warnRounded(c, decodeNpyInto(c.npy, c.header, features, at, c.where).rounded);
    at += c.header.count;
  }

  const targets = new Float32Array(outputs.reduce((a, c) => a + c.header.count, 0));
  const described: DatasetOutput[] = [];
  at = 0;
  for (const c of outputs) {
    const task: Task = opts.task ?? (c.header.kind === "float" ? "regression" : "classification");
    let classes: string[] = [];
    if (task === "classification") classes = encodeClassIds(c, targets, at);
    else warnRounded(c, decodeNpyInto(c.npy, c.header, targets, at, c.where).rounded);
    described.push({ name: c.name, task, classes, shape: c.rowShape });
    at += c.header.count;
  }

  const single = inputs.length === 1 && !inputs[0].named && inputs[0].rowShape.length === 1;
  return {
    name: opts.name,
    inputs: inputs.map((c): DatasetInput => ({ name: c.name, shape: c.rowShape, kind: kindOf(c) })),
    outputs: described,
    // Names only mean something for flat rows of one input, as in JSON uploads.
    featureNames: single ? Array.from({ length: size(inputs[0].rowShape) }, (_, j) => `x${j}`) : [],
    features,
    targets,
    rows,
    ...(warnings.length ? { warnings } : {}),
  };
}

/** [rows, k] is tabular; [rows, H, W, C] of uint8 an image (pixels 0–255, scaled by default); anything else a tensor, as uploaded. */
function kindOf(c: Checked): InputKind {
  if (c.rowShape.length === 1) return "tabular";
  if (c.rowShape.length === 3 && c.header.kind === "uint" && c.header.itemsize === 1) return "image";
  return "tensor";
}

/**
 * Class ids for labels that are numbers, by the rule of labels.ts's encodeTargets: the distinct
 * values sorted numerically, each named by its decimal form ("0", "1", …), without building a
 * string per label (a mask holds one per pixel). Writes the ids into `out` from `at`.
 */
function encodeClassIds(c: Checked, out: Float32Array, at: number): string[] {
  const read = valueReader(c.npy, c.header);
  const distinct = new Set<number>();
  for (let i = 0; i < c.header.count; i++) {
    const v = read(i);
    if (!Number.isFinite(v)) throw ValidationError.at(`${c.where}${indexOf(i, c.header.shape)}`, `is ${v}; a class label must be a finite number`);
    if (c.header.itemsize === 8 && c.header.kind !== "float" && !Number.isSafeInteger(v)) {
      throw ValidationError.at(`${c.where}${indexOf(i, c.header.shape)}`, "is a class id beyond 2^53, which cannot be told apart from its neighbours");
    }
    distinct.add(v);
  }
  const values = [...distinct].sort((a, b) => a - b);
  if (values.length < 2) throw ValidationError.at(c.where, `classification needs at least 2 classes, found ${values.length}`);
  const ids = new Map(values.map((v, k) => [v, k]));
  for (let i = 0; i < c.header.count; i++) out[at + i] = ids.get(read(i))!;
  return values.map(String);
}
