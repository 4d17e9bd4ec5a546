// Zips and images for tests, built in memory: a small zip writer (stored or deflated entries, with
// ways to lie about sizes and counts, as a hostile zip would) and synthetic shapes drawn into raw
// pixels and encoded by sharp.
import { crc32, deflateRawSync } from "node:zlib";
import sharp from "sharp";

export interface ZipEntry {
  name: string;
  /** Absent for a folder (name ends with /). */
  data?: Buffer;
  /** 8 (deflate, default) or 0 (stored). */
  method?: 0 | 8;
  /** Lie about the uncompressed size (a zip bomb's trick). */
  declaredSize?: number;
  encrypted?: boolean;
  /** Names are UTF-8 unless false (then CP437, where byte 0 is NUL). */
  utf8?: boolean;
}

/** A zip archive of `entries`; `declaredCount` lies about how many it lists. */
export function makeZip(entries: ZipEntry[], opts: { declaredCount?: number } = {}): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = e.utf8 === false ? Buffer.from(e.name, "latin1") : Buffer.from(e.name, "utf8");
    const data = e.data ?? Buffer.alloc(0);
    const method = e.data ? (e.method ?? 8) : 0;
    const body = method === 8 ? deflateRawSync(data) : data;
    const flags = (e.utf8 === false ? 0 : 0x0800) | (e.encrypted ? 1 : 0);
    const crc = crc32(data) >>> 0;
    const size = e.declaredSize ?? data.length;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(0, 10);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(flags, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(0, 12);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += 30 + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const count = opts.declaredCount ?? entries.length;
  // Counts of 65535 and more only fit the zip64 end records.
  const zip64: Buffer[] = [];
  if (count >= 0xffff) {
    const record = Buffer.alloc(56);
    record.writeUInt32LE(0x06064b50, 0);
    record.writeBigUInt64LE(44n, 4);
    record.writeUInt16LE(45, 12);
    record.writeUInt16LE(45, 14);
    record.writeBigUInt64LE(BigInt(count), 24);
    record.writeBigUInt64LE(BigInt(count), 32);
    record.writeBigUInt64LE(BigInt(cd.length), 40);
    record.writeBigUInt64LE(BigInt(offset), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    locator.writeBigUInt64LE(BigInt(offset + cd.length), 8);
    locator.writeUInt32LE(1, 16);
    zip64.push(record, locator);
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Math.min(count, 0xffff), 8);
  end.writeUInt16LE(Math.min(count, 0xffff), 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, ...zip64, end]);
}

/** Raw pixels (H × W × C bytes) as a PNG or JPEG. */
export function encode(pixels: Uint8Array, height: number, width: number, channels: 1 | 3 | 4, format: "png" | "jpeg" = "png"): Promise<Buffer> {
  const img = sharp(Buffer.from(pixels), { raw: { width, height, channels } });
  const out = channels === 1 ? img.toColourspace("b-w") : img;
  return format === "png" ? out.png().toBuffer() : out.jpeg({ quality: 95 }).toBuffer();
}

export type Shape = "circle" | "square" | "cross";
export const SHAPES: Shape[] = ["circle", "square", "cross"];

/**
 * A `size`×`size` greyscale-on-colour drawing of a shape (RGB, 0–255), placed and sized by
 * `random`: a bright shape on a dark, slightly noisy background.
 */
export function drawShape(shape: Shape, size: number, random: () => number): Uint8Array {
  const px = new Uint8Array(size * size * 3);
  const r = size * (0.22 + random() * 0.12);
  const cx = size / 2 + (random() - 0.5) * size * 0.25;
  const cy = size / 2 + (random() - 0.5) * size * 0.25;
  const colour = [150 + random() * 105, 150 + random() * 105, 150 + random() * 105];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      const inside =
        shape === "circle" ? dx * dx + dy * dy <= r * r
        : shape === "square" ? Math.abs(dx) <= r * 0.85 && Math.abs(dy) <= r * 0.85
        : (Math.abs(dx) <= r * 0.3 && Math.abs(dy) <= r) || (Math.abs(dy) <= r * 0.3 && Math.abs(dx) <= r);
      for (let c = 0; c < 3; c++) px[(y * size + x) * 3 + c] = inside ? colour[c] : 20 + random() * 30;
    }
  }
  return px;
}
