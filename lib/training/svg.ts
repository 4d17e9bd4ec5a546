// Drawing primitives of the service's pictures, shared by the learning curves (learning-curves.ts)
// and model insight's charts and maps (lib/insight/pictures.ts): the font, the palette, ticks,
// escaping, the SVG document and its rasterization by sharp (librsvg). Here because both import
// lib/training's level or above; nothing in it knows about training.
import sharp from "sharp";

export interface Picture {
  svg: string;
  width: number;
  height: number;
}

export const FONT = "DejaVu Sans, sans-serif";
// Width of an 11px DejaVu Sans character, generously: names are cut to fit, never run over the edge.
export const CHAR_PX = 6.8;
// Tableau 10, taken in pairs by the learning curves: training and validation of one metric get
// neighbouring colours (blue and orange for the first, as most plots show them).
export const COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

/** The SVG as a PNG of the same size. Runs in libvips' threads, not on the event loop. */
export async function svgToPng(picture: Picture): Promise<Buffer> {
  // density 72 is librsvg's one SVG unit per pixel: the PNG has the SVG's declared size.
  return sharp(Buffer.from(picture.svg), { density: 72 }).png({ compressionLevel: 6 }).toBuffer();
}

/** The SVG document around a body: the font, and an opaque white ground so the PNG reads the same on a dark page. */
export function svgDocument(width: number, height: number, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}"><rect width="100%" height="100%" fill="#fff"/>${body}</svg>\n`;
}

/** Smallest and largest finite value; a loop, as spreading 100,000 values into Math.min overflows the stack. */
export function extent(values: ArrayLike<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** A step of 1, 2 or 5 times a power of ten that cuts `span` into about `count` parts. */
export function niceStep(span: number, count: number): number {
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const error = raw / power;
  return power * (error >= 7.07 ? 10 : error >= 3.16 ? 5 : error >= 1.41 ? 2 : 1);
}

export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(2) : String(Number(v.toPrecision(4)));
}

/** Cuts text to `max` characters with an ellipsis: librsvg never wraps, it would run over the edge. */
export function fit(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= Math.max(max, 4) ? text : `${chars.slice(0, Math.max(max, 4) - 1).join("")}…`;
}

/** Text for XML: the five specials escaped, characters XML 1.0 forbids dropped. */
export function esc(text: string): string {
  return text
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, "")
    .replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
