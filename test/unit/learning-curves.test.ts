// The learning-curve pictures: what a reader needs is on them (title, axes with ticks and labels,
// a legend entry per series), odd input (one epoch, NaN, ±Infinity, 100,000 epochs, markup in
// names) still gives a valid picture, and the PNG is the SVG at its declared size.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import sharp from "sharp";
import { learningCurvesSvg, type CurvesInput } from "../../lib/training/learning-curves.ts";
import { svgToPng } from "../../lib/training/svg.ts";

function epochsOf(n: number, metrics: (e: number) => Record<string, number>): CurvesInput["epochs"] {
  return Array.from({ length: n }, (_, i) => ({ epoch: i + 1, metrics: metrics(i + 1) }));
}
const classification = (e: number) => ({ loss: 1 / e, val_loss: 1.2 / e, accuracy: 1 - 0.5 / e, val_accuracy: 1 - 0.6 / e });
const texts = (svg: string) => [...svg.matchAll(/<text[^>]*>(?:<title>[^<]*<\/title>)?([^<]*)<\/text>/g)].map((m) => m[1]);
/** The panels' y tick labels, one array per panel, top to bottom. */
const yTicks = (svg: string) => svg.split("<g>").slice(1).map((g) => [...g.matchAll(/<text[^>]*text-anchor="end" fill="#333">([^<]*)</g)].map((m) => m[1]));
/** Rasterizing is the strictest parse at hand: librsvg rejects a malformed document. */
const parses = async (svg: string) => assert.ok((await sharp(Buffer.from(svg)).metadata()).width! > 0);

describe("learning curves: SVG", () => {
  it("has a title, a loss panel and an accuracy panel with ticks and axis labels, and a legend entry per series", async () => {
    const { svg, width, height } = learningCurvesSvg({ title: "iris — training job 42", subtitle: "succeeded · epoch 20 of 20", epochs: epochsOf(20, classification), final: { loss: 0.05, test_loss: 0.1, test_accuracy: 0.9 } });
    const words = texts(svg);
    assert.ok(words.includes("iris — training job 42"), "the title names the job");
    assert.ok(svg.startsWith(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"`));
    for (const key of ["loss", "val_loss", "test_loss", "accuracy", "val_accuracy", "test_accuracy"]) assert.ok(words.includes(key), `legend entry ${key}`);
    assert.equal(words.filter((w) => w === "epoch").length, 2, "an x axis title under each panel");
    assert.deepEqual(yTicks(svg)[1], ["0", "0.2", "0.4", "0.6", "0.8", "1.0"], "accuracy on a fixed [0, 1] axis");
    for (const t of ["0", "10", "20"]) assert.ok(words.includes(t), `x tick ${t}`);
    assert.equal((svg.match(/stroke-dasharray/g) ?? []).length, 4, "validation curves and their legend samples are dashed");
    assert.ok(words.includes("0.05"), "the latest loss is in the legend");
    await parses(svg);
  });

  it("groups per-output losses with the loss and other metrics in panels of their own", () => {
    const { svg } = learningCurvesSvg({ title: "two heads", epochs: epochsOf(5, (e) => ({ loss: 2 / e, species_loss: 1 / e, val_species_loss: 1.1 / e, species_accuracy: 0.5, lr: 0.01 / e, mae: 3 / e })) });
    const panels = svg.split("<g>").slice(1).map((g) => texts(g)[0]);
    assert.deepEqual(panels, ["loss", "accuracy", "lr", "mae"]);
    const lossPanel = texts(svg.split("<g>")[1]);
    for (const key of ["loss", "species_loss", "val_species_loss"]) assert.ok(lossPanel.includes(key), key);
  });

  it("draws one epoch as dots in the middle of the axis", async () => {
    const { svg } = learningCurvesSvg({ title: "one", epochs: epochsOf(1, classification) });
    assert.equal((svg.match(/<circle/g) ?? []).length, 4, "a dot per series");
    assert.doesNotMatch(svg, /<path d="M[^"]*L/, "no line through a single point");
    assert.deepEqual(yTicks(svg)[0].length >= 2, true, "a flat series still gets a y range");
    assert.doesNotMatch(svg, /="[^"]*(NaN|Infinity)/);
    await parses(svg);
  });

  it("leaves gaps for NaN and ±Infinity, says how many, and keeps the axis on the finite values", async () => {
    const epochs = epochsOf(10, classification);
    epochs[3].metrics.val_loss = NaN;
    epochs[6].metrics.val_loss = Infinity;
    epochs[7].metrics.loss = -Infinity;
    const { svg } = learningCurvesSvg({ title: "diverged", epochs });
    assert.doesNotMatch(svg, /="[^"]*(NaN|Infinity)/, "no non-finite number reaches an attribute");
    assert.ok(texts(svg).includes("val_loss: 2 epochs"));
    assert.ok(texts(svg).includes("loss: 1 epoch"));
    const valPath = [...svg.matchAll(/<path d="([^"]*)"[^>]*stroke-dasharray/g)][0][1];
    assert.equal(valPath.match(/M/g)!.length, 3, "val_loss broken into three runs");
    assert.deepEqual(yTicks(svg)[0], ["0", "0.2", "0.4", "0.6", "0.8", "1.0", "1.2"]);
    await parses(svg);
  });

  it("draws 100,000 epochs in a bounded picture: a pixel column keeps at most four points", () => {
    const epochs = epochsOf(100_000, (e) => ({ loss: 1 / e + (e % 2) * 0.01, val_loss: 1.2 / e }));
    const { svg } = learningCurvesSvg({ title: "long", epochs });
    for (const [, d] of svg.matchAll(/<path d="(M[^"]*)" fill="none"/g)) assert.ok(d.split("L").length <= 4 * 600, `${d.split("L").length} points in a path`);
    assert.ok(svg.length < 200_000, `${svg.length} bytes`);
    assert.ok(texts(svg).includes("100000"), "the x axis reaches the last epoch");
  });

  it("spans the planned epochs while a job runs, and says when there are none yet", async () => {
    const running = learningCurvesSvg({ title: "running", epochs: epochsOf(3, classification), plannedEpochs: 50 });
    assert.ok(texts(running.svg).includes("50"));
    const empty = learningCurvesSvg({ title: "queued", epochs: [] });
    assert.ok(texts(empty.svg).includes("no epochs yet"));
    await parses(empty.svg);
  });

  it("escapes markup in names", async () => {
    const { svg } = learningCurvesSvg({ title: `a <b> & "c"\u0001`, epochs: epochsOf(2, (e) => ({ "x<y>&_loss": e })) });
    assert.ok(svg.includes("a &#60;b&#62; &#38; &#34;c&#34;"));
    assert.ok(svg.includes("x&#60;y&#62;&#38;_loss"));
    assert.doesNotMatch(svg, /\u0001/);
    await parses(svg);
  });
});

describe("learning curves: PNG", () => {
  it("is the SVG rasterized at its declared size", async () => {
    const picture = learningCurvesSvg({ title: "png", epochs: epochsOf(30, classification) });
    const png = await svgToPng(picture);
    const meta = await sharp(png).metadata();
    assert.equal(meta.format, "png");
    assert.deepEqual([meta.width, meta.height], [picture.width, picture.height]);
    // Not a blank page: the curves and text put dark pixels on the white background.
    const { data } = await sharp(png).greyscale().raw().toBuffer({ resolveWithObject: true });
    assert.ok(data.filter((v) => v < 128).length > 1000, "ink on the page");
  });
});
