// The pictures of model insight, as PNGs: robustness and pruning curves (lineChartPng), saliency
// and occlusion heat maps (heatmapPng), grids of feature maps, convolution filters and image
// mosaics (gridPng), and t-SNE scatter plots (scatterPng).
//
// Each is an SVG rasterized by svgToPng (lib/training/svg.ts, with the primitives the learning
// curves use too: sharp, i.e. librsvg): text, axes, legends and colour bars stay vector drawing in the one renderer and font the repo already uses,
// and raster content (maps, images) is embedded as PNGs that sharp makes from raw RGB pixels,
// scaled with nearest-neighbour so every cell stays a crisp block. No dependency is added.

import sharp from "sharp";
import { CHAR_PX, COLORS, esc, extent, fit, formatValue, niceStep, svgDocument, svgToPng, type Picture } from "../training/svg.ts";

export interface LineSeries {
  name: string;
  x: number[];
  y: number[];
}

/** Pixels in [0, 1], row-major HWC. */
export interface ImageData {
  data: Float32Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

export interface GridCell {
  label: string;
  data: Float32Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

/** What the functions refuse (RangeError): past these, a picture is unreadable or too costly to draw. */
export const PICTURE_LIMITS = {
  mapSide: 4096,
  gridCells: 400,
  gridValues: 4096 * 4096,
  scatterPoints: 20_000,
  lineSeries: 50,
  linePoints: 100_000,
} as const;

// Tableau 10, as in the learning curves, so the service's pictures share one palette.
const MARGIN = 20;
const HEADER = 60;
const ROW = 18; // a legend row
const HEAT_WIDTH = 280; // the width a heat map is drawn at
const HEAT_MAX_HEIGHT = 420; // tall maps are narrowed rather than run off the page
const BAR_W = 14;

type Lut = Uint8Array; // 256 RGB triples
type Rgb = readonly [number, number, number];

const hex = (h: string): Rgb => [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)];
// Viridis at 0, 0.1, …, 1: perceptually even and readable in greyscale and by the colour-blind.
const VIRIDIS = ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c", "#22a884", "#44bf70", "#7ad151", "#bddf26", "#fde725"];
// RdBu reversed: negative blue, zero white, positive red, for signed weights.
const DIVERGING = ["#2166ac", "#67a9cf", "#d1e5f0", "#f7f7f7", "#fddbc7", "#ef8a62", "#b2182b"];
const GREY = ["#000000", "#ffffff"];
// Not-a-number cells: mid grey is off the viridis and blue-white-red ramps; on a grey ramp it
// would pass for a value, so there a muted tan stands in.
const NAN_RGB: Rgb = [150, 150, 150];
const NAN_ON_GREY: Rgb = [196, 160, 120];

function lutOf(stops: string[]): Lut {
  const rgb = stops.map(hex);
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (rgb.length - 1);
    const k = Math.min(Math.floor(t), rgb.length - 2);
    const f = t - k;
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = Math.round(rgb[k][c] + (rgb[k + 1][c] - rgb[k][c]) * f);
  }
  return lut;
}
const LUTS = { viridis: lutOf(VIRIDIS), diverging: lutOf(DIVERGING), grey: lutOf(GREY) };

// ---------------------------------------------------------------------------------------------
// Line chart

/** Accuracy against epsilon, accuracy against sparsity, …: a line with point markers per series. */
export async function lineChartPng(o: { title: string; subtitle?: string; xLabel: string; yLabel: string; series: LineSeries[]; yRange?: [number, number] }): Promise<Buffer> {
  if (o.series.length > PICTURE_LIMITS.lineSeries) throw new RangeError(`${o.series.length} series: at most ${PICTURE_LIMITS.lineSeries} fit one chart`);
  let total = 0;
  for (const s of o.series) {
    if (s.x.length !== s.y.length) throw new RangeError(`series "${s.name}" has ${s.x.length} x values but ${s.y.length} y values`);
    total += s.x.length;
  }
  if (total > PICTURE_LIMITS.linePoints) throw new RangeError(`${total} points: at most ${PICTURE_LIMITS.linePoints} in one chart`);
  if (o.yRange) checkRange("yRange", o.yRange);

  const finite = (s: LineSeries, i: number) => Number.isFinite(s.x[i]) && Number.isFinite(s.y[i]);
  const xs: number[] = [];
  const ys: number[] = [];
  let skipped = 0;
  for (const s of o.series)
    for (let i = 0; i < s.x.length; i++) {
      if (!finite(s, i)) skipped++;
      else {
        xs.push(s.x[i]);
        ys.push(s.y[i]);
      }
    }
  if (!xs.length) return svgToPng(nothingToShow(o.title, o.subtitle, skipped ? `nothing to show: all ${skipped} points are NaN or ±∞` : undefined));

  const width = 760;
  const plotW = 440;
  const legendRows = o.series.length + (skipped ? 1 : 0);
  const plot = { left: 70, top: HEADER + 10, width: plotW, height: Math.max(300, legendRows * ROW + 10) };
  const x = axis(...extent(xs), 8);
  const y = o.yRange ? axis(o.yRange[0], o.yRange[1], 5, true) : axis(...extent(ys), 5);
  const { px, py, svg: frame } = frameOf(plot, x, y, o.xLabel, o.yLabel);

  const r = 3.5;
  // Wider than the plot by a marker, so a point on the frame (accuracy 1.0 on [0, 1]) is whole.
  let body = `<defs><clipPath id="plot"><rect x="${plot.left - r - 2}" y="${plot.top - r - 2}" width="${plot.width + 2 * r + 4}" height="${plot.height + 2 * r + 4}"/></clipPath></defs><g clip-path="url(#plot)">`;
  o.series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length];
    let d = "";
    let pen = false;
    let markers = "";
    const marker = markerOf(shapeOf(k), r);
    for (let i = 0; i < s.x.length; i++) {
      if (!finite(s, i)) {
        pen = false; // a gap, rather than a line through a point that is not there
        continue;
      }
      const [cx, cy] = [r1(px(s.x[i])), r1(py(s.y[i]))];
      d += `${pen ? "L" : "M"}${cx} ${cy}`;
      pen = true;
      if (s.x.length <= 60) markers += marker(cx, cy);
    }
    if (d) body += `<path d="${d}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round"/>`;
    if (markers) body += markerElement(markers, `fill="${color}" stroke="#fff" stroke-width="8"`);
  });
  body += `</g>`;

  const lx = plot.left + plot.width + 16;
  let ly = plot.top + 12;
  o.series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length];
    body += `<line x1="${lx}" x2="${lx + 24}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"/>`;
    body += markerElement(markerOf(shapeOf(k), r)(lx + 12, ly - 4), `fill="${color}" stroke="#fff" stroke-width="8"`);
    body += label(lx + 30, ly, s.name, Math.floor((width - MARGIN / 2 - lx - 30) / CHAR_PX));
    ly += ROW;
  });
  if (skipped) body += `<text x="${lx}" y="${ly}" font-size="11" fill="#b00">${skipped} point${skipped === 1 ? "" : "s"} not drawn (NaN or ±∞)</text>`;

  const height = plot.top + plot.height + 50;
  return svgToPng({ svg: svgDocument(width, height, heading(o.title, o.subtitle, width) + frame + body), width, height });
}

// ---------------------------------------------------------------------------------------------
// Heat map

/** Where heatmapPng draws a width×height map, in picture pixels. */
export function heatmapPlacement(width: number, height: number): { x: number; y: number; width: number; height: number } {
  const fit = Math.min(HEAT_WIDTH / width, HEAT_MAX_HEIGHT / height);
  // Enlarged by a whole number, so every cell is the same block of pixels; a map far from square
  // (a 1×4096 strip) is stretched to a visible 32 pixels across rather than drawn as a hairline.
  const scale = fit >= 1 ? Math.floor(fit) : fit;
  return { x: MARGIN, y: HEADER + 10, width: Math.max(32, Math.round(width * scale)), height: Math.max(32, Math.round(height * scale)) };
}

/** A heat map of `values` (height×width, row-major), optionally semi-transparent over `base`, with a colour bar. */
export async function heatmapPng(o: { title: string; subtitle?: string; values: Float32Array; width: number; height: number; base?: ImageData; scaleLabel: string; range?: [number, number] }): Promise<Buffer> {
  checkMap("the map", o.width, o.height, 1, o.values.length, true);
  if (o.base) checkMap("the base image", o.base.width, o.base.height, o.base.channels, o.base.data.length, false);
  if (o.range) checkRange("range", o.range);
  if (o.width * o.height === 0) return svgToPng(nothingToShow(o.title, o.subtitle));

  const [lo, hi] = o.range ?? dataRange(o.values, false);
  const { rgb, nan } = colourize(o.values, lo, hi, LUTS.viridis, NAN_RGB);
  const p = heatmapPlacement(o.width, o.height);
  let body = "";
  if (o.base) {
    const b = o.base;
    body += await rasterImage(imageRgb(b.data, b.width * b.height, b.channels, 0, 1), b.width, b.height, p.x, p.y, p.width, p.height);
  }
  body += await rasterImage(rgb, o.width, o.height, p.x, p.y, p.width, p.height, o.base ? 0.55 : 1);
  body += `<rect x="${p.x - 0.5}" y="${p.y - 0.5}" width="${p.width + 1}" height="${p.height + 1}" fill="none" stroke="#999"/>`;

  const barH = Math.max(p.height, 140);
  const bar = colourBar(p.x + p.width + 20, p.y, barH, VIRIDIS, lo, hi, o.scaleLabel);
  const note = [`${o.width}×${o.height}`, o.base && "over the input", nan && `grey: not a number (${nan} cell${nan === 1 ? "" : "s"})`].filter(Boolean).join(" · ");
  const noteY = p.y + Math.max(p.height, barH) + 20;
  body += bar.svg + `<text x="${p.x}" y="${noteY}" font-size="11" fill="#555">${esc(note)}</text>`;

  const width = Math.max(bar.right + MARGIN, 400);
  const height = noteY + 14;
  return svgToPng({ svg: svgDocument(width, height, heading(o.title, o.subtitle, width) + body), width, height });
}

// ---------------------------------------------------------------------------------------------
// Grid of small maps

/**
 * Where gridPng draws each cell's map (picture pixels) and its label, for cells of these sizes in
 * `columns` columns; `right` and `bottom` are the grid's outer edges.
 */
export function gridPlacement(cells: { width: number; height: number }[], columns: number) {
  // One scale for every cell, so the filters of a layer keep their relative sizes; enlarged by a
  // whole number, so every pixel of a map is the same block.
  const target = cells.length > 100 ? 64 : 96;
  const maxW = Math.max(...cells.map((c) => c.width));
  const maxH = Math.max(...cells.map((c) => c.height));
  const maxSide = Math.max(maxW, maxH);
  const scale = maxSide <= target ? Math.floor(target / maxSide) : target / maxSide;
  const boxWidth = Math.max(48, Math.round(maxW * scale)); // room for a label of 7 characters
  const boxHeight = Math.round(maxH * scale);
  const [gapX, labelH, gapY, top] = [10, 16, 8, HEADER + 10];
  const rows = Math.ceil(cells.length / columns);
  const placed = cells.map((c, i) => {
    const bx = MARGIN + (i % columns) * (boxWidth + gapX);
    const by = top + Math.floor(i / columns) * (boxHeight + labelH + gapY);
    const width = Math.max(1, Math.round(c.width * scale));
    const height = Math.max(1, Math.round(c.height * scale));
    return { x: bx + Math.floor((boxWidth - width) / 2), y: by + Math.floor((boxHeight - height) / 2), width, height, labelX: bx + boxWidth / 2, labelY: by + boxHeight + 13 };
  });
  return { columns, rows, boxWidth, cells: placed, right: MARGIN + columns * boxWidth + (columns - 1) * gapX, bottom: top + rows * (boxHeight + labelH + gapY) - gapY };
}

/** Feature maps, convolution filters, top-activating inputs: a labelled grid of small maps. */
export async function gridPng(o: { title: string; subtitle?: string; cells: GridCell[]; columns?: number; normalize?: "cell" | "shared"; diverging?: boolean; scaleLabel?: string }): Promise<Buffer> {
  const n = o.cells.length;
  if (n > PICTURE_LIMITS.gridCells) throw new RangeError(`${n} cells: at most ${PICTURE_LIMITS.gridCells} fit one grid`);
  if (o.columns !== undefined && !(Number.isInteger(o.columns) && o.columns >= 1)) throw new RangeError(`columns is ${o.columns}: it must be a whole number of at least 1`);
  let values = 0;
  o.cells.forEach((c, i) => {
    checkMap(`cell ${i} ("${c.label}")`, c.width, c.height, c.channels, c.data.length, false);
    values += c.data.length;
  });
  if (values > PICTURE_LIMITS.gridValues) throw new RangeError(`the cells hold ${values} values: at most ${PICTURE_LIMITS.gridValues} in one grid`);
  if (!n) return svgToPng(nothingToShow(o.title, o.subtitle));

  const columns = Math.min(o.columns ?? Math.ceil(Math.sqrt(n)), n);
  const diverging = o.diverging ?? false;
  const shared = o.normalize === "shared";
  const lut = diverging ? LUTS.diverging : LUTS.grey;
  const nanRgb = diverging ? NAN_RGB : NAN_ON_GREY;
  const single = o.cells.filter((c) => c.channels === 1);
  const sharedRange = shared && single.length ? dataRange(concat(single.map((c) => c.data)), diverging) : undefined;

  const layout = gridPlacement(o.cells, columns);
  let nan = 0;
  const parts = await Promise.all(
    o.cells.map(async (c, i) => {
      const { x, y, width: w, height: h } = layout.cells[i];
      let rgb: Uint8Array;
      if (c.channels === 3) rgb = imageRgb(c.data, c.width * c.height, 3, ...dataRange(c.data, false));
      else {
        const [lo, hi] = sharedRange ?? dataRange(c.data, diverging);
        const coloured = colourize(c.data, lo, hi, lut, nanRgb);
        nan += coloured.nan;
        rgb = coloured.rgb;
      }
      return (
        (await rasterImage(rgb, c.width, c.height, x, y, w, h)) +
        `<rect x="${x - 0.5}" y="${y - 0.5}" width="${w + 1}" height="${h + 1}" fill="none" stroke="#bbb"/>` +
        label(layout.cells[i].labelX, layout.cells[i].labelY, c.label, Math.floor(layout.boxWidth / CHAR_PX), "middle")
      );
    }),
  );
  let body = parts.join("");
  let { right, bottom } = layout;
  if (sharedRange) {
    const top = layout.cells[0].y;
    const barH = Math.max(120, Math.min(bottom - top, 260));
    const bar = colourBar(right + 24, top, barH, diverging ? DIVERGING : GREY, sharedRange[0], sharedRange[1], o.scaleLabel ?? "value");
    body += bar.svg;
    right = bar.right;
    bottom = Math.max(bottom, top + barH);
  }
  const notes = [
    single.length && !shared && `each map scaled to its own range${diverging ? ", white = 0" : ""}`,
    single.length && shared && diverging && "white = 0",
    single.length < n && "colour images stretched to their own range",
    nan && `${diverging ? "grey" : "tan"}: not a number (${nan} value${nan === 1 ? "" : "s"})`,
  ].filter((line): line is string => typeof line === "string");
  const width = Math.max(right + MARGIN, 400);
  // A line per note: a narrow grid has no room for them side by side.
  notes.forEach((line, i) => (body += `<text x="${MARGIN}" y="${bottom + 20 + i * 16}" font-size="11" fill="#555">${esc(fit(line, Math.floor((width - 2 * MARGIN) / CHAR_PX)))}</text>`));
  const height = bottom + 18 + notes.length * 16;
  return svgToPng({ svg: svgDocument(width, height, heading(o.title, o.subtitle, width) + body), width, height });
}

// ---------------------------------------------------------------------------------------------
// Scatter plot

/** 2-D points (a t-SNE embedding, say) coloured by class, with a legend of the classes. */
export async function scatterPng(o: { title: string; subtitle?: string; x: Float32Array | number[]; y: Float32Array | number[]; classes: number[]; classNames: string[]; xLabel?: string; yLabel?: string }): Promise<Buffer> {
  const n = o.x.length;
  if (o.y.length !== n || o.classes.length !== n) throw new RangeError(`${n} x values, ${o.y.length} y values and ${o.classes.length} classes: one of each per point`);
  if (n > PICTURE_LIMITS.scatterPoints) throw new RangeError(`${n} points: at most ${PICTURE_LIMITS.scatterPoints} in one scatter plot`);
  const k = o.classNames.length;
  for (let i = 0; i < n; i++) {
    const c = o.classes[i];
    if (!(Number.isInteger(c) && c >= 0 && c < k)) throw new RangeError(`point ${i} has class ${c}, but there are ${k} class names`);
  }
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i < n; i++)
    if (Number.isFinite(o.x[i]) && Number.isFinite(o.y[i])) {
      xs.push(o.x[i]);
      ys.push(o.y[i]);
    }
  const skipped = n - xs.length;
  if (!xs.length) return svgToPng(nothingToShow(o.title, o.subtitle, skipped ? `nothing to show: all ${skipped} points are NaN or ±∞` : undefined));

  const width = 760;
  const plot = { left: 70, top: HEADER + 10, width: 440, height: 440 };
  const pad = (lo: number, hi: number): [number, number] => [lo - (hi - lo) * 0.03, hi + (hi - lo) * 0.03];
  const x = axis(...pad(...extent(xs)), 8);
  const y = axis(...pad(...extent(ys)), 8);
  const { px, py, svg: frame } = frameOf(plot, x, y, o.xLabel ?? "", o.yLabel ?? "");

  // One path per class rather than an element per point: 20,000 points stay a few hundred kB of
  // SVG, and overlapping points of a class do not darken each other.
  const r = n <= 1000 ? 3.5 : n <= 5000 ? 2.5 : 1.8;
  const paths = new Array<string>(k).fill("");
  const counts = new Array<number>(k).fill(0);
  const markers = [0, 1, 2, 3].map((shape) => markerOf(shape, r));
  for (let i = 0; i < n; i++) {
    const c = o.classes[i];
    counts[c]++;
    if (Number.isFinite(o.x[i]) && Number.isFinite(o.y[i])) paths[c] += markers[shapeOf(c)](px(o.x[i]), py(o.y[i]));
  }
  let body = paths.map((d, c) => (d ? markerElement(d, `fill="${COLORS[c % COLORS.length]}" fill-opacity="0.75"`) : "")).join("");

  const lx = plot.left + plot.width + 16;
  let ly = plot.top + 12;
  const room = Math.floor(plot.height / ROW) - (skipped ? 1 : 0);
  const shown = k <= room ? k : room - 1;
  for (let c = 0; c < shown; c++) {
    body += markerElement(markerOf(shapeOf(c), 4.5)(lx + 6, ly - 4), `fill="${COLORS[c % COLORS.length]}"`);
    const count = String(counts[c]);
    body += label(lx + 18, ly, o.classNames[c], Math.floor((width - MARGIN / 2 - lx - 18) / CHAR_PX) - count.length - 1);
    body += `<text x="${width - MARGIN / 2}" y="${ly}" font-size="11" text-anchor="end" fill="#555">${count}</text>`;
    ly += ROW;
  }
  if (shown < k) {
    body += `<text x="${lx}" y="${ly}" font-size="11" fill="#555">… and ${k - shown} more classes</text>`;
    ly += ROW;
  }
  if (skipped) body += `<text x="${lx}" y="${ly}" font-size="11" fill="#b00">${skipped} point${skipped === 1 ? "" : "s"} not drawn (NaN or ±∞)</text>`;

  const height = plot.top + plot.height + 50;
  return svgToPng({ svg: svgDocument(width, height, heading(o.title, o.subtitle, width) + frame + body), width, height });
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

interface Axis {
  lo: number;
  hi: number;
  ticks: number[];
  format: (v: number) => string;
}

/** Ticks at 1, 2 or 5 times a power of ten; the ends widened to a tick unless `fixed`. */
function axis(lo: number, hi: number, count: number, fixed = false): Axis {
  if (!(lo <= hi)) [lo, hi] = [0, 1];
  if (lo === hi) [lo, hi] = [lo - (Math.abs(lo) * 0.1 || 1), hi + (Math.abs(hi) * 0.1 || 1)];
  const step = niceStep(hi - lo, count);
  if (!fixed) [lo, hi] = [round12(Math.floor(lo / step) * step), round12(Math.ceil(hi / step) * step)];
  return { lo, hi, ticks: ticksOf(lo, hi, step), format: formatter(lo, hi, step) };
}


function ticksOf(lo: number, hi: number, step: number): number[] {
  // Values near the ends of the float range have no usable step: the ends alone are labelled.
  if (!(step > 0 && Number.isFinite(step) && (hi - lo) / step <= 50)) return lo === hi ? [lo] : [lo, hi];
  const out: number[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) out.push(round12(k * step));
  return out;
}

const round12 = (v: number) => Number(v.toPrecision(12)); // 0.1 + 0.2 shows as 0.3
const r1 = (v: number) => Math.round(v * 10) / 10;

function formatter(lo: number, hi: number, step: number): (v: number) => string {
  const digits = Number.isFinite(step) && step > 0 ? Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) : 2;
  const big = Math.max(Math.abs(lo), Math.abs(hi)) >= 1e6;
  return (v) => (v === 0 ? "0" : big || digits > 5 ? v.toExponential(2) : v.toFixed(digits));
}


/** The range a map is coloured over: its finite extent, symmetric about 0 if diverging; [0, 1] if there is none. */
function dataRange(values: ArrayLike<number>, diverging: boolean): [number, number] {
  const [lo, hi] = extent(values);
  if (lo > hi) return diverging ? [-1, 1] : [0, 1];
  if (!diverging) return [lo, hi];
  const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
  return [-m, m];
}

function colourize(values: ArrayLike<number>, lo: number, hi: number, lut: Lut, nanRgb: Rgb): { rgb: Uint8Array; nan: number } {
  const rgb = new Uint8Array(values.length * 3);
  const span = hi - lo;
  let nan = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isNaN(v)) {
      rgb.set(nanRgb, i * 3);
      nan++;
      continue;
    }
    // ±Infinity clamps to an end of the ramp like any value out of range; a flat map sits mid-ramp.
    const t = span > 0 ? (v - lo) / span : 0.5;
    const k = t <= 0 ? 0 : t >= 1 ? 255 : Math.round(t * 255);
    rgb[i * 3] = lut[k * 3];
    rgb[i * 3 + 1] = lut[k * 3 + 1];
    rgb[i * 3 + 2] = lut[k * 3 + 2];
  }
  return { rgb, nan };
}

/** Pixels (1 or 3 channels) mapped from [lo, hi] to 0–255 RGB; a value that is not finite reads as mid grey. */
function imageRgb(data: ArrayLike<number>, pixels: number, channels: 1 | 3, lo: number, hi: number): Uint8Array {
  const rgb = new Uint8Array(pixels * 3);
  const span = hi - lo;
  for (let p = 0; p < pixels; p++)
    for (let c = 0; c < 3; c++) {
      const v = data[p * channels + (channels === 3 ? c : 0)];
      const t = !Number.isFinite(v) ? 0.5 : span > 0 ? (v - lo) / span : 0.5;
      rgb[p * 3 + c] = Math.round(Math.min(1, Math.max(0, t)) * 255);
    }
  return rgb;
}

function concat(arrays: Float32Array[]): Float32Array {
  const out = new Float32Array(arrays.reduce((s, a) => s + a.length, 0));
  let at = 0;
  for (const a of arrays) out.set(a, (at += a.length) - a.length);
  return out;
}

/** An <image> of raw RGB pixels scaled to w×h; integer placement and size, so librsvg does not resample it again. */
async function rasterImage(rgb: Uint8Array, width: number, height: number, x: number, y: number, w: number, h: number, opacity = 1): Promise<string> {
  let img = sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } });
  // Nearest when enlarging keeps cells crisp; when shrinking it would drop cells (a lone hot spot
  // could vanish), so there the pixels are averaged.
  if (w !== width || h !== height) img = img.resize({ width: w, height: h, fit: "fill", kernel: w >= width && h >= height ? "nearest" : "linear" });
  const png = await img.png({ compressionLevel: 1 }).toBuffer();
  return `<image x="${x}" y="${y}" width="${w}" height="${h}" preserveAspectRatio="none" image-rendering="optimizeSpeed"${opacity < 1 ? ` opacity="${opacity}"` : ""} href="data:image/png;base64,${png.toString("base64")}"/>`;
}

/** A vertical colour bar (low at the bottom) with ticks and a rotated label; `right` is its outer edge. At most one per picture (its gradient's id is fixed). */
function colourBar(x: number, y: number, h: number, stops: string[], lo: number, hi: number, title: string): { svg: string; right: number } {
  let svg = `<defs><linearGradient id="bar" x1="0" y1="1" x2="0" y2="0">`;
  stops.forEach((s, i) => (svg += `<stop offset="${r1((i / (stops.length - 1)) * 100)}%" stop-color="${s}"/>`));
  svg += `</linearGradient></defs><rect x="${x}" y="${y}" width="${BAR_W}" height="${h}" fill="url(#bar)" stroke="#999"/>`;
  const a = lo < hi ? axis(lo, hi, 4, true) : { ticks: [lo], format: (v: number) => formatValue(v), lo, hi };
  let widest = 0;
  for (const t of a.ticks) {
    const ty = lo < hi ? r1(y + h - ((t - lo) / (hi - lo)) * h) : r1(y + h / 2);
    const text = a.format(t);
    widest = Math.max(widest, text.length);
    svg += `<line x1="${x + BAR_W}" x2="${x + BAR_W + 4}" y1="${ty}" y2="${ty}" stroke="#999"/><text x="${x + BAR_W + 7}" y="${ty + 4}" font-size="11" fill="#333">${esc(text)}</text>`;
  }
  // The rotated label's glyphs lie left of its baseline, so the baseline clears the tick labels by a line.
  const lx = x + BAR_W + 7 + widest * CHAR_PX + 16;
  const shown = fit(title, Math.floor(h / 7.5));
  svg += `<text transform="translate(${r1(lx)} ${r1(y + h / 2)}) rotate(-90)" font-size="12" text-anchor="middle"><title>${esc(title)}</title>${esc(shown)}</text>`;
  return { svg, right: Math.ceil(lx + 6) };
}

/** The plot's frame, grid, ticks and axis titles, and the maps from data to pixels. */
function frameOf(plot: { left: number; top: number; width: number; height: number }, x: Axis, y: Axis, xLabel: string, yLabel: string) {
  const px = (v: number) => plot.left + ((v - x.lo) / (x.hi - x.lo)) * plot.width;
  const py = (v: number) => plot.top + plot.height - ((v - y.lo) / (y.hi - y.lo)) * plot.height;
  const bottom = plot.top + plot.height;
  let svg = `<rect x="${plot.left}" y="${plot.top}" width="${plot.width}" height="${plot.height}" fill="none" stroke="#999"/>`;
  for (const t of y.ticks) {
    const ty = r1(py(t));
    svg += `<line x1="${plot.left}" x2="${plot.left + plot.width}" y1="${ty}" y2="${ty}" stroke="#e5e5e5"/><line x1="${plot.left - 4}" x2="${plot.left}" y1="${ty}" y2="${ty}" stroke="#999"/>`;
    svg += `<text x="${plot.left - 7}" y="${ty + 4}" font-size="11" text-anchor="end" fill="#333">${esc(y.format(t))}</text>`;
  }
  for (const t of x.ticks) {
    const tx = r1(px(t));
    svg += `<line x1="${tx}" x2="${tx}" y1="${plot.top}" y2="${bottom}" stroke="#f0f0f0"/><line x1="${tx}" x2="${tx}" y1="${bottom}" y2="${bottom + 4}" stroke="#999"/>`;
    svg += `<text x="${tx}" y="${bottom + 17}" font-size="11" text-anchor="middle" fill="#333">${esc(x.format(t))}</text>`;
  }
  if (xLabel) svg += `<text x="${plot.left + plot.width / 2}" y="${bottom + 36}" font-size="12" text-anchor="middle">${esc(fit(xLabel, 60))}</text>`;
  if (yLabel) svg += `<text transform="translate(16 ${plot.top + plot.height / 2}) rotate(-90)" font-size="12" text-anchor="middle">${esc(fit(yLabel, Math.floor(plot.height / 7.5)))}</text>`;
  return { px, py, svg };
}

/** Series and classes past the tenth colour take the next shape, so no two look alike. */
const shapeOf = (k: number) => Math.floor(k / COLORS.length) % 4;

/**
 * Markers (circle, square, triangle, diamond) as closed subpaths, so a class's points join one
 * <path>. Coordinates are whole tenths of a pixel, drawn under scale(0.1): integers print several
 * times faster than fractions, which is most of the cost of 20,000 points.
 */
function markerOf(shape: number, r: number): (x: number, y: number) => string {
  const t = (v: number) => Math.round(v * 10);
  const [a, b, c] = [t(r), t(0.9 * r), t(1.1 * r)];
  const tails = [
    [-a, 0, `a${a} ${a} 0 1 0 ${2 * a} 0a${a} ${a} 0 1 0 ${-2 * a} 0Z`],
    [-b, -b, `h${2 * b}v${2 * b}h${-2 * b}Z`],
    [0, -t(1.2 * r), `l${c} ${t(2 * r)}h${-2 * c}Z`],
    [0, -t(1.25 * r), `l${t(1.25 * r)} ${t(1.25 * r)}l${-t(1.25 * r)} ${t(1.25 * r)}l${-t(1.25 * r)} ${-t(1.25 * r)}Z`],
  ] as const;
  const [dx, dy, tail] = tails[shape];
  return (x, y) => `M${t(x) + dx} ${t(y) + dy}${tail}`;
}

/** A <path> of markers, in the tenths markerOf draws in. */
const markerElement = (d: string, attributes: string) => `<path transform="scale(0.1)" d="${d}" ${attributes}/>`;

function label(x: number, y: number, text: string, max: number, anchor: "start" | "middle" = "start"): string {
  return `<text x="${r1(x)}" y="${y}" font-size="11"${anchor === "middle" ? ` text-anchor="middle"` : ""}><title>${esc(text)}</title>${esc(fit(text, max))}</text>`;
}

function heading(title: string, subtitle: string | undefined, width: number): string {
  let svg = `<text x="${MARGIN}" y="26" font-size="16" font-weight="bold">${esc(fit(title, Math.floor((width - 2 * MARGIN) / 10.5)))}</text>`;
  if (subtitle) svg += `<text x="${MARGIN}" y="46" font-size="12" fill="#555">${esc(fit(subtitle, Math.floor((width - 2 * MARGIN) / 7.5)))}</text>`;
  return svg;
}

function nothingToShow(title: string, subtitle: string | undefined, message = "nothing to show"): Picture {
  const [width, height] = [480, HEADER + 150];
  const body =
    `<rect x="${MARGIN}" y="${HEADER + 10}" width="${width - 2 * MARGIN}" height="120" fill="#fafafa" stroke="#ccc"/>` +
    `<text x="${width / 2}" y="${HEADER + 76}" text-anchor="middle" font-size="15" fill="#666">${esc(fit(message, 50))}</text>`;
  return { svg: svgDocument(width, height, heading(title, subtitle, width) + body), width, height };
}


function checkRange(name: string, [lo, hi]: [number, number]): void {
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo < hi)) throw new RangeError(`${name} is [${lo}, ${hi}]: it needs two finite numbers, the first below the second`);
}

/** Dimensions are whole numbers up to the limit (zero only where `empty` allows) and the data fits them exactly. */
function checkMap(what: string, width: number, height: number, channels: number, length: number, empty: boolean): void {
  const min = empty ? 0 : 1;
  for (const [name, v] of [["width", width], ["height", height]] as const)
    if (!(Number.isInteger(v) && v >= min && v <= PICTURE_LIMITS.mapSide)) throw new RangeError(`${what}: ${name} is ${v}, but it must be a whole number from ${min} to ${PICTURE_LIMITS.mapSide}`);
  if (channels !== 1 && channels !== 3) throw new RangeError(`${what}: ${channels} channels, but only 1 (grey) or 3 (RGB) can be drawn`);
  if (length !== width * height * channels) throw new RangeError(`${what}: ${length} values for ${width}×${height}${channels === 3 ? "×3" : ""} (${width * height * channels})`);
}



