// NumPy .npy and .npz reading: the header grammar, dtypes and byte orders, sizes checked before
// anything is allocated, the array naming convention, and zips that lie. Fixtures are written
// byte by byte (test/helpers/numpy.ts), as numpy's lib/format.py writes them.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { datasetFromArrays, parseNpzDataset, readNpz, MAX_NPZ_ENTRIES, type NamedArray } from "../../lib/data/formats/npz.ts";
import { decodeNpyInto, readNpyHeader, valueReader } from "../../lib/data/formats/npy.ts";
import { UploadTooLargeError } from "../../lib/data/formats/upload-limits.ts";
import { ValidationError } from "../../lib/errors.ts";
import { encode, headerDict, npy, npz, zip } from "../helpers/numpy.ts";

const LIMITS = { maxBytes: 1024 * 1024, maxFileBytes: 1024 * 1024 };

/** The problem a ValidationError reports: its path and message. */
function problem(fn: () => unknown): { path: string; message: string } {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ValidationError, `expected a ValidationError, got ${e}`);
    return e.problems[0];
  }
  assert.fail("expected a ValidationError");
}
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  assert.fail("expected a rejection");
}

const values = (buf: Buffer) => {
  const h = readNpyHeader(buf, "f");
  const read = valueReader(buf, h);
  return Array.from({ length: h.count }, (_, i) => read(i));
};

describe(".npy headers", () => {
  test("versions 1.0, 2.0 and 3.0 are read alike", () => {
    for (const version of [1, 2, 3] as const) {
      const buf = npy("<f4", [2, 3], [1, 2, 3, 4, 5, 6], { version });
      const h = readNpyHeader(buf, "f");
      assert.deepEqual(h.shape, [2, 3], `v${version}`);
      assert.equal(h.dataOffset % 64, 0, "numpy aligns the data to 64 bytes");
      assert.deepEqual(values(buf), [1, 2, 3, 4, 5, 6]);
    }
    const v4 = npy("<f4", [1], [1]);
    v4[6] = 4;
    assert.deepEqual(problem(() => readNpyHeader(v4, "f")), { path: "f version", message: "is 4.0; .npy versions 1.0, 2.0 and 3.0 are read" });
  });

  test("every supported dtype in either byte order converts exactly", () => {
    const cases: [string, number[]][] = [
      ["f2", [0.5, -1.25, 65504]],
      ["f4", [1.5, -2.25, 2 ** 100]],
      ["f8", [0.1, -1e-300, 1e300]],
      ["i1", [-128, 0, 127]],
      ["i2", [-32768, 1, 32767]],
      ["i4", [-(2 ** 31), 7, 2 ** 31 - 1]],
      ["i8", [-(2 ** 53), -1, 2 ** 53]],
      ["u1", [0, 1, 255]],
      ["u2", [0, 65535, 3]],
      ["u4", [0, 2 ** 32 - 1, 3]],
      ["u8", [0, 2 ** 53, 3]],
      ["b1", [1, 0, 1]],
    ];
    for (const [type, vals] of cases) {
      const orders = type.endsWith("1") ? ["|", "<", ">"] : ["<", ">"];
      for (const order of orders) assert.deepEqual(values(npy(`${order}${type}`, [3], vals)), vals, `${order}${type}`);
    }
  });

  test("the header is parsed, never evaluated: its grammar is checked strictly", () => {
    const bad = (header: string) => problem(() => readNpyHeader(npy("<f4", [1], [1], { header }), "f"));
    assert.equal(bad("__import__('os').system('true')").path, "f header");
    assert.equal(bad("{'descr': '<f4', 'fortran_order': False}").path, "f header.shape");
    assert.equal(bad("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}").path, "f header.extra");
    assert.match(bad("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}").message, /appears twice/);
    assert.equal(bad("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}").path, "f header.fortran_order");
    assert.equal(bad("{'descr': '<f4', 'fortran_order': False, 'shape': [1]}").path, "f header.shape");
    assert.equal(bad("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}").path, "f header.shape");
    assert.equal(bad("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), ").path, "f header");
    assert.equal(bad("{'descr': '<f4' 'fortran_order': False, 'shape': (1,)}").path, "f header");
    assert.equal(bad("{'descr': 3, 'fortran_order': False, 'shape': (1,)}").path, "f header.descr");
    // What numpy itself writes or reads: double quotes, trailing commas, Python 2's 1L.
    const ok = npy("<f4", [1], [1], { header: `{"descr": "<f4", "fortran_order": False, "shape": (1L,), }` });
    assert.deepEqual(readNpyHeader(ok, "f").shape, [1]);
    assert.deepEqual(readNpyHeader(npy("<f4", [], [5]), "f").shape, [], "() is a scalar");
  });

  test("unsupported dtypes are refused at header.descr, naming what they are", () => {
    for (const [descr, what] of [["<c8", "complex"], ["|O", "objects"], ["<U5", "unicode"], ["|S3", "byte strings"], ["<M8[ns]", "datetime64"], ["<m8[s]", "timedelta64"], ["|V8", "raw"], ["<f16", "floats of this size"], ["|b2", ""]]) {
      const p = problem(() => readNpyHeader(npy("<f4", [1], [1], { header: headerDict(descr, [1]) }), "part 'features'"));
      assert.equal(p.path, "part 'features' header.descr", descr);
      assert.match(p.message, new RegExp(`'${descr.replace(/[[\]|]/g, "\\$&")}'.*${what}.*not supported`), descr);
    }
    const structured = npy("<f4", [1], [1], { header: "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (1,), }" });
    assert.match(problem(() => readNpyHeader(structured, "f")).message, /structured/);
  });

  test("Fortran order is refused where it changes the layout, and read where it does not", () => {
    const p = problem(() => readNpyHeader(npy("<f4", [2, 2], [1, 2, 3, 4], { fortran: true }), "f"));
    assert.equal(p.path, "f header.fortran_order");
    assert.match(p.message, /np\.ascontiguousarray/);
    assert.deepEqual(values(npy("<f4", [3], [1, 2, 3], { fortran: true })), [1, 2, 3]);
    assert.deepEqual(values(npy("<f4", [1, 3], [1, 2, 3], { fortran: true })), [1, 2, 3]);
  });

  test("sizes come from the header and are checked before anything is allocated", () => {
    const truncated = npy("<f4", [3, 4], encode("<f4", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    assert.deepEqual(problem(() => readNpyHeader(truncated, "f")), { path: "f", message: "is truncated: shape (3, 4) of '<f4' needs 48 bytes after the header, the file has 40 (8 bytes missing)" });
    const extra = npy("<f4", [2], encode("<f4", [1, 2, 3]));
    assert.match(problem(() => readNpyHeader(extra, "f")).message, /^has 4 bytes too many/);
    // A trillion values claimed by a file of a few bytes: refused from the header alone.
    const huge = npy("<f4", [1e12], [1, 2]);
    assert.match(problem(() => readNpyHeader(huge, "f")).message, /needs 4000000000000 bytes.*3999999999992 bytes missing/);
    const overflow = npy("<f8", [2 ** 52, 2 ** 52, 2 ** 52], [1]);
    assert.match(problem(() => readNpyHeader(overflow, "f")).message, /is truncated/);
    assert.match(problem(() => readNpyHeader(Buffer.from("x,y\n1,2\n"), "f")).message, /not a NumPy \.npy file/);
    assert.match(problem(() => readNpyHeader(npy("<f4", [1], [1]).subarray(0, 20), "f")).message, /truncated/);
  });

  test("values must be finite in float32; integers beyond 2^24 are rounded and reported", () => {
    const decode = (buf: Buffer) => decodeNpyInto(buf, readNpyHeader(buf, "x"), new Float32Array(readNpyHeader(buf, "x").count), 0, "x");
    assert.deepEqual(problem(() => decode(npy("<f4", [2, 2], [1, 2, NaN, 4]))), { path: "x[1, 0]", message: "is NaN; every value must be a finite number" });
    assert.match(problem(() => decode(npy("<f8", [2], [1, -Infinity]))).message, /infinite/);
    assert.deepEqual(problem(() => decode(npy("<f8", [2], [1, 1e300]))), { path: "x[1]", message: "is 1e+300, beyond float32's range (±3.4e38)" });
    assert.deepEqual(decode(npy("<i8", [2], [2 ** 24, 3])), { rounded: undefined });
    assert.deepEqual(decode(npy("<i8", [3], [1, 2 ** 24 + 1, 2 ** 40 + 1])).rounded, { index: 1, value: 2 ** 24 + 1 });
  });
});

describe("datasets from named arrays", () => {
  const arrays = (named: Record<string, Buffer>): NamedArray[] => Object.entries(named).map(([name, buf]) => ({ name, where: `npz '${name}.npy'`, npy: buf }));
  const build = (named: Record<string, Buffer>, task?: "classification" | "regression") => datasetFromArrays(arrays(named), { name: "d", task }, "npz");
  const x4 = npy("<f4", [4, 2], [1, 2, 3, 4, 5, 6, 7, 8]);

  test("x and y: tabular features, integer labels as classes sorted numerically", () => {
    const d = build({ x: x4, y: npy("<i8", [4], [10, 2, 2, 10]) });
    assert.equal(d.rows, 4);
    assert.deepEqual(d.inputs, [{ name: "input", shape: [2], kind: "tabular" }]);
    assert.deepEqual(d.outputs, [{ name: "output", task: "classification", classes: ["2", "10"], shape: [1] }]);
    assert.deepEqual(Array.from(d.targets), [1, 0, 0, 1]);
    assert.deepEqual(Array.from(d.features), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(d.featureNames, ["x0", "x1"]);
    const same = build({ features: x4, labels: npy("|u1", [4], [10, 2, 2, 10]) });
    assert.deepEqual(same.outputs[0].classes, ["2", "10"], "features/labels are x/y");
  });

  test("the task follows the dtype, and ?task= overrides it", () => {
    assert.equal(build({ x: x4, y: npy("<f4", [4], [0.5, 1, 1.5, 2]) }).outputs[0].task, "regression");
    assert.deepEqual(build({ x: x4, y: npy("|b1", [4], [1, 0, 0, 1]) }).outputs[0].classes, ["0", "1"]);
    const forced = build({ x: x4, y: npy("<f8", [4], [1, 0, 0, 1]) }, "classification");
    assert.deepEqual(forced.outputs[0], { name: "output", task: "classification", classes: ["0", "1"], shape: [1] });
    const values = build({ x: x4, y: npy("<i4", [4], [3, 1, 4, 1]) }, "regression");
    assert.deepEqual(Array.from(values.targets), [3, 1, 4, 1]);
    assert.deepEqual(problem(() => build({ x: x4, y: npy("<i4", [4], [1, 1, 1, 1]) })), { path: "npz 'y.npy'", message: "classification needs at least 2 classes, found 1" });
    assert.equal(problem(() => build({ x: x4, y: npy("<f4", [4], [0, 1, NaN, 1]) }, "classification")).path, "npz 'y.npy'[2]");
    assert.match(problem(() => build({ x: x4, y: npy("<i8", [4], [0, 1, 2 ** 53 + 2, 1]) })).message, /beyond 2\^53/);
  });

  test("kinds and shapes: [rows, k] tabular, uint8 [rows, H, W, C] images, anything else tensors; labels [rows, k] and masks", () => {
    const images = npy("|u1", [2, 2, 2, 1], [0, 255, 7, 9, 1, 2, 3, 4]);
    const masks = npy("|u1", [2, 2, 2], [0, 1, 1, 0, 1, 1, 0, 0]);
    const seg = build({ x: images, y: masks });
    assert.deepEqual(seg.inputs[0], { name: "input", shape: [2, 2, 1], kind: "image" });
    assert.deepEqual(seg.outputs[0], { name: "output", task: "classification", classes: ["0", "1"], shape: [2, 2] });
    assert.deepEqual(Array.from(seg.features.subarray(0, 2)), [0, 255]);
    assert.deepEqual(seg.featureNames, []);
    assert.equal(build({ x: npy("<f4", [2, 2, 2, 1], Array(8).fill(0.5)), y: masks }).inputs[0].kind, "tensor");
    assert.equal(build({ x: npy("<f4", [2, 3, 2], Array(12).fill(1)), y: npy("<f4", [2], [1, 2]) }).inputs[0].kind, "tensor");
    const column = build({ x: npy("<f4", [2], [1, 2]), y: npy("<f4", [2, 3], [1, 2, 3, 4, 5, 6]) });
    assert.deepEqual(column.inputs[0], { name: "input", shape: [1], kind: "tabular" });
    assert.deepEqual(column.outputs[0], { name: "output", task: "regression", classes: [], shape: [3] });
  });

  test("several inputs and outputs by name, packed in order", () => {
    const d = build({
      "inputs.left": npy("<f4", [2, 2], [1, 2, 3, 4]),
      "inputs.right": npy("<f4", [2, 1], [5, 6]),
      "outputs.species": npy("<i2", [2], [1, 0]),
      "outputs.width": npy("<f4", [2], [0.5, 0.25]),
    });
    assert.deepEqual(d.inputs.map((i) => [i.name, i.shape]), [["left", [2]], ["right", [1]]]);
    assert.deepEqual(Array.from(d.features), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(d.outputs.map((o) => [o.name, o.task]), [["species", "classification"], ["width", "regression"]]);
    assert.deepEqual(Array.from(d.targets), [1, 0, 0.5, 0.25]);
    assert.deepEqual(d.featureNames, []);
  });

  test("names, rows and missing arrays are reported at the array", () => {
    const y = npy("<i4", [4], [0, 1, 0, 1]);
    assert.match(problem(() => build({ x: x4, y, x_test: x4 })).path, /npz 'x_test.npy'/);
    assert.match(problem(() => build({ x: x4, y, x_test: x4 })).message, /name the features x \(or features\)/);
    assert.match(problem(() => build({ x: x4, features: x4, y })).message, /same input as npz 'x.npy'/);
    assert.match(problem(() => build({ x: x4, "inputs.a": x4, y })).message, /mixes with npz 'x.npy'/);
    assert.match(problem(() => build({ "inputs.9bad": x4, y })).message, /not a valid input name/);
    assert.deepEqual(problem(() => build({ x: x4 })), { path: "npz", message: "has no labels: name the features x (or features) and the labels y (or labels), or several inputs.<name> and outputs.<name>" });
    assert.match(problem(() => build({ y })).message, /has no features/);
    assert.deepEqual(problem(() => build({ x: x4, y: npy("<i4", [3], [0, 1, 0]) })), { path: "npz 'y.npy' header.shape", message: "is (3,): 3 rows (first axis), npz 'x.npy' has 4" });
    assert.match(problem(() => build({ x: npy("<f4", [], [1]), y })).message, /first axis of every array is rows/);
    assert.match(problem(() => build({ x: npy("<f4", [0, 2], []), y })).message, /no rows/);
    assert.match(problem(() => build({ x: npy("<f4", [4, 0], []), y })).message, /every row is empty/);
    assert.match(problem(() => build({ x: npy("<f4", [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [1]), y: npy("<i4", [1], [0]) })).message, /at most 8 dimensions/);
  });

  test("rounded integers become a warning on the dataset", () => {
    const d = build({ x: npy("<i8", [2, 1], [1, 2 ** 30 + 1]), y: npy("<i4", [2], [0, 1]) });
    assert.deepEqual(d.warnings, ["npz 'x.npy'[1, 0]: 1073741825 and other integers beyond ±2^24 are rounded to the nearest float32 (1073741824)"]);
  });
});

describe(".npz archives", () => {
  const x = npy("<f4", [4, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
  const y = npy("<i8", [4], [0, 1, 1, 0]);

  test("stored (np.savez) and deflated (np.savez_compressed) archives read alike", async () => {
    for (const deflate of [false, true]) {
      const d = await parseNpzDataset(npz({ x, y }, deflate), { name: "n" }, LIMITS);
      assert.equal(d.rows, 4);
      assert.deepEqual(Array.from(d.targets), [0, 1, 1, 0]);
    }
    const unnamed = await rejection(parseNpzDataset(npz({ x, y }), {}, LIMITS));
    assert.equal((unnamed as ValidationError).problems[0].path, "querystring.name");
  });

  test("zip bombs are refused by the sizes the directory declares, before anything is inflated", async () => {
    const zeros = npy("|u1", [4, 512 * 1024], Buffer.alloc(2 * 1024 * 1024));
    const bomb = npz({ x: zeros, y }, true);
    assert.ok(bomb.length < 10_000, `${bomb.length} bytes of zip`);
    const err = await rejection(readNpz(bomb, LIMITS));
    assert.ok(err instanceof UploadTooLargeError, String(err));
    assert.match(err.message, /more than the upload limit of 1048576 bytes/);
  });

  test("and by the bytes actually read: an entry that inflates past what it declares is refused", async () => {
    const liar = zip([{ name: "x.npy", data: npy("|u1", [4, 100_000], Buffer.alloc(400_000)), deflate: true, declaredSize: 1000 }, { name: "y.npy", data: y }]);
    const err = await rejection(readNpz(liar, LIMITS));
    assert.ok(err instanceof ValidationError, String(err));
    assert.match(err.problems[0].path, /^npz 'x.npy'$/);
    assert.match(err.message, /inflates to more than the 1000 bytes|too many bytes/);
  });

  test("too many entries, corrupt or lying archives, and entries that are not arrays are 400s naming where", async () => {
    const many = zip(Array.from({ length: MAX_NPZ_ENTRIES + 1 }, (_, i) => ({ name: `a${i}.npy`, data: Buffer.from("x") })));
    assert.match((await rejection(readNpz(many, LIMITS))).message, /^npz: has 65 entries/);
    const cases: [string, Buffer, RegExp][] = [
      ["not a zip", Buffer.from("definitely not a zip archive, just text"), /^npz: is not a readable zip archive/],
      ["truncated", npz({ x, y }).subarray(0, 200), /^npz: is not a readable zip archive/],
      ["wrong CRC", zip([{ name: "x.npy", data: x, crc: 1234 }]), /^npz 'x.npy': is corrupt/],
      ["corrupt deflate", corruptDeflate(x), /^npz 'x.npy': cannot be read/],
      ["not .npy", zip([{ name: "readme.txt", data: Buffer.from("hi") }]), /^npz 'readme.txt': is not a \.npy file/],
      ["empty", zip([]), /^npz: holds no arrays/],
      ["twice", zip([{ name: "x.npy", data: x }, { name: "x.npy", data: x }]), /appears twice/],
    ];
    for (const [what, body, message] of cases) {
      const err = await rejection(readNpz(body, LIMITS));
      assert.ok(err instanceof ValidationError, `${what}: ${err}`);
      assert.match(err.message, message, what);
    }
  });
});

/** A deflated entry whose compressed bytes were damaged in transit. */
function corruptDeflate(data: Buffer): Buffer {
  const archive = zip([{ name: "x.npy", data, deflate: true }]);
  // The data starts after the 30-byte local header and the name; scramble its middle.
  for (let i = 30 + 5 + 4; i < 30 + 5 + 24; i++) archive[i] = 0xff;
  return archive;
}
