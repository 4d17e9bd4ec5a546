// The model-insight pictures: each function answers a PNG of a sensible size, the maps are where
// the layout says and coloured by value (the hot cell of a heat map is the bright one), grids take
// the columns they are given, odd values (NaN, ±Infinity, markup in text, nothing at all) still
// give a picture, and inputs past the limits are refused with a RangeError before any drawing.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import sharp from "sharp";
import { gridPlacement, gridPng, heatmapPlacement, heatmapPng, lineChartPng, PICTURE_LIMITS, scatterPng, type GridCell } from "../../lib/insight/pictures.ts";

async function png(buf: Buffer): Promise<{ width: number; height: number }> {
  const meta = await sharp(buf).metadata();
  assert.equal(meta.format, "png");
  return { width: meta.width!, height: meta.height! };
}

/** The picture's pixels, to read colours at places the layout names. */
async function pixels(buf: Buffer): Promise<(x: number, y: number) => [number, number, number]> {
  const { data, info } = await sharp(buf).raw().toBuffer({ resolveWithObject: true });
  return (x, y) => {
    const i = (Math.floor(y) * info.width + Math.floor(x)) * info.channels;
    return [data[i], data[i + 1], data[i + 2]];
  };
}

const brightness = ([r, g, b]: [number, number, number]) => 0.299 * r + 0.587 * g + 0.114 * b;
const near = (actual: number[], expected: number[], tolerance = 3) => assert.ok(actual.every((v, i) => Math.abs(v - expected[i]) <= tolerance), `${actual} is not ${expected}`);
const markup = `<b>"Tom" & 'Jerry'</b>\u0001`;

describe("lineChartPng", () => {
  it("draws series of accuracy against epsilon, with gaps for NaN and markup in names", async () => {
    const size = await png(
      await lineChartPng({
        title: `robustness ${markup}`,
        subtitle: "FGSM, 500 test images",
        xLabel: "epsilon",
        yLabel: "accuracy",
        yRange: [0, 1],
        series: [
          { name: "model <a>", x: [0, 0.05, 0.1, 0.2], y: [0.98, 0.7, NaN, 0.1] },
          { name: "adversarially trained", x: [0, 0.05, Infinity, 0.2], y: [0.95, 0.9, 0.8, -Infinity] },
        ],
      }),
    );
    assert.equal(size.width, 760);
    assert.ok(size.height >= 300 && size.height < 600, `height ${size.height}`);
  });

  it("says there is nothing to show for no series or no finite point", async () => {
    const empty = await png(await lineChartPng({ title: "none", xLabel: "x", yLabel: "y", series: [] }));
    const allNaN = await png(await lineChartPng({ title: "none", xLabel: "x", yLabel: "y", series: [{ name: "a", x: [NaN, 1], y: [1, NaN] }] }));
    assert.deepEqual(empty, allNaN);
    assert.ok(empty.width < 760, "the small 'nothing to show' picture, not an empty chart");
  });

  it("refuses mismatched lengths, a bad y range and too many series", async () => {
    await assert.rejects(lineChartPng({ title: "t", xLabel: "x", yLabel: "y", series: [{ name: "a", x: [1, 2], y: [1] }] }), RangeError);
    await assert.rejects(lineChartPng({ title: "t", xLabel: "x", yLabel: "y", series: [{ name: "a", x: [1], y: [1] }], yRange: [1, 0] }), RangeError);
    const many = Array.from({ length: PICTURE_LIMITS.lineSeries + 1 }, (_, i) => ({ name: `s${i}`, x: [0], y: [0] }));
    await assert.rejects(lineChartPng({ title: "t", xLabel: "x", yLabel: "y", series: many }), RangeError);
  });
});

describe("heatmapPng", () => {
  // 8×8 at 0.5, one hot cell (row 1, column 6), one cold (row 6, column 1), one NaN (row 4, column 4).
  const [w, h] = [8, 8];
  const values = new Float32Array(w * h).fill(0.5);
  values[1 * w + 6] = 1;
  values[6 * w + 1] = 0;
  values[4 * w + 4] = NaN;
  const centre = (p: ReturnType<typeof heatmapPlacement>, row: number, column: number) => [p.x + ((column + 0.5) * p.width) / w, p.y + ((row + 0.5) * p.height) / h] as const;

  it("draws the highest value brightest, where the layout puts it, and NaN in neutral grey", async () => {
    const buf = await heatmapPng({ title: `occlusion ${markup}`, subtitle: "class 'cat'", values, width: w, height: h, scaleLabel: "drop in p(cat)" });
    const size = await png(buf);
    const p = heatmapPlacement(w, h);
    assert.ok(p.width >= 240 && p.width <= 280, `the map is about 280 px wide (${p.width})`);
    assert.ok(size.width > p.x + p.width + 40, "room for the colour bar");
    const at = await pixels(buf);
    const hot = at(...centre(p, 1, 6));
    const cold = at(...centre(p, 6, 1));
    near(hot, [0xfd, 0xe7, 0x25]); // the top of viridis
    near(cold, [0x44, 0x01, 0x54]); // its bottom
    assert.ok(brightness(hot) > brightness(at(...centre(p, 3, 3))) && brightness(at(...centre(p, 3, 3))) > brightness(cold));
    near(at(...centre(p, 4, 4)), [150, 150, 150]);
  });

  it("keeps the hot cell hot over a base image of another size, and takes a fixed range", async () => {
    const base = { data: new Float32Array(32 * 32 * 3).fill(0.5), width: 32, height: 32, channels: 3 as const };
    const buf = await heatmapPng({ title: "saliency", values, width: w, height: h, base, scaleLabel: "|gradient|", range: [0, 2] });
    const p = heatmapPlacement(w, h);
    const at = await pixels(buf);
    assert.ok(brightness(at(...centre(p, 1, 6))) > brightness(at(...centre(p, 6, 1))) + 20);
  });

  it("handles all-NaN, ±Infinity and flat maps, and says there is nothing to show for an empty one", async () => {
    await png(await heatmapPng({ title: "nan", values: new Float32Array(4).fill(NaN), width: 2, height: 2, scaleLabel: "v" }));
    await png(await heatmapPng({ title: "inf", values: Float32Array.from([Infinity, -Infinity, 1, 2]), width: 2, height: 2, scaleLabel: "v" }));
    await png(await heatmapPng({ title: "flat", values: new Float32Array(6).fill(3), width: 3, height: 2, scaleLabel: "v" }));
    assert.equal((await png(await heatmapPng({ title: "empty", values: new Float32Array(0), width: 0, height: 0, scaleLabel: "v" }))).width, 480);
  });

  it("refuses a map past 4096 on a side, mismatched lengths and a bad base or range", async () => {
    await assert.rejects(heatmapPng({ title: "t", values: new Float32Array(4097), width: 4097, height: 1, scaleLabel: "v" }), RangeError);
    await assert.rejects(heatmapPng({ title: "t", values: new Float32Array(10), width: 3, height: 3, scaleLabel: "v" }), RangeError);
    await assert.rejects(heatmapPng({ title: "t", values: new Float32Array(9), width: 3, height: 3, scaleLabel: "v", base: { data: new Float32Array(9), width: 3, height: 3, channels: 3 } }), RangeError);
    await assert.rejects(heatmapPng({ title: "t", values: new Float32Array(9), width: 3, height: 3, scaleLabel: "v", range: [0, NaN] }), RangeError);
  });
});

describe("gridPng", () => {
  /** Flat cells at 0, 1, …, n-1, so each cell's grey tells which it is. */
  const flat = (n: number, side = 5): GridCell[] => Array.from({ length: n }, (_, i) => ({ label: `map ${i}`, data: new Float32Array(side * side).fill(i), width: side, height: side, channels: 1 }));

  it("lays the cells out in the given number of columns: wider and shorter with more", async () => {
    const cells = flat(8);
    const sizes = [];
    for (const columns of [4, 6, 8]) sizes.push(await png(await gridPng({ title: "feature maps", cells, columns, normalize: "shared", scaleLabel: "activation" })));
    assert.ok(sizes[0].width < sizes[1].width && sizes[1].width < sizes[2].width, JSON.stringify(sizes));
    assert.ok(sizes[2].height < sizes[0].height, "one row is shorter than two");
  });

  it("puts cell i in row i / columns and column i % columns, scaled to one shared range", async () => {
    const cells = flat(6);
    const buf = await gridPng({ title: "shared", cells, columns: 4, normalize: "shared" });
    const layout = gridPlacement(cells, 4);
    assert.equal(layout.rows, 2);
    assert.equal(layout.cells[5].y, layout.cells[1].y + (layout.cells[4].y - layout.cells[0].y), "cell 5 under cell 1");
    const at = await pixels(buf);
    cells.forEach((_, i) => {
      const c = layout.cells[i];
      near(at(c.x + c.width / 2, c.y + c.height / 2), Array(3).fill(Math.round((i / 5) * 255)));
    });
  });

  it("colours signed weights blue below 0 and red above, and colour cells as RGB", async () => {
    const weights: GridCell = { label: "w", data: Float32Array.from([-1, 0, 1]), width: 3, height: 1, channels: 1 };
    const buf = await gridPng({ title: "filters", cells: [weights], diverging: true, normalize: "shared", scaleLabel: "weight" });
    const c = gridPlacement([weights], 1).cells[0];
    const at = await pixels(buf);
    const [neg, zero, pos] = [0, 1, 2].map((k) => at(c.x + ((k + 0.5) * c.width) / 3, c.y + c.height / 2));
    assert.ok(neg[2] > neg[0] + 60, `negative is blue: ${neg}`);
    assert.ok(pos[0] > pos[2] + 60, `positive is red: ${pos}`);
    assert.ok(zero.every((v) => v > 235), `zero is white: ${zero}`);

    const red = new Float32Array(4 * 4 * 3);
    for (let i = 0; i < red.length; i += 3) red.set([1, 0, 0.2], i);
    red[1] = 1; // one bright pixel, or min-max would stretch a uniform image to grey
    const image: GridCell = { label: "input", data: red, width: 4, height: 4, channels: 3 };
    const rgbBuf = await gridPng({ title: "top inputs", cells: [image] });
    const r = gridPlacement([image], 1).cells[0];
    const pixel = (await pixels(rgbBuf))(r.x + r.width * 0.75, r.y + r.height * 0.75);
    assert.ok(pixel[0] > 200 && pixel[1] < 30, `red: ${pixel}`);
  });

  it("draws NaN and ±Infinity without throwing, and nothing to show for no cells", async () => {
    const odd: GridCell[] = [
      { label: markup, data: Float32Array.from([NaN, Infinity, -Infinity, 0]), width: 2, height: 2, channels: 1 },
      { label: "all NaN", data: new Float32Array(12).fill(NaN), width: 2, height: 2, channels: 3 },
    ];
    for (const normalize of ["cell", "shared"] as const) await png(await gridPng({ title: "odd", cells: odd, normalize, diverging: normalize === "shared" }));
    assert.equal((await png(await gridPng({ title: "none", cells: [] }))).width, 480);
  });

  it("refuses more than 400 cells, bad columns and data that does not fit its size", async () => {
    await assert.rejects(gridPng({ title: "t", cells: flat(PICTURE_LIMITS.gridCells + 1, 1) }), RangeError);
    await assert.rejects(gridPng({ title: "t", cells: flat(2), columns: 0 }), RangeError);
    await assert.rejects(gridPng({ title: "t", cells: [{ label: "x", data: new Float32Array(5), width: 2, height: 2, channels: 1 }] }), RangeError);
    await assert.rejects(gridPng({ title: "t", cells: [{ label: "x", data: new Float32Array(4), width: 2, height: 2, channels: 2 as 1 }] }), RangeError);
  });
});

describe("scatterPng", () => {
  const n = 3000;
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  const classes: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % 12; // past ten classes: colours repeat with other marker shapes
    classes.push(c);
    x[i] = Math.cos(c) * 20 + Math.sin(i * 7.3) * 3;
    y[i] = Math.sin(c) * 20 + Math.cos(i * 3.1) * 3;
  }
  x[0] = NaN;
  y[1] = Infinity;
  const classNames = Array.from({ length: 12 }, (_, c) => (c === 3 ? markup : `class ${c}`));

  it("draws points coloured by class with a legend, skipping points that are not finite", async () => {
    const size = await png(await scatterPng({ title: "t-SNE", subtitle: "penultimate layer", x, y, classes, classNames, xLabel: "t-SNE 1", yLabel: "t-SNE 2" }));
    assert.equal(size.width, 760);
    assert.ok(size.height > 400 && size.height < 700);
  });

  it("says there is nothing to show without points", async () => {
    assert.equal((await png(await scatterPng({ title: "none", x: [], y: [], classes: [], classNames: ["a"] }))).width, 480);
    assert.equal((await png(await scatterPng({ title: "nan", x: [NaN], y: [0], classes: [0], classNames: ["a"] }))).width, 480);
  });

  it("refuses mismatched lengths, unknown classes and more than 20,000 points", async () => {
    await assert.rejects(scatterPng({ title: "t", x: [1, 2], y: [1], classes: [0, 0], classNames: ["a"] }), RangeError);
    await assert.rejects(scatterPng({ title: "t", x: [1], y: [1], classes: [1], classNames: ["a"] }), RangeError);
    const m = PICTURE_LIMITS.scatterPoints + 1;
    await assert.rejects(scatterPng({ title: "t", x: new Float32Array(m), y: new Float32Array(m), classes: new Array(m).fill(0), classNames: ["a"] }), RangeError);
  });
});
