// NumPy .npy files (numpy's lib/format.py, NEP 1): the magic "\x93NUMPY", a version, a header
// that is a Python dict literal ({'descr': '<f4', 'fortran_order': False, 'shape': (150, 4), }),
// then the array's bytes. The header is read by a small parser of exactly that literal grammar,
// never evaluated, and every size is checked against the bytes that are there before anything is
// allocated: a header that claims a shape of 10^12 values costs nothing.
import { endianness } from "node:os";
import { ValidationError } from "../../errors.ts";

/** How values are stored: numpy's dtype kinds this reader converts to float32. */
export type NpyKind = "float" | "int" | "uint" | "bool";

/** A checked header: the data starts at `dataOffset` and holds exactly `count` values of `itemsize` bytes. */
export interface NpyHeader {
  descr: string;
  kind: NpyKind;
  itemsize: number;
  littleEndian: boolean;
  shape: number[];
  count: number;
  dataOffset: number;
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
/** numpy refuses longer headers too (format.py's _MAX_HEADER_SIZE): a real one is under 200 bytes. */
const MAX_HEADER_BYTES = 10_000;
/** Integers from -2^24 to 2^24 are exact in float32; beyond, float32 rounds them. */
const FLOAT32_EXACT = 2 ** 24;

const SUPPORTED: Record<string, { kind: NpyKind; sizes: number[] }> = {
  f: { kind: "float", sizes: [2, 4, 8] },
  i: { kind: "int", sizes: [1, 2, 4, 8] },
  u: { kind: "uint", sizes: [1, 2, 4, 8] },
  b: { kind: "bool", sizes: [1] },
};
const UNSUPPORTED_KINDS: Record<string, string> = {
  c: "complex numbers", O: "Python objects", U: "unicode strings", S: "byte strings", a: "byte strings", V: "raw or structured records",
  M: "datetime64", m: "timedelta64", g: "long doubles", f: "floats of this size",
};
const SUPPORTED_LIST = "float16/32/64, int8–64, uint8–64 or bool ('<f4', '>i8', '|u1', '|b1': either byte order)";

export const isNpy = (buf: Buffer) => buf.length >= MAGIC.length && buf.subarray(0, MAGIC.length).equals(MAGIC);

/** Python's repr of a shape, as numpy prints it: (150, 4), (3,), (). */
export const shapeText = (shape: readonly number[]) => `(${shape.join(", ")}${shape.length === 1 ? "," : ""})`;

/**
 * Reads and checks the header of the .npy file in `buf`; `where` names the file in messages
 * (`part 'features'`, `npz 'x.npy'`). Throws a ValidationError at the file or at its header field.
 */
export function readNpyHeader(buf: Buffer, where: string): NpyHeader {
  if (!isNpy(buf)) throw ValidationError.at(where, "is not a NumPy .npy file (it does not start with \\x93NUMPY)");
  if (buf.length < 10) throw ValidationError.at(where, `is truncated: ${buf.length} bytes, shorter than a .npy preamble`);
  const [major, minor] = [buf[6], buf[7]];
  if (![1, 2, 3].includes(major) || minor !== 0) throw ValidationError.at(`${where} version`, `is ${major}.${minor}; .npy versions 1.0, 2.0 and 3.0 are read`);
  // Version 1.0 counts the header in two bytes, 2.0 and later in four; 3.0 allows UTF-8 in it.
  const lengthBytes = major === 1 ? 2 : 4;
  if (buf.length < 8 + lengthBytes) throw ValidationError.at(where, `is truncated: ${buf.length} bytes, shorter than a version ${major}.0 preamble`);
  const headerLength = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = 8 + lengthBytes;
  if (headerLength > MAX_HEADER_BYTES) throw ValidationError.at(`${where} header`, `is ${headerLength} bytes long; a .npy header is at most ${MAX_HEADER_BYTES}`);
  if (buf.length < start + headerLength) throw ValidationError.at(`${where} header`, `is truncated: ${headerLength} bytes announced, ${buf.length - start} there`);
  const text = buf.toString(major === 3 ? "utf8" : "latin1", start, start + headerLength);
  const dict = parseHeaderDict(text, `${where} header`);

  const field = (key: string) => `${where} header.${key}`;
  const descr = dict.get("descr");
  if (Array.isArray(descr)) throw ValidationError.at(field("descr"), `is a list of fields (a structured array); upload plain arrays of ${SUPPORTED_LIST}`);
  if (typeof descr !== "string") throw ValidationError.at(field("descr"), `must be a dtype string such as '<f4'`);
  const dtype = parseDescr(descr, field("descr"));

  const fortran = dict.get("fortran_order");
  if (typeof fortran !== "boolean") throw ValidationError.at(field("fortran_order"), "must be True or False");

  const shapeValue = dict.get("shape");
  if (!isTuple(shapeValue)) throw ValidationError.at(field("shape"), "must be a tuple of sizes such as (150, 4)");
  const shape = shapeValue.tuple.map((d, i) => {
    if (typeof d !== "number" || d < 0) throw ValidationError.at(field("shape"), `entry ${i} is not a size (an integer ≥ 0)`);
    return d;
  });
  // Column-major order is the same bytes as row-major when at most one axis is longer than 1.
  if (fortran && shape.filter((d) => d > 1).length > 1) {
    throw ValidationError.at(field("fortran_order"), "is True: the array is stored column-major (Fortran order); save it in C order (np.ascontiguousarray(a)) and upload again");
  }

  // Exact, in bigints: the product of a hostile shape does not fit a double.
  const count = shape.reduce((a, d) => a * BigInt(d), 1n);
  const need = count * BigInt(dtype.itemsize);
  const dataOffset = start + headerLength;
  const have = BigInt(buf.length - dataOffset);
  const what = `shape ${shapeText(shape)} of '${descr}' needs ${need} bytes after the header`;
  if (need > have) throw ValidationError.at(where, `is truncated: ${what}, the file has ${have} (${need - have} bytes missing)`);
  if (need < have) throw ValidationError.at(where, `has ${have - need} bytes too many: ${what}, the file has ${have}`);
  return { descr, ...dtype, shape, count: Number(count), dataOffset };
}

function parseDescr(descr: string, path: string): { kind: NpyKind; itemsize: number; littleEndian: boolean } {
  const m = /^([<>|=]?)([a-zA-Z])(\d+)$/.exec(descr);
  const supported = m && SUPPORTED[m[2]];
  if (!m || !supported || !supported.sizes.includes(Number(m[3]))) {
    const kind = UNSUPPORTED_KINDS[/^[<>|=]?([a-zA-Z])/.exec(descr)?.[1] ?? ""];
    throw ValidationError.at(path, `'${descr}'${kind ? ` (${kind})` : ""} is not supported; NumPy arrays of ${SUPPORTED_LIST} are read`);
  }
  const itemsize = Number(m[3]);
  // '|' (not applicable) and '=' (native) mean the machine's order, which is how numpy reads them.
  const littleEndian = m[1] === "<" || (m[1] !== ">" && endianness() === "LE");
  return { kind: supported.kind, itemsize, littleEndian };
}

/** What a value is, for reading values in a loop: the i-th value of the data as a number (exact for integers up to 2^53). */
export function valueReader(buf: Buffer, h: NpyHeader): (i: number) => number {
  const view = new DataView(buf.buffer, buf.byteOffset + h.dataOffset, h.count * h.itemsize);
  const le = h.littleEndian;
  switch (`${h.kind}${h.itemsize}`) {
    case "float2": return (i) => half(view.getUint16(i * 2, le));
    case "float4": return (i) => view.getFloat32(i * 4, le);
    case "float8": return (i) => view.getFloat64(i * 8, le);
    case "int1": return (i) => view.getInt8(i);
    case "int2": return (i) => view.getInt16(i * 2, le);
    case "int4": return (i) => view.getInt32(i * 4, le);
    // Two 32-bit halves rather than a BigInt per value; exact up to 2^53, rounded like a double beyond.
    case "int8": return le ? (i) => view.getInt32(i * 8 + 4, true) * 2 ** 32 + view.getUint32(i * 8, true) : (i) => view.getInt32(i * 8, false) * 2 ** 32 + view.getUint32(i * 8 + 4, false);
    case "uint1": return (i) => view.getUint8(i);
    case "uint2": return (i) => view.getUint16(i * 2, le);
    case "uint4": return (i) => view.getUint32(i * 4, le);
    case "uint8": return le ? (i) => view.getUint32(i * 8 + 4, true) * 2 ** 32 + view.getUint32(i * 8, true) : (i) => view.getUint32(i * 8, false) * 2 ** 32 + view.getUint32(i * 8 + 4, false);
    case "bool1": return (i) => (view.getUint8(i) === 0 ? 0 : 1);
    default: throw new Error(`no reader for ${h.descr}`);
  }
}

/** IEEE 754 half precision to a number. */
function half(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** The place of the flat index `i` in an array of `shape`, as numpy indexes it: [3, 1]. */
export function indexOf(i: number, shape: readonly number[]): string {
  const idx: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    idx.unshift(i % shape[d]);
    i = Math.floor(i / shape[d]);
  }
  return `[${idx.join(", ")}]`;
}

/**
 * Converts the values to float32 into `out` from `at`. Every value must be finite in float32 (a NaN,
 * an infinity or a float64 beyond float32's range is a 400 at its index). Returns the first integer
 * that float32 rounds (beyond ±2^24), for a warning, since such values are stored, not refused.
 */
export function decodeNpyInto(buf: Buffer, h: NpyHeader, out: Float32Array, at: number, where: string): { rounded?: { index: number; value: number } } {
  let rounded: { index: number; value: number } | undefined;
  const place = (i: number) => `${where}${indexOf(i, h.shape)}`;
  if (h.kind === "uint" && h.itemsize === 1) {
    // Images: the common case, and one that needs no checks.
    out.set(buf.subarray(h.dataOffset, h.dataOffset + h.count), at);
    return {};
  }
  const read = valueReader(buf, h);
  const mayRound = (h.kind === "int" || h.kind === "uint") && h.itemsize >= 4;
  for (let i = 0; i < h.count; i++) {
    const v = read(i);
    out[at + i] = v;
    const f = out[at + i];
    if (!Number.isFinite(f)) {
      if (Number.isNaN(v)) throw ValidationError.at(place(i), "is NaN; every value must be a finite number");
      throw ValidationError.at(place(i), Number.isFinite(v) ? `is ${v}, beyond float32's range (±3.4e38)` : "is infinite; every value must be a finite number");
    }
    if (mayRound && rounded === undefined && Math.abs(v) > FLOAT32_EXACT && f !== v) rounded = { index: i, value: v };
  }
  return { rounded };
}

// --- The header: a Python literal of dicts, tuples, lists, strings, integers, True/False/None. ---

type PyValue = string | number | boolean | null | PyValue[] | { tuple: PyValue[] } | Map<string, PyValue>;
const isTuple = (v: PyValue | undefined): v is { tuple: PyValue[] } => typeof v === "object" && v !== null && "tuple" in v;

const REQUIRED_KEYS = ["descr", "fortran_order", "shape"];

function parseHeaderDict(text: string, path: string): Map<string, PyValue> {
  const p = new LiteralParser(text, path);
  const value = p.value();
  p.end();
  if (!(value instanceof Map)) throw ValidationError.at(path, "is not a Python dict literal");
  const missing = REQUIRED_KEYS.filter((k) => !value.has(k));
  if (missing.length) throw ValidationError.at(`${path}.${missing[0]}`, "is missing; a .npy header has the keys descr, fortran_order and shape");
  const extra = [...value.keys()].filter((k) => !REQUIRED_KEYS.includes(k));
  if (extra.length) throw ValidationError.at(`${path}.${extra[0]}`, "is not a .npy header key (descr, fortran_order, shape)");
  return value;
}

class LiteralParser {
  private i = 0;
  constructor(private readonly s: string, private readonly path: string) {}

  private fail(message: string): never {
    throw ValidationError.at(this.path, `${message} at character ${this.i + 1}; expected a dict such as {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}`);
  }
  private skip() {
    while (this.i < this.s.length && " \t\r\n".includes(this.s[this.i])) this.i++;
  }
  private eat(c: string): boolean {
    this.skip();
    if (this.s[this.i] !== c) return false;
    this.i++;
    return true;
  }
  end() {
    this.skip();
    if (this.i < this.s.length) this.fail(`unexpected '${this.s[this.i]}'`);
  }

  /** Items up to `close`, separated by commas, a trailing comma allowed. */
  private items<T>(close: string, item: () => T): { items: T[]; trailingComma: boolean } {
    const items: T[] = [];
    let trailingComma = false;
    while (!this.eat(close)) {
      if (items.length && !trailingComma) this.fail(`expected ',' or '${close}'`);
      items.push(item());
      trailingComma = this.eat(",");
    }
    return { items, trailingComma };
  }

  value(depth = 0): PyValue {
    if (depth > 8) this.fail("nested too deep");
    this.skip();
    const c = this.s[this.i];
    if (c === undefined) this.fail("unexpected end");
    if (c === "{") {
      this.i++;
      const map = new Map<string, PyValue>();
      this.items("}", () => {
        const key = this.value(depth + 1);
        if (typeof key !== "string") this.fail("a key is not a string");
        if (map.has(key)) this.fail(`key '${key}' appears twice`);
        if (!this.eat(":")) this.fail("expected ':'");
        map.set(key, this.value(depth + 1));
      });
      return map;
    }
    if (c === "(") {
      this.i++;
      const { items, trailingComma } = this.items(")", () => this.value(depth + 1));
      // (3) is a parenthesized 3 in Python, (3,) a tuple.
      if (items.length === 1 && !trailingComma) return items[0];
      return { tuple: items };
    }
    if (c === "[") {
      this.i++;
      return this.items("]", () => this.value(depth + 1)).items;
    }
    if (c === "'" || c === '"') return this.string(c);
    const word = /^(?:True|False|None|-?\d+[lL]?)(?![\w.])/.exec(this.s.slice(this.i, this.i + 40))?.[0];
    if (!word) this.fail(`unexpected '${c}'`);
    this.i += word.length;
    if (word === "True" || word === "False") return word === "True";
    if (word === "None") return null;
    // Files written by Python 2 spell sizes 3L; numpy reads them too.
    const n = Number(word.replace(/[lL]$/, ""));
    if (!Number.isSafeInteger(n)) this.fail(`integer ${word} is too large`);
    return n;
  }

  private string(quote: string): string {
    this.i++;
    let out = "";
    for (;;) {
      const c = this.s[this.i++];
      if (c === undefined || c === "\n") this.fail("a string is never closed");
      if (c === quote) return out;
      if (c === "\\") {
        const e = this.s[this.i++];
        if (e !== "\\" && e !== "'" && e !== '"') this.fail("an escape other than \\\\, \\' or \\\" in a string");
        out += e;
      } else out += c;
    }
  }
}
