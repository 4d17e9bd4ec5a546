// Image zips: a folder per class (`cat/001.png`, `dog/002.jpg`) for classification, or `images/`
// and `masks/` with one mask of class ids per image for segmentation. Everything is checked from
// the zip's central directory and the images' headers before one pixel is decoded or one row handed
// on: how many files, how much they decompress to (declared and actual), how many pixels they hold.
// Decoded in-process by sharp (libvips), two at a time, into one input of kind `image`, [H, W, C]
// float32 values 0–255 (scaling is preprocessing, at training time).
//
// A zip of 20,000 photos is more than one process should hold, so it is read (from a file, or an
// upload in memory) in passes that each keep only what they learn: the central directory; every
// entry once for its header, its bytes dropped once read; a segmentation set's masks, for the
// class ids present; then every entry again, decoded and handed to a RowSink a chunk of rows at a
// time. At once, memory holds the directory, two entries' bytes and pixels, and one chunk.
import path from "node:path";
import sharp, { type Metadata, type OutputInfo } from "sharp";
import yauzl, { type Entry, type ZipFile } from "yauzl";
import { ValidationError } from "../../errors.ts";
import { DEFAULT_INPUT, DEFAULT_OUTPUT } from "../../model-spec/model-spec-schema.ts";
import type { DatasetOutput, UploadQuery } from "../dataset-schema.ts";
import { sortNames } from "../labels.ts";
import { collectRows, type LayoutAtEnd, type ParsedDataset, type RowSink } from "../packing.ts";
import { DEFAULT_UPLOAD_LIMITS, UploadTooLargeError, type UploadLimits } from "./upload-limits.ts";

/** Most entries (files and folders) a zip may list. */
export const MAX_ZIP_ENTRIES = 100_000;
/** Largest image, in pixels (width × height as its header claims), e.g. 7071 × 7071. */
export const MAX_IMAGE_PIXELS = 50_000_000;
/** Largest side of `?imageSize`. */
export const MAX_IMAGE_SIDE = 4096;
/** What the images of a zip may hold, in pixels as their headers claim (what decoding costs): this many per byte of the limit. */
export const SOURCE_PIXELS_FACTOR = 16;
/** What the dataset may hold, in values (rows × H × W × C, 4 bytes each): this many per byte of the limit. */
export const STORED_VALUES_FACTOR = 1;
/** Bytes of float32 values (features and targets) handed to the sink at a time: e.g. 170 rows of 64×64×3. */
export const CHUNK_BYTES = 8 * 1024 * 1024;
/** Images decoded at once (the machine's cores are shared with training). */
const DECODE_CONCURRENCY = 2;

const IMAGE_EXTENSIONS = new Set([".png", ".jpg", ".jpeg"]);
const ZIP_OPTIONS = { lazyEntries: true, autoClose: false, validateEntrySizes: true, decodeStrings: true };

/** Where a zip is read from: a file (an upload spooled to disk) or an upload in memory. */
export type ZipSource = { file: string } | { buffer: Buffer };

/**
 * What a zip may unpack to, and its name in messages. A zip read from a file answers to the dataset
 * file limit (it streams, so may be large); one in memory to the upload limit.
 */
interface ZipLimit {
  bytes: number;
  name: string;
}

interface ImageFile {
  /** The path inside the zip, as the problems name it. */
  file: string;
  entry: Entry;
  /** Filled in once its header is read (its bytes are not kept). */
  width?: number;
  height?: number;
}

interface Example {
  image: ImageFile;
  /** Classification: the class folder. */
  label?: string;
  /** Segmentation: the mask of this image. */
  mask?: ImageFile;
}

/** A file of the zip from its central directory: its entry and its path as folders and a name. */
interface ZipFileEntry {
  file: string;
  entry: Entry;
  parts: string[];
}

/** Writes an example's labels into `targets` from `at`: its class id, or its mask's class ids. */
type Labeller = (e: Example, targets: Float32Array, at: number) => Promise<void>;

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** `?imageSize=H,W` (or `N` for N × N), checked. */
function parseImageSize(text: string | undefined): [number, number] | undefined {
  if (text === undefined) return undefined;
  const parts = text.split(",").map((s) => s.trim());
  const sides = parts.map(Number);
  if (parts.length > 2 || parts.some((p) => !/^\d+$/.test(p)) || sides.some((s) => s < 1 || s > MAX_IMAGE_SIDE)) {
    throw ValidationError.at("querystring.imageSize", `expected H,W: two whole numbers from 1 to ${MAX_IMAGE_SIDE} (e.g. 32,32), got '${text}'`);
  }
  return [sides[0], sides[1] ?? sides[0]];
}

/**
 * Runs fn over items, `limit` at a time, in order of index. The first failure stops the rest and is
 * thrown once the calls under way have ended, so nothing reads the zip after the caller closes it.
 */
async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const run = async () => {
    while (!failure && next < items.length) {
      const i = next++;
      try {
        await fn(items[i], i);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  if (failure) throw failure.err;
}

/** Folders and files that zip tools add and nobody means as data. */
const ignored = (parts: string[]) => parts.some((p) => p === "__MACOSX" || p.startsWith("."));

/** The zip opened for reading entries one at a time, its data left where it is. */
async function openZip(source: ZipSource): Promise<ZipFile> {
  try {
    return "file" in source ? await yauzl.openPromise(source.file, ZIP_OPTIONS) : await yauzl.fromBufferPromise(source.buffer, ZIP_OPTIONS);
  } catch (err) {
    // A spooled file that cannot be opened (fs errors carry a code; yauzl's do not) is the server's fault, not the upload's.
    if ((err as NodeJS.ErrnoException).code) throw err;
    throw ValidationError.at("zip", `is not a readable zip archive: ${(err as Error).message}`);
  }
}

/** The entries of the central directory (no data read yet), with their paths inside the zip. */
async function listEntries(zip: ZipFile): Promise<Entry[]> {
  const entries: Entry[] = [];
  try {
    for await (const entry of zip.eachEntry()) entries.push(entry);
  } catch (err) {
    throw ValidationError.at("zip", `is not a readable zip archive: ${(err as Error).message}`);
  }
  return entries;
}

/** One entry's bytes, never more than it declared (yauzl checks the count; this stops early). */
async function readEntry(zip: ZipFile, entry: Entry): Promise<Buffer> {
  try {
    const stream = await zip.openReadStreamPromise(entry);
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > entry.uncompressedSize) throw new Error(`decompresses to more than the ${entry.uncompressedSize} bytes it declares`);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, n);
  } catch (err) {
    throw ValidationError.at(entry.fileName, `could not be decompressed: ${(err as Error).message}`);
  }
}

/** An image's header, checked: PNG or JPEG, and not more pixels than MAX_IMAGE_PIXELS. */
async function readHeader(img: ImageFile, bytes: Buffer, what: "image" | "mask"): Promise<void> {
  let meta: Metadata;
  try {
    // Header only: no pixel is decoded, whatever size it claims.
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw ValidationError.at(img.file, `is not a readable PNG or JPEG image: ${(err as Error).message}`);
  }
  if (meta.format !== "png" && meta.format !== "jpeg") throw ValidationError.at(img.file, `is ${meta.format === undefined ? "not an image" : `a ${meta.format} image`}; only PNG and JPEG are read`);
  if (meta.width * meta.height > MAX_IMAGE_PIXELS) {
    throw ValidationError.at(img.file, `is ${meta.width}×${meta.height} pixels (as its header says); at most ${MAX_IMAGE_PIXELS.toLocaleString("en")} pixels per image`);
  }
  if (what === "mask") {
    if (meta.format !== "png") throw ValidationError.at(img.file, "is a JPEG; a mask must be a PNG (JPEG's lossy compression changes class ids)");
    if ((meta.bitsPerSample ?? 8) > 8) throw ValidationError.at(img.file, `has ${meta.bitsPerSample}-bit samples; a mask must be 8-bit (class ids 0–255)`);
  }
  // Photos may be stored sideways with an EXIF orientation; they are read as they are shown.
  img.width = meta.autoOrient.width;
  img.height = meta.autoOrient.height;
}

/** The zip as examples: class folders, or images/ and masks/. */
function examplesOf(files: ZipFileEntry[], folders: Set<string>): { examples: Example[]; segmentation: boolean } {
  // One folder holding everything (`pets/cat/…`, as zipping a folder gives) is not a class.
  let depth = 0;
  const folderAt = (f: { parts: string[] }) => f.parts[depth];
  while (files.length && files.every((f) => f.parts.length - depth >= 3 && folderAt(f) === folderAt(files[0]))) depth++;
  const top = new Set(files.map((f) => (f.parts.length - depth >= 2 ? folderAt(f) : "")));
  const prefix = files.length ? files[0].parts.slice(0, depth).join("/") : "";
  const shown = (folder: string) => (prefix ? `${prefix}/${folder}/` : `${folder}/`);

  if (top.has("images") && top.has("masks")) {
    const images = new Map<string, ImageFile>();
    const masks = new Map<string, ImageFile>();
    for (const f of files) {
      const folder = f.parts.length - depth >= 2 ? folderAt(f) : "";
      if (folder !== "images" && folder !== "masks") throw ValidationError.at(f.file, `is neither in ${shown("images")} nor in ${shown("masks")} (a segmentation zip holds images/x.png and masks/x.png)`);
      const rest = f.parts.slice(depth + 1).join("/");
      const key = rest.slice(0, rest.length - path.extname(rest).length);
      const into = folder === "images" ? images : masks;
      const twin = into.get(key);
      if (twin) throw ValidationError.at(f.file, `and ${twin.file} are the same ${folder === "images" ? "image" : "mask"} name; each image has one mask of the same name`);
      into.set(key, { file: f.file, entry: f.entry });
    }
    const examples: Example[] = [];
    for (const key of [...images.keys()].sort()) {
      const mask = masks.get(key);
      if (!mask) throw ValidationError.at(images.get(key)!.file, `has no mask: expected ${shown("masks")}${key}.png`);
      examples.push({ image: images.get(key)!, mask });
    }
    for (const [key, mask] of masks) if (!images.has(key)) throw ValidationError.at(mask.file, `is a mask with no image: expected ${shown("images")}${key}.png or .jpg`);
    return { examples, segmentation: true };
  }

  const byClass = new Map<string, ImageFile[]>();
  for (const f of files) {
    if (f.parts.length - depth < 2) throw ValidationError.at(f.file, "is not inside a class folder: a classification zip holds one folder per class (cat/001.png, dog/002.jpg)");
    const label = folderAt(f);
    const images = byClass.get(label) ?? byClass.set(label, []).get(label)!;
    images.push({ file: f.file, entry: f.entry });
  }
  // A class folder that holds no image is a mistake (a misspelled folder, images in a format not read).
  for (const folder of folders) {
    const parts = folder.split("/");
    if (parts.length === depth + 1 && parts.slice(0, depth).join("/") === prefix && !byClass.has(parts[depth])) {
      throw ValidationError.at(`${folder}/`, "holds no images (.png, .jpg, .jpeg): every class folder needs at least one");
    }
  }
  const classes = sortNames([...byClass.keys()]);
  if (classes.length < 2) throw ValidationError.at("zip", `classification needs at least 2 class folders, found ${classes.length} (${classes.map(shown).join(", ")})`);
  const examples = classes.flatMap((label) => byClass.get(label)!.sort((a, b) => (a.file < b.file ? -1 : 1)).map((image) => ({ image, label })));
  return { examples, segmentation: false };
}

/**
 * From the central directory alone: the image files, the folders, the files skipped, and a refusal
 * of what would decompress to more than the limit.
 */
function scanDirectory(entries: Entry[], limit: ZipLimit): { files: ZipFileEntry[]; folders: Set<string>; skipped: string[] } {
  const files: ZipFileEntry[] = [];
  const folders = new Set<string>();
  const skipped: string[] = [];
  let declared = 0;
  for (const entry of entries) {
    // Names end up in class names and warnings, which Postgres stores as text: no NUL there.
    if (entry.fileName.includes("\u0000")) throw ValidationError.at("zip", `the entry ${JSON.stringify(entry.fileName)} has a NUL character in its name`);
    const parts = entry.fileName.split("/").filter((p) => p !== "");
    if (parts.length === 0 || ignored(parts)) continue;
    for (let d = 1; d < parts.length; d++) folders.add(parts.slice(0, d).join("/"));
    if (entry.fileName.endsWith("/")) {
      folders.add(parts.join("/"));
      continue;
    }
    if (!IMAGE_EXTENSIONS.has(path.extname(entry.fileName).toLowerCase())) {
      skipped.push(entry.fileName);
      continue;
    }
    if (entry.isEncrypted()) throw ValidationError.at(entry.fileName, "is encrypted; upload a zip without a password");
    if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
      throw ValidationError.at(entry.fileName, `is compressed with method ${entry.compressionMethod}; only stored and deflated files are read`);
    }
    declared += entry.uncompressedSize;
    files.push({ file: entry.fileName, entry, parts });
  }
  // PNG and JPEG are compressed already: zipped, they shrink little, so the limit holds for them unpacked too.
  if (declared > limit.bytes) {
    throw new UploadTooLargeError(`zip: its images say they decompress to ${mib(declared)}, more than ${limit.name} of ${mib(limit.bytes)}`);
  }
  if (files.length === 0) throw ValidationError.at("zip", `holds no images (.png, .jpg, .jpeg)${skipped.length ? `; it holds ${skipped.slice(0, 3).join(", ")}${skipped.length > 3 ? ", …" : ""}` : ""}`);
  return { files, folders, skipped };
}

/** An example's files, each with what it is. */
const filesOf = (e: Example): [ImageFile, "image" | "mask"][] => (e.mask ? [[e.image, "image"], [e.mask, "mask"]] : [[e.image, "image"]]);

/**
 * The first pass: every image's and mask's header, its entry decompressed for it and dropped once
 * read. Gives the sizes the checks need, and counts what the entries actually decompress to.
 */
async function readHeaders(zip: ZipFile, examples: Example[], limit: ZipLimit): Promise<void> {
  let actual = 0;
  await mapLimit(examples, DECODE_CONCURRENCY, async (e) => {
    for (const [img, what] of filesOf(e)) {
      const bytes = await readEntry(zip, img.entry);
      actual += bytes.length;
      if (actual > limit.bytes) throw new UploadTooLargeError(`${img.file}: brings what the images decompress to over ${limit.name} of ${mib(limit.bytes)}`);
      await readHeader(img, bytes, what);
    }
  });
}

/** Sizes, from the headers: the same everywhere unless resized, and bounded in total. The size of a row, [H, W]. */
function checkSizes(examples: Example[], size: [number, number] | undefined, channels: 1 | 3, limit: ZipLimit): [number, number] {
  const first = examples[0].image;
  if (!size) {
    const other = examples.find((e) => e.image.width !== first.width || e.image.height !== first.height);
    if (other) {
      throw ValidationError.at(
        other.image.file,
        `is ${other.image.height}×${other.image.width} (H×W), ${first.file} is ${first.height}×${first.width}: images of different sizes need ?imageSize=H,W to resize them all`,
      );
    }
  }
  for (const e of examples) {
    if (e.mask && (e.mask.width !== e.image.width || e.mask.height !== e.image.height)) {
      throw ValidationError.at(e.mask.file, `is ${e.mask.height}×${e.mask.width} (H×W), its image ${e.image.file} is ${e.image.height}×${e.image.width}: a mask has its image's size`);
    }
  }
  const sourcePixels = examples.flatMap(filesOf).reduce((n, [img]) => n + img.width! * img.height!, 0);
  const maxSourcePixels = SOURCE_PIXELS_FACTOR * limit.bytes;
  if (sourcePixels > maxSourcePixels) {
    throw new UploadTooLargeError(`zip: its images hold ${sourcePixels.toLocaleString("en")} pixels, more than ${maxSourcePixels.toLocaleString("en")} (${SOURCE_PIXELS_FACTOR} per byte of ${limit.name})`);
  }
  const [height, width] = size ?? [first.height!, first.width!];
  const rows = examples.length;
  const values = rows * height * width * channels;
  const maxValues = STORED_VALUES_FACTOR * limit.bytes;
  if (values > maxValues) {
    throw new UploadTooLargeError(`zip: ${rows} images of ${height}×${width}×${channels} are ${values.toLocaleString("en")} values, more than ${maxValues.toLocaleString("en")} (as many as ${limit.name} has bytes); give a smaller ?imageSize`);
  }
  return [height, width];
}

/**
 * A segmentation set's classes: the mask values present once resized, "0", "1", "255", each one's
 * index its class id (`id[value]`). Rows are handed on with class ids, so every mask is decoded
 * for this first, only to mark the values it holds.
 */
async function maskClasses(zip: ZipFile, examples: Example[], height: number, width: number): Promise<{ classes: string[]; id: Uint8Array }> {
  const seen = new Uint8Array(256);
  await mapLimit(examples, DECODE_CONCURRENCY, async (e) => {
    for (const v of await decode(zip, e.mask!, height, width, 1, true)) seen[v] = 1;
  });
  const present = [...seen.keys()].filter((v) => seen[v]);
  if (present.length < 2) {
    throw ValidationError.at("masks", `every pixel of every mask is ${present[0]}: segmentation needs at least 2 classes (e.g. ${examples[0].mask!.file} should mark some pixels 1)`);
  }
  const id = new Uint8Array(256);
  present.forEach((v, k) => (id[v] = k));
  return { classes: present.map(String), id };
}

/**
 * The last pass: every example decoded, in order, into rows handed to the sink a chunk at a time,
 * features `rows × H×W×C` then targets `rows × targetWidth`.
 */
async function appendRows(
  zip: ZipFile,
  examples: Example[],
  [height, width, channels]: [number, number, 1 | 3],
  targetWidth: number,
  label: Labeller,
  sink: RowSink,
  chunkBytes: number,
): Promise<void> {
  const rowSize = height * width * channels;
  const chunkRows = Math.max(1, Math.floor(chunkBytes / Float32Array.BYTES_PER_ELEMENT / (rowSize + targetWidth)));
  for (let start = 0; start < examples.length; start += chunkRows) {
    const chunk = examples.slice(start, start + chunkRows);
    // Fresh arrays each chunk: a sink may keep what it is handed until it has stored it.
    const features = new Float32Array(chunk.length * rowSize);
    const targets = new Float32Array(chunk.length * targetWidth);
    await mapLimit(chunk, DECODE_CONCURRENCY, async (e, i) => {
      features.set(await decode(zip, e.image, height, width, channels, false), i * rowSize);
      await label(e, targets, i * targetWidth);
    });
    await sink.append(chunk.length, features, targets);
  }
}

/**
 * A zip of images as a dataset, handed to `sink` a chunk of rows at a time. `?imageSize=H,W` resizes
 * every image (needed when sizes differ), `?channels=1` reads grayscale, 3 (default) RGB; alpha is
 * dropped. Every check that headers allow is made before `sink.begin`; only an image that will not
 * decode is found after. `options.chunkBytes` (default CHUNK_BYTES) is for tests.
 */
export async function streamImageZip(source: ZipSource, query: UploadQuery, limits: UploadLimits, sink: RowSink, options: { chunkBytes?: number } = {}): Promise<LayoutAtEnd> {
  const name = query.name;
  if (!name) throw ValidationError.at("querystring.name", "is required for an image zip (?name=...)");
  if (query.task && query.task !== "classification") throw ValidationError.at("querystring.task", "an image zip is a classification (class folders) or a segmentation (masks of class ids)");
  const size = parseImageSize(query.imageSize);
  const channels = query.channels === "1" ? 1 : 3;
  const limit: ZipLimit = "file" in source ? { bytes: limits.maxFileBytes, name: "the dataset file limit" } : { bytes: limits.maxBytes, name: "the upload limit" };

  const zip = await openZip(source);
  try {
    if (zip.entryCount > MAX_ZIP_ENTRIES) throw ValidationError.at("zip", `lists ${zip.entryCount} files and folders; at most ${MAX_ZIP_ENTRIES.toLocaleString("en")}`);
    const { files, folders, skipped } = scanDirectory(await listEntries(zip), limit);
    const { examples, segmentation } = examplesOf(files, folders);
    await readHeaders(zip, examples, limit);
    const [height, width] = checkSizes(examples, size, channels, limit);

    let output: DatasetOutput;
    let label: Labeller;
    if (segmentation) {
      const { classes, id } = await maskClasses(zip, examples, height, width);
      output = { name: DEFAULT_OUTPUT, task: "classification", classes, shape: [height, width] };
      label = async (e, targets, at) => {
        const values = await decode(zip, e.mask!, height, width, 1, true);
        for (let p = 0; p < values.length; p++) targets[at + p] = id[values[p]];
      };
    } else {
      const classes = sortNames([...new Set(examples.map((e) => e.label!))]);
      const index = new Map(classes.map((c, k) => [c, k]));
      output = { name: DEFAULT_OUTPUT, task: "classification", classes, shape: [1] };
      label = async (e, targets, at) => {
        targets[at] = index.get(e.label!)!;
      };
    }
    const warnings = skipped.length ? [`ignored ${skipped.length} file(s) that are not .png, .jpg or .jpeg images: ${skipped.slice(0, 5).join(", ")}${skipped.length > 5 ? ", …" : ""}`] : [];
    const input = { name: DEFAULT_INPUT, shape: [height, width, channels], kind: "image" as const };
    await sink.begin({ name, inputs: [input], outputs: [output], featureNames: [], warnings });
    await appendRows(zip, examples, [height, width, channels], output.shape.reduce((a, b) => a * b, 1), label, sink, options.chunkBytes ?? CHUNK_BYTES);
    return { warnings };
  } finally {
    zip.close();
  }
}

/** A zip of images in memory as one dataset (small uploads, tests): streamImageZip's rows gathered. */
export async function parseImageZip(body: Buffer, query: UploadQuery, limits: UploadLimits = DEFAULT_UPLOAD_LIMITS): Promise<ParsedDataset> {
  return collectRows((sink) => streamImageZip({ buffer: body }, query, limits, sink));
}

/** One image read and decoded to `height × width × channels` bytes (resized if need be), or a mask to class ids (nearest pixel). */
async function decode(zip: ZipFile, img: ImageFile, height: number, width: number, channels: 1 | 3, mask: boolean): Promise<Uint8Array> {
  let pipeline = sharp(await readEntry(zip, img.entry), { limitInputPixels: MAX_IMAGE_PIXELS, failOn: "error", autoOrient: true });
  if (img.width !== width || img.height !== height) pipeline = pipeline.resize(width, height, { fit: "fill", kernel: mask ? "nearest" : "lanczos3" });
  // A mask is read in colour to tell grey (class ids) from colours (a mistake).
  pipeline = pipeline.removeAlpha().toColourspace(channels === 1 && !mask ? "b-w" : "srgb");
  let data: Buffer;
  let info: OutputInfo;
  try {
    ({ data, info } = await pipeline.raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true }));
  } catch (err) {
    throw ValidationError.at(img.file, `could not be decoded: ${(err as Error).message}`);
  }
  const want = mask ? 3 : channels;
  if (info.width !== width || info.height !== height || info.channels !== want || data.length !== width * height * want) {
    throw ValidationError.at(img.file, `decoded to ${info.height}×${info.width}×${info.channels}, expected ${height}×${width}×${want}`);
  }
  if (!mask) return data;
  const ids = new Uint8Array(width * height);
  for (let p = 0; p < ids.length; p++) {
    const [r, g, b] = [data[3 * p], data[3 * p + 1], data[3 * p + 2]];
    if (r !== g || g !== b) {
      throw ValidationError.at(img.file, `pixel (row ${Math.floor(p / width)}, column ${p % width}) is the colour (${r}, ${g}, ${b}); a mask is greyscale, each pixel's value its class id`);
    }
    ids[p] = r;
  }
  return ids;
}
