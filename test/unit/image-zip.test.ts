// Image zips: class folders and image + mask pairs read into one `image` input, and every way a
// zip can be wrong or hostile refused with the place it is wrong (the file inside the zip).
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { crc32 } from "node:zlib";
import { after, before, describe, test } from "node:test";
import { parseImageZip, streamImageZip } from "../../lib/data/formats/image-zip.ts";
import { UploadTooLargeError, type UploadLimits } from "../../lib/data/formats/upload-limits.ts";
import type { UploadQuery } from "../../lib/data/dataset-schema.ts";
import { collectRows, type DatasetLayout, type RowSink } from "../../lib/data/packing.ts";
import { DomainError, ValidationError } from "../../lib/errors.ts";
import { encode, makeZip, type ZipEntry } from "../helpers/image-zips.ts";

/** H × W × C pixels, value f(y, x, c). */
function pixels(h: number, w: number, c: number, f: (y: number, x: number, k: number) => number): Uint8Array {
  const out = new Uint8Array(h * w * c);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) out[(y * w + x) * c + k] = f(y, x, k);
  return out;
}
const pattern = (seed: number) => (y: number, x: number, k: number) => (seed * 37 + y * 13 + x * 7 + k * 50) % 256;
const png = (h: number, w: number, seed = 0, c: 1 | 3 | 4 = 3) => encode(pixels(h, w, c, pattern(seed)), h, w, c);
// From a buffer only maxBytes applies; maxFileBytes is set equal so that a mix-up could not pass unseen.
const parse = (zip: Buffer, query: Partial<UploadQuery> = {}, maxBytes?: number) =>
  parseImageZip(zip, { name: "imgs", ...query }, maxBytes === undefined ? undefined : { maxBytes, maxFileBytes: maxBytes });

/** Rejects with a 4xx whose problem is at `where` (a path inside the zip, or a query field). */
async function refuses(promise: Promise<unknown>, where: string, message: RegExp, status = 400) {
  const err = await promise.then(
    () => assert.fail("expected a refusal"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof DomainError, `expected a domain error, got ${err}`);
  assert.equal(err.status, status, err.message);
  if (err instanceof ValidationError) assert.equal(err.problems[0].path, where, err.message);
  else assert.ok(err.message.startsWith(`${where}: `), err.message);
  assert.match(err.message, message);
  return err;
}

/** A PNG whose header claims width × height (with a correct checksum), holding a 2×2 image's data. */
async function pngClaiming(width: number, height: number): Promise<Buffer> {
  const buf = Buffer.from(await png(2, 2));
  buf.writeUInt32BE(width, 16);
  buf.writeUInt32BE(height, 20);
  buf.writeUInt32BE(crc32(buf.subarray(12, 29)) >>> 0, 29);
  return buf;
}

describe("image zips: classification", () => {
  test("class folders become sorted classes; a top folder, __MACOSX and dotfiles are skipped; PNG pixels arrive exactly", async () => {
    const entries: ZipEntry[] = [
      { name: "pets/" },
      { name: "pets/dog/" },
      { name: "pets/dog/b.png", data: await png(8, 6, 1) },
      { name: "pets/dog/a.png", data: await png(8, 6, 2), method: 0 },
      { name: "pets/cat/x.PNG", data: await png(8, 6, 3) },
      { name: "pets/bird/nested/y.png", data: await png(8, 6, 4) },
      { name: "pets/bird/.DS_Store", data: Buffer.from("junk") },
      { name: "__MACOSX/pets/cat/._x.PNG", data: Buffer.from("resource fork") },
      { name: "pets/README.txt", data: Buffer.from("hello") },
    ];
    const d = await parse(makeZip(entries));
    assert.equal(d.rows, 4);
    assert.deepEqual(d.inputs, [{ name: "input", shape: [8, 6, 3], kind: "image" }]);
    assert.deepEqual(d.outputs, [{ name: "output", task: "classification", classes: ["bird", "cat", "dog"], shape: [1] }]);
    // Sorted by class, then by file name within a class.
    assert.deepEqual([...d.targets], [0, 1, 2, 2]);
    const expected = [4, 3, 2, 1].map((seed) => pixels(8, 6, 3, pattern(seed)));
    expected.forEach((px, i) => assert.deepEqual([...d.features.subarray(i * 144, (i + 1) * 144)], [...px], `row ${i}`));
    assert.deepEqual(d.featureNames, []);
    assert.match(d.warnings!.join(), /ignored 1 file.*pets\/README\.txt/);
  });

  test("class folders named by numbers sort by value; JPEG and PNG mix; values stay 0–255 (no scaling)", async () => {
    const classes = ["10", "9", "2"];
    const entries: ZipEntry[] = [];
    for (const [i, c] of classes.entries()) {
      entries.push({ name: `${c}/p.png`, data: await encode(pixels(6, 6, 3, () => 250), 6, 6, 3) });
      entries.push({ name: `${c}/j.jpg`, data: await encode(pixels(6, 6, 3, () => 10 + i), 6, 6, 3, "jpeg") });
    }
    const d = await parse(makeZip(entries));
    assert.deepEqual(d.outputs[0].classes, ["2", "9", "10"]);
    assert.equal(Math.max(...d.features), 250);
    assert.ok(Math.min(...d.features) >= 5 && Math.min(...d.features) <= 15, "JPEG's dark pixels near their value");
  });

  test("?channels=1 reads greyscale, and alpha is dropped with ?channels=3", async () => {
    const rgba = pixels(4, 4, 4, (y, x, k) => (k === 3 ? 0 : 100));
    const grey = pixels(4, 4, 1, () => 77);
    const zip = makeZip([
      { name: "a/1.png", data: await encode(rgba, 4, 4, 4) },
      { name: "b/1.png", data: await encode(grey, 4, 4, 1) },
    ]);
    const rgb = await parse(zip);
    assert.deepEqual(rgb.inputs[0].shape, [4, 4, 3]);
    assert.ok(rgb.features.subarray(0, 48).every((v) => v === 100), "transparent pixels keep their colour, alpha gone");
    assert.ok(rgb.features.subarray(48).every((v) => v === 77), "grey becomes RGB");
    const one = await parse(zip, { channels: "1" });
    assert.deepEqual(one.inputs[0].shape, [4, 4, 1]);
    assert.equal(one.features.length, 32);
    assert.ok(one.features.subarray(16).every((v) => v === 77));
  });

  test("a photo stored sideways (EXIF orientation 6) is read as it is shown", async () => {
    const sideways = await (await import("sharp")).default(Buffer.from(pixels(4, 8, 3, pattern(1))), { raw: { width: 8, height: 4, channels: 3 } }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const d = await parse(makeZip([{ name: "a/1.jpg", data: sideways }, { name: "b/1.png", data: await png(8, 4) }]));
    assert.deepEqual(d.inputs[0].shape, [8, 4, 3]);
  });

  test("images of mixed sizes: a 400 naming two files and their sizes, unless ?imageSize resizes them all", async () => {
    const zip = makeZip([
      { name: "a/small.png", data: await png(8, 8) },
      { name: "b/big.png", data: await png(12, 10) },
    ]);
    await refuses(parse(zip), "b/big.png", /is 12×10 \(H×W\), a\/small\.png is 8×8.*\?imageSize=H,W/);
    const d = await parse(zip, { imageSize: "6,5" });
    assert.deepEqual(d.inputs[0].shape, [6, 5, 3]);
    assert.equal(d.features.length, 2 * 6 * 5 * 3);
    const square = await parse(zip, { imageSize: "4" });
    assert.deepEqual(square.inputs[0].shape, [4, 4, 3]);
  });
});

describe("image zips: segmentation", () => {
  const mask = (h: number, w: number, f: (y: number, x: number) => number) => encode(pixels(h, w, 1, (y, x) => f(y, x)), h, w, 1);

  test("images/x + masks/x.png: masks of class ids, labels [H, W]; values present become the classes", async () => {
    const zip = makeZip([
      { name: "images/a.jpg", data: await encode(pixels(6, 6, 3, pattern(1)), 6, 6, 3, "jpeg") },
      { name: "images/b.png", data: await png(6, 6, 2) },
      { name: "masks/a.png", data: await mask(6, 6, (y) => (y < 3 ? 0 : 255)) },
      { name: "masks/b.png", data: await mask(6, 6, (y, x) => (x < 2 ? 1 : 0)) },
    ]);
    const d = await parse(zip);
    assert.deepEqual(d.inputs[0].shape, [6, 6, 3]);
    assert.deepEqual(d.outputs, [{ name: "output", task: "classification", classes: ["0", "1", "255"], shape: [6, 6] }]);
    assert.equal(d.targets.length, 72);
    assert.equal(d.targets[0], 0);
    assert.equal(d.targets[35], 2, "a's bottom rows are 255: class 2");
    assert.equal(d.targets[36], 1, "b's left columns are 1: class 1");
    assert.equal(d.targets[36 + 5], 0);
  });

  test("masks resize by the nearest pixel: class ids stay class ids", async () => {
    const zip = makeZip([
      { name: "data/images/a.png", data: await png(8, 8) },
      { name: "data/masks/a.png", data: await mask(8, 8, (y, x) => ((x + y) % 2) * 3) },
    ]);
    const d = await parse(zip, { imageSize: "5,7" });
    assert.deepEqual(d.outputs[0].shape, [5, 7]);
    assert.deepEqual(d.outputs[0].classes, ["0", "3"]);
    assert.ok(d.targets.every((v) => v === 0 || v === 1));
  });

  test("an image without a mask, or a mask without an image: a 400 naming it", async () => {
    await refuses(parse(makeZip([{ name: "images/a.png", data: await png(4, 4) }, { name: "images/b.png", data: await png(4, 4) }, { name: "masks/a.png", data: await mask(4, 4, (y) => y % 2) }])), "images/b.png", /has no mask: expected masks\/b\.png/);
    await refuses(parse(makeZip([{ name: "images/a.png", data: await png(4, 4) }, { name: "masks/a.png", data: await mask(4, 4, (y) => y % 2) }, { name: "masks/c.png", data: await mask(4, 4, (y) => y % 2) }])), "masks/c.png", /a mask with no image/);
  });

  test("a JPEG mask, a 16-bit mask, a coloured mask, a mask of another size, masks of one value: 400s naming the file", async () => {
    const image = { name: "images/a.png", data: await png(4, 4) };
    await refuses(parse(makeZip([image, { name: "masks/a.jpg", data: await encode(pixels(4, 4, 3, () => 0), 4, 4, 3, "jpeg") }])), "masks/a.jpg", /a mask must be a PNG/);
    const sixteen = await (await import("sharp")).default(new Uint16Array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]), { raw: { width: 4, height: 4, channels: 1 } }).toColourspace("grey16").png().toBuffer();
    await refuses(parse(makeZip([image, { name: "masks/a.png", data: sixteen }])), "masks/a.png", /16-bit samples; a mask must be 8-bit/);
    await refuses(parse(makeZip([image, { name: "masks/a.png", data: await encode(pixels(4, 4, 3, (y, x, k) => (x === 2 && k === 0 ? 200 : 0)), 4, 4, 3) }])), "masks/a.png", /pixel \(row 0, column 2\) is the colour \(200, 0, 0\)/);
    await refuses(parse(makeZip([image, { name: "masks/a.png", data: await mask(5, 4, (y) => y % 2) }])), "masks/a.png", /is 5×4 \(H×W\), its image images\/a\.png is 4×4/);
    await refuses(parse(makeZip([image, { name: "masks/a.png", data: await mask(4, 4, () => 0) }])), "masks", /every pixel of every mask is 0: segmentation needs at least 2 classes/);
  });

  test("a file beside images/ and masks/: a 400 naming it", async () => {
    await refuses(parse(makeZip([{ name: "images/a.png", data: await png(4, 4) }, { name: "masks/a.png", data: await mask(4, 4, (y) => y % 2) }, { name: "extra/a.png", data: await png(4, 4) }])), "extra/a.png", /neither in images\/ nor in masks\//);
  });
});

describe("image zips: bad input, each a 4xx naming where", () => {
  test("not a zip", async () => {
    await refuses(parse(Buffer.from("this is not a zip file at all, just some text")), "zip", /not a readable zip archive/);
  });

  test("a truncated zip (the central directory cut off)", async () => {
    const zip = makeZip([{ name: "a/1.png", data: await png(4, 4) }, { name: "b/1.png", data: await png(4, 4) }]);
    await refuses(parse(zip.subarray(0, zip.length - 30)), "zip", /not a readable zip archive/);
  });

  test("a corrupt image: a truncated PNG", async () => {
    const good = await png(16, 16, 1);
    const zip = makeZip([{ name: "a/1.png", data: await png(16, 16) }, { name: "b/broken.png", data: good.subarray(0, good.length - 40) }]);
    await refuses(parse(zip), "b/broken.png", /could not be decoded/);
  });

  test("a file named .png that is not an image, and an SVG named .png", async () => {
    await refuses(parse(makeZip([{ name: "a/1.png", data: await png(4, 4) }, { name: "b/text.png", data: Buffer.from("hello, I am text") }])), "b/text.png", /is not a readable PNG or JPEG image/);
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>');
    await refuses(parse(makeZip([{ name: "a/1.png", data: await png(4, 4) }, { name: "b/vector.png", data: svg }])), "b/vector.png", /is a svg image; only PNG and JPEG are read/);
  });

  test("a PNG header claiming 100000×100000 pixels: a 400 from its header, before decoding", async () => {
    const zip = makeZip([{ name: "a/1.png", data: await png(2, 2) }, { name: "b/huge.png", data: await pngClaiming(100_000, 100_000) }]);
    await refuses(parse(zip), "b/huge.png", /is 100000×100000 pixels \(as its header says\); at most 50,000,000/);
  });

  test("one class folder only, no images at all, an image outside any class folder, a class folder with no images", async () => {
    await refuses(parse(makeZip([{ name: "cat/1.png", data: await png(4, 4) }, { name: "cat/2.png", data: await png(4, 4) }])), "zip", /at least 2 class folders, found 1 \(cat\/\)/);
    await refuses(parse(makeZip([{ name: "docs/readme.txt", data: Buffer.from("x") }, { name: "__MACOSX/a/1.png", data: await png(4, 4) }])), "zip", /holds no images.*docs\/readme\.txt/);
    await refuses(parse(makeZip([{ name: "cat/1.png", data: await png(4, 4) }, { name: "dog/1.png", data: await png(4, 4) }, { name: "stray.png", data: await png(4, 4) }])), "stray.png", /not inside a class folder/);
    await refuses(parse(makeZip([{ name: "p/cat/1.png", data: await png(4, 4) }, { name: "p/dog/1.png", data: await png(4, 4) }, { name: "p/bird/", }, { name: "p/fish/notes.txt", data: Buffer.from("x") }])), "p/bird/", /holds no images/);
  });

  test("too many files: the count the zip declares is refused before any entry is read", async () => {
    const zip = makeZip([{ name: "a/1.png", data: await png(4, 4) }, { name: "b/1.png", data: await png(4, 4) }], { declaredCount: 100_001 });
    await refuses(parse(zip), "zip", /lists 100001 files and folders; at most 100,000/);
  });

  test("a zip bomb by declared sizes: a 413 before anything is decompressed", async () => {
    const zip = makeZip([
      { name: "a/1.png", data: await png(4, 4) },
      { name: "b/1.png", data: await png(4, 4), declaredSize: 3_000_000_000 },
    ]);
    await refuses(parse(zip, {}, 1_000_000), "zip", /say they decompress to 2861\.0 MiB, more than the upload limit of 1\.0 MiB/, 413);
  });

  test("a zip bomb by actual sizes: an entry that inflates beyond what it declares is a 400 naming it", async () => {
    const zip = makeZip([
      { name: "a/1.png", data: await png(4, 4) },
      { name: "b/bomb.png", data: Buffer.alloc(5_000_000), declaredSize: 100 },
    ]);
    await refuses(parse(zip), "b/bomb.png", /could not be decompressed/);
  });

  test("images whose headers add up to too many pixels: a 413 before decoding", async () => {
    const blank = await encode(new Uint8Array(2000 * 2000), 2000, 2000, 1);
    const entries = Array.from({ length: 6 }, (_, i) => ({ name: `${i % 2 ? "a" : "b"}/${i}.png`, data: blank }));
    // 6 × 4,000,000 pixels > 16 × 1 MiB.
    await refuses(parse(makeZip(entries), {}, 1024 * 1024), "zip", /hold 24,000,000 pixels, more than 16,777,216/, 413);
  });

  test("a dataset that would hold more values than the upload limit has bytes: a 413 naming ?imageSize", async () => {
    const zip = makeZip([{ name: "a/1.png", data: await png(4, 4) }, { name: "b/1.png", data: await png(4, 4) }]);
    await refuses(parse(zip, { imageSize: "400,400" }, 500_000), "zip", /2 images of 400×400×3 are 960,000 values.*smaller \?imageSize/, 413);
  });

  test("an encrypted entry and a name with a NUL character", async () => {
    await refuses(parse(makeZip([{ name: "a/1.png", data: await png(4, 4) }, { name: "b/secret.png", data: await png(4, 4), encrypted: true }])), "b/secret.png", /is encrypted/);
    await refuses(parse(makeZip([{ name: "a/1.png", data: await png(4, 4) }, { name: "b/x\u0000.png", data: await png(4, 4), utf8: false }])), "zip", /NUL character/);
  });

  test("query: a name, a sane ?imageSize, classification only", async () => {
    const zip = makeZip([{ name: "a/1.png", data: await png(4, 4) }, { name: "b/1.png", data: await png(4, 4) }]);
    await refuses(parseImageZip(zip, {}), "querystring.name", /is required/);
    for (const bad of ["0,4", "4,4,4", "x", "5000,5000", "-1"]) await refuses(parse(zip, { imageSize: bad }), "querystring.imageSize", /expected H,W/);
    await refuses(parse(zip, { task: "regression" }), "querystring.task", /classification/);
  });
});

describe("image zips: streamed from a file to a sink", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "image-zip-test-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  let written = 0;
  /** The zip as a file on disk, as an upload spooled for streaming is. */
  const spool = async (zip: Buffer) => {
    const file = path.join(dir, `upload-${written++}.zip`);
    await writeFile(file, zip);
    return file;
  };
  const LARGE: UploadLimits = { maxBytes: 64 * 1024 * 1024, maxFileBytes: 64 * 1024 * 1024 };
  const fromFile = (file: string, query: Partial<UploadQuery> = {}, limits = LARGE) =>
    collectRows((sink) => streamImageZip({ file }, { name: "imgs", ...query }, limits, sink));

  /** A sink that keeps what it is handed, and in what order. */
  function recordingSink() {
    const calls: ("begin" | number)[] = [];
    let layout: DatasetLayout | undefined;
    const features: Float32Array[] = [];
    const targets: Float32Array[] = [];
    const concat = (chunks: Float32Array[]) => {
      const out = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
      let at = 0;
      for (const c of chunks) {
        out.set(c, at);
        at += c.length;
      }
      return out;
    };
    const sink: RowSink = {
      async begin(l) {
        calls.push("begin");
        layout = l;
      },
      async append(rows, f, t) {
        calls.push(rows);
        features.push(f.slice());
        targets.push(t.slice());
      },
    };
    return { sink, calls, features: () => concat(features), targets: () => concat(targets), layout: () => layout };
  }

  test("classification from a file: the same dataset as from a buffer", async () => {
    const zip = makeZip([
      { name: "set/b/2.png", data: await png(9, 7, 1) },
      { name: "set/b/1.jpg", data: await encode(pixels(6, 5, 3, pattern(2)), 6, 5, 3, "jpeg") },
      { name: "set/a/x.png", data: await png(4, 4, 3, 4), method: 0 },
      { name: "set/c/y.png", data: await png(8, 8, 4, 1) },
      { name: "set/notes.md", data: Buffer.from("#") },
    ]);
    const query = { imageSize: "6,5" };
    const memory = await parse(zip, query);
    const file = await fromFile(await spool(zip), query);
    assert.equal(file.rows, 4);
    assert.deepEqual(file, memory);
  });

  test("segmentation from a file: the same dataset as from a buffer, mask values as compact class ids", async () => {
    const mask = (f: (y: number, x: number) => number) => encode(pixels(6, 6, 1, f), 6, 6, 1);
    const zip = makeZip([
      { name: "images/b.png", data: await png(6, 6, 2) },
      { name: "images/a.jpg", data: await encode(pixels(6, 6, 3, pattern(1)), 6, 6, 3, "jpeg") },
      { name: "masks/b.png", data: await mask((y, x) => (x < 2 ? 7 : 0)) },
      { name: "masks/a.png", data: await mask((y) => (y < 3 ? 0 : 200)) },
    ]);
    const memory = await parse(zip);
    const file = await fromFile(await spool(zip));
    assert.deepEqual(file.outputs[0].classes, ["0", "7", "200"]);
    assert.deepEqual(new Set(file.targets), new Set([0, 1, 2]));
    assert.deepEqual(file, memory);
  });

  test("300 images arrive a chunk of rows at a time, in example order, never all at once", async () => {
    const entries: ZipEntry[] = [];
    for (let i = 0; i < 300; i++) entries.push({ name: `${["x", "y", "z"][i % 3]}/${String(i).padStart(3, "0")}.png`, data: await png(32, 32, i) });
    const zip = makeZip(entries);
    const rowValues = 32 * 32 * 3 + 1;
    const rec = recordingSink();
    const atEnd = await streamImageZip({ file: await spool(zip) }, { name: "many" }, LARGE, rec.sink, { chunkBytes: 64 * rowValues * 4 });
    assert.deepEqual(rec.calls, ["begin", 64, 64, 64, 64, 44]);
    assert.deepEqual(rec.layout()!.outputs[0].classes, ["x", "y", "z"]);
    assert.deepEqual(atEnd, { warnings: [] });
    // Each append holds its rows' features, then their targets: gathered, the dataset read whole.
    const whole = await parse(zip, { name: "many" });
    const features = rec.features();
    assert.deepEqual(rec.targets(), whole.targets);
    assert.deepEqual(features, whole.features);
    // Classes sorted, files sorted within a class: x/000, x/003, … then y/001, ….
    const row = (i: number) => [...features.subarray(i * 3072, (i + 1) * 3072)];
    assert.deepEqual(row(0), [...pixels(32, 32, 3, pattern(0))]);
    assert.deepEqual(row(1), [...pixels(32, 32, 3, pattern(3))]);
    assert.deepEqual(row(100), [...pixels(32, 32, 3, pattern(1))]);
    assert.deepEqual(row(299), [...pixels(32, 32, 3, pattern(299))]);
  });

  test("segmentation rows in chunks: features then mask class ids for the chunk's rows", async () => {
    const entries: ZipEntry[] = [];
    for (let i = 0; i < 5; i++) {
      entries.push({ name: `images/${i}.png`, data: await png(4, 4, i) });
      entries.push({ name: `masks/${i}.png`, data: await encode(pixels(4, 4, 1, (y) => (y === i % 4 ? 9 : 3)), 4, 4, 1) });
    }
    const zip = makeZip(entries);
    const rec = recordingSink();
    await streamImageZip({ file: await spool(zip) }, { name: "seg" }, LARGE, rec.sink, { chunkBytes: 2 * (48 + 16) * 4 });
    assert.deepEqual(rec.calls, ["begin", 2, 2, 1]);
    const whole = await parse(zip);
    assert.deepEqual(rec.targets(), whole.targets);
    assert.deepEqual(rec.features(), whole.features);
    assert.deepEqual(rec.layout()!.outputs[0].classes, ["3", "9"]);
  });

  test("what the directory and headers show is refused before sink.begin", async () => {
    const cases: [Buffer, RegExp][] = [
      [makeZip([{ name: "a/1.png", data: await png(4, 4) }, { name: "b/1.png", data: await png(5, 4) }]), /need \?imageSize/],
      [makeZip([{ name: "a/1.png", data: await png(4, 4) }, { name: "b/1.png", data: Buffer.from("not a png") }]), /not a readable PNG/],
      [makeZip([{ name: "images/a.png", data: await png(4, 4) }, { name: "masks/a.png", data: await encode(pixels(4, 4, 1, () => 5), 4, 4, 1) }]), /every pixel of every mask is 5/],
      [makeZip([{ name: "images/a.png", data: await png(4, 4) }, { name: "masks/a.png", data: await png(4, 4) }]), /is the colour/],
    ];
    for (const [zip, message] of cases) {
      const rec = recordingSink();
      await assert.rejects(streamImageZip({ file: await spool(zip) }, { name: "bad" }, LARGE, rec.sink), message);
      assert.deepEqual(rec.calls, [], `${message}: nothing handed to the sink`);
    }
  });

  test("from a file, the dataset file limit applies (not the upload limit), and the messages say so", async () => {
    const two = makeZip([{ name: "a/1.png", data: await png(4, 4) }, { name: "b/1.png", data: await png(4, 4) }]);
    // Larger than the upload limit, within the dataset file limit: read.
    const d = await fromFile(await spool(two), {}, { maxBytes: 100, maxFileBytes: 1024 * 1024 });
    assert.equal(d.rows, 2);

    const bomb = makeZip([{ name: "a/1.png", data: await png(4, 4) }, { name: "b/1.png", data: await png(4, 4), declaredSize: 3_000_000_000 }]);
    const small = { maxBytes: 64 * 1024 * 1024, maxFileBytes: 1024 * 1024 };
    await refuses(fromFile(await spool(bomb), {}, small), "zip", /say they decompress to 2861\.0 MiB, more than the dataset file limit of 1\.0 MiB/, 413);
    const err = await refuses(fromFile(await spool(bomb), {}, small), "zip", /dataset file limit/, 413);
    assert.ok(err instanceof UploadTooLargeError);

    const blank = await encode(new Uint8Array(2000 * 2000), 2000, 2000, 1);
    const big = makeZip(Array.from({ length: 6 }, (_, i) => ({ name: `${i % 2 ? "a" : "b"}/${i}.png`, data: blank })));
    await refuses(fromFile(await spool(big), {}, small), "zip", /hold 24,000,000 pixels, more than 16,777,216 \(16 per byte of the dataset file limit\)/, 413);
    await refuses(fromFile(await spool(two), { imageSize: "400,400" }, { maxBytes: 64 * 1024 * 1024, maxFileBytes: 500_000 }), "zip", /960,000 values, more than 500,000 \(as many as the dataset file limit has bytes\)/, 413);
    // From a buffer, the same zip is measured against the upload limit.
    await refuses(parseImageZip(bomb, { name: "imgs" }, { maxBytes: 1024 * 1024, maxFileBytes: 64 * 1024 * 1024 }), "zip", /more than the upload limit of 1\.0 MiB/, 413);
  });

  test("a spooled file that is not a zip is a 400; one that is missing is the server's error, not the upload's", async () => {
    await refuses(fromFile(await spool(Buffer.from("plain text, not a zip"))), "zip", /not a readable zip archive/);
    await assert.rejects(fromFile(path.join(dir, "missing.zip")), (err: NodeJS.ErrnoException) => err.code === "ENOENT" && !(err instanceof DomainError));
  });

  test("a corrupt image found only when decoded: refused after begin, naming it", async () => {
    const good = await png(16, 16, 1);
    const zip = makeZip([{ name: "a/1.png", data: await png(16, 16) }, { name: "b/broken.png", data: good.subarray(0, good.length - 40) }]);
    const rec = recordingSink();
    await refuses(streamImageZip({ file: await spool(zip) }, { name: "bad" }, LARGE, rec.sink), "b/broken.png", /could not be decoded/);
    assert.deepEqual(rec.calls, ["begin"]);
  });
});

test("UploadTooLargeError is the 413 the API answers", () => {
  assert.equal(new UploadTooLargeError("x").status, 413);
});
