// Image augmentation for the training loop: each training example of a batch gets its own random
// transform, drawn from (job seed, epoch, position in the epoch's order) only, so a resumed job
// augments exactly as an uninterrupted one. Plain typed-array math, no tfjs: the geometry is one
// affine map per example (flips, rotation, zoom, crop, shifts composed) sampled bilinearly, the
// same bits on every backend; brightness and contrast follow, clipped to the input's value range.
// Per-pixel labels ([H, W] masks) get the same geometry, sampled at the nearest pixel.
import { augments, isImageShape, type Augmentation } from "../../model-spec/augmentation-schema.ts";
import { deriveSeed, mulberry32 } from "../seeded-random.ts";
import { TrainingSetupError, type RowTensor, type TargetTensor, type TrainData } from "./train-types.ts";

/** The stream of the job's seed that augmentation draws from (apart from shuffles and dropout). */
const AUGMENT_STREAM = 0xa06e;

type Fill = NonNullable<Augmentation["fill"]>;

/** One example's transform, in terms independent of image size. */
export interface ExampleTransform {
  flipX: boolean;
  flipY: boolean;
  /** Radians. */
  angle: number;
  /** Source sampling scale: < 1 shows less of the image (zoomed in or cropped). */
  scale: number;
  /** Translation of the sampling window, as fractions of (W − 1) and (H − 1) and whole pixels. */
  shiftX: number;
  shiftY: number;
  pixelsX: number;
  pixelsY: number;
  /** Added to every value, as a fraction of the input's value range. */
  brightness: number;
  /** Distance from each channel's mean is multiplied by this. */
  contrast: number;
}

/** Draws one example's transform. Always the same number of draws, in the same order. */
export function drawTransform(a: Augmentation, random: () => number): ExampleTransform {
  const symmetric = (max: number) => (2 * random() - 1) * max;
  const flipX = random() < 0.5 && !!a.flipHorizontal;
  const flipY = random() < 0.5 && !!a.flipVertical;
  const angle = (symmetric(a.rotation ?? 0) * Math.PI) / 180;
  const zoom = 1 + symmetric(a.zoom ?? 0);
  const crop = a.crop ?? 1;
  const side = crop + random() * (1 - crop);
  // The crop window lies inside the image: its centre moves by at most (1 − side)/2 of the size.
  const cropX = symmetric((1 - side) / 2);
  const cropY = symmetric((1 - side) / 2);
  const shiftX = cropX + symmetric(a.shift ?? 0);
  const shiftY = cropY + symmetric(a.shift ?? 0);
  const pad = a.padCrop ?? 0;
  const pixelsX = Math.floor(random() * (2 * pad + 1)) - pad;
  const pixelsY = Math.floor(random() * (2 * pad + 1)) - pad;
  const brightness = symmetric(a.brightness ?? 0);
  const contrast = 1 + symmetric(a.contrast ?? 0);
  return { flipX, flipY, angle: a.rotation ? angle : 0, scale: side / zoom, shiftX, shiftY, pixelsX, pixelsY, brightness, contrast };
}

/** The affine map from an output pixel (x, y) to where it samples the source: [a, b, c, d, e, f] with sx = a·x + b·y + c, sy = d·x + e·y + f. */
export function sourceMap(t: ExampleTransform, height: number, width: number): [number, number, number, number, number, number] {
  const cx = (width - 1) / 2;
  const cy = (height - 1) / 2;
  // Exact for the whole-pixel cases (flips, padCrop): cos 0 and sin 0 are not computed.
  const cos = t.angle === 0 ? 1 : Math.cos(t.angle);
  const sin = t.angle === 0 ? 0 : Math.sin(t.angle);
  const fx = t.flipX ? -1 : 1;
  const fy = t.flipY ? -1 : 1;
  // A = scale · R(angle) · diag(fx, fy), applied about the centre, then the translation.
  const a = t.scale * cos * fx;
  const b = -t.scale * sin * fy;
  const d = t.scale * sin * fx;
  const e = t.scale * cos * fy;
  const tx = cx + t.shiftX * (width - 1) + t.pixelsX;
  const ty = cy + t.shiftY * (height - 1) + t.pixelsY;
  return [a, b, tx - a * cx - b * cy, d, e, ty - d * cx - e * cy];
}

/** Index of source pixel i along an axis of n under the fill mode; −1 stands for the constant 0. */
function fillIndex(i: number, n: number, fill: Fill): number {
  if (i >= 0 && i < n) return i;
  if (fill === "constant") return -1;
  if (fill === "nearest") return i < 0 ? 0 : n - 1;
  // reflect: d c b a | a b c d | d c b a, as Keras's fill_mode="reflect".
  const period = 2 * n;
  const m = ((i % period) + period) % period;
  return m < n ? m : period - 1 - m;
}

/**
 * Writes one example (`height × width × channels` values at `from` in `src`) transformed by the
 * affine `map` into `out` at `to`. Bilinear, or the nearest pixel (class ids must stay ids).
 */
export function warp(src: Float32Array, from: number, out: Float32Array, to: number, height: number, width: number, channels: number, map: readonly number[], fill: Fill, nearest: boolean): void {
  const [a, b, c, d, e, f] = map;
  const rowStride = width * channels;
  let o = to;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const sx = a * x + b * y + c;
      const sy = d * x + e * y + f;
      if (nearest) {
        const ix = fillIndex(Math.floor(sx + 0.5), width, fill);
        const iy = fillIndex(Math.floor(sy + 0.5), height, fill);
        if (ix < 0 || iy < 0) for (let k = 0; k < channels; k++) out[o++] = 0;
        else {
          const p = from + iy * rowStride + ix * channels;
          for (let k = 0; k < channels; k++) out[o++] = src[p + k];
        }
        continue;
      }
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const wx = sx - x0;
      const wy = sy - y0;
      const ix0 = fillIndex(x0, width, fill);
      const ix1 = fillIndex(x0 + 1, width, fill);
      const iy0 = fillIndex(y0, height, fill);
      const iy1 = fillIndex(y0 + 1, height, fill);
      const p00 = ix0 < 0 || iy0 < 0 ? -1 : from + iy0 * rowStride + ix0 * channels;
      const p01 = ix1 < 0 || iy0 < 0 ? -1 : from + iy0 * rowStride + ix1 * channels;
      const p10 = ix0 < 0 || iy1 < 0 ? -1 : from + iy1 * rowStride + ix0 * channels;
      const p11 = ix1 < 0 || iy1 < 0 ? -1 : from + iy1 * rowStride + ix1 * channels;
      for (let k = 0; k < channels; k++) {
        const v00 = p00 < 0 ? 0 : src[p00 + k];
        const v01 = p01 < 0 ? 0 : src[p01 + k];
        const v10 = p10 < 0 ? 0 : src[p10 + k];
        const v11 = p11 < 0 ? 0 : src[p11 + k];
        // At whole-pixel positions (weights 0) this is v00 exactly.
        const top = v00 + wx * (v01 - v00);
        const bottom = v10 + wx * (v11 - v10);
        out[o++] = top + wy * (bottom - top);
      }
    }
  }
}

/** Brightness and contrast of one example in place, clipped to [lo, hi]. */
export function adjust(out: Float32Array, at: number, pixels: number, channels: number, t: ExampleTransform, lo: number, hi: number): void {
  const add = t.brightness * (hi - lo);
  for (let k = 0; k < channels; k++) {
    let mean = 0;
    if (t.contrast !== 1) {
      for (let p = 0; p < pixels; p++) mean += out[at + p * channels + k];
      mean /= pixels;
    }
    for (let p = 0; p < pixels; p++) {
      const i = at + p * channels + k;
      const v = (out[i] - mean) * t.contrast + mean + add;
      out[i] = v < lo ? lo : v > hi ? hi : v;
    }
  }
}

/** A batch's augmented rows, aligned with the data's inputs and targets: undefined where a part is not augmented (gather it as is). */
export interface AugmentedBatch {
  inputs: (Float32Array<ArrayBuffer> | undefined)[];
  targets: (Float32Array<ArrayBuffer> | undefined)[];
}

interface ImagePart {
  k: number;
  data: Float32Array;
  height: number;
  width: number;
  channels: number;
  lo: number;
  hi: number;
}

interface MaskPart {
  k: number;
  data: Float32Array;
  channels: number;
  nearest: boolean;
}

function valueRange(data: Float32Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [0, 0];
}

/**
 * Augments training batches of `data`: every [H, W, C] float32 input, and every label set of
 * shape [H, W, ...] of the first image's size (masks, per-pixel targets), which gets the same
 * geometry. Undefined when `augmentation` switches nothing on.
 */
export class Augmenter {
  private readonly images: ImagePart[];
  private readonly masks: MaskPart[];
  private readonly geometric: boolean;
  private readonly photometric: boolean;

  private constructor(private readonly a: Augmentation, private readonly seed: number, data: TrainData) {
    this.images = data.inputs.flatMap((t: RowTensor, k) => {
      if (!isImageShape(t.shape) || (t.dtype ?? "float32") !== "float32") return [];
      const [height, width, channels] = t.shape;
      const [lo, hi] = valueRange(t.data);
      return [{ k, data: t.data, height, width, channels, lo, hi }];
    });
    if (this.images.length === 0) {
      throw new TrainingSetupError(`augmentation applies to images ([H, W, C] inputs); the inputs are ${data.inputs.map((t) => `[${t.shape.join(", ")}]`).join(", ")}`);
    }
    this.geometric = !!(a.flipHorizontal || a.flipVertical || a.rotation || a.shift || a.zoom || (a.crop !== undefined && a.crop < 1) || a.padCrop);
    this.photometric = !!(a.brightness || a.contrast);
    const { height, width } = this.images[0];
    this.masks = this.geometric
      ? data.targets.flatMap((t: TargetTensor, k) =>
          t.shape.length >= 2 && t.shape[0] === height && t.shape[1] === width
            ? [{ k, data: t.data, channels: t.shape.slice(2).reduce((x, y) => x * y, 1), nearest: t.task === "classification" }]
            : [],
        )
      : [];
  }

  static create(augmentation: Augmentation | undefined, seed: number, data: TrainData): Augmenter | undefined {
    return augments(augmentation) ? new Augmenter(augmentation, seed, data) : undefined;
  }

  /** The transform of the example at `position` of epoch `epoch`'s order: nothing else decides it. */
  transformAt(epoch: number, position: number): ExampleTransform {
    return drawTransform(this.a, mulberry32(deriveSeed(deriveSeed(deriveSeed(this.seed, AUGMENT_STREAM), epoch), position)));
  }

  /** `rows` are dataset rows, the batch that starts at `start` of the epoch's order. */
  batch(epoch: number, start: number, rows: ArrayLike<number>): AugmentedBatch {
    const n = rows.length;
    const inputs: AugmentedBatch["inputs"] = [];
    const targets: AugmentedBatch["targets"] = [];
    const outs = this.images.map((img) => new Float32Array(n * img.height * img.width * img.channels));
    const maskOuts = this.masks.map((m) => new Float32Array(n * this.images[0].height * this.images[0].width * m.channels));
    const fill = this.a.fill ?? "reflect";
    for (let j = 0; j < n; j++) {
      const t = this.transformAt(epoch, start + j);
      this.images.forEach((img, i) => {
        const size = img.height * img.width * img.channels;
        const from = rows[j] * size;
        if (this.geometric) warp(img.data, from, outs[i], j * size, img.height, img.width, img.channels, sourceMap(t, img.height, img.width), fill, false);
        else outs[i].set(img.data.subarray(from, from + size), j * size);
        if (this.photometric) adjust(outs[i], j * size, img.height * img.width, img.channels, t, img.lo, img.hi);
      });
      this.masks.forEach((m, i) => {
        const { height, width } = this.images[0];
        const size = height * width * m.channels;
        warp(m.data, rows[j] * size, maskOuts[i], j * size, height, width, m.channels, sourceMap(t, height, width), fill, m.nearest);
      });
    }
    this.images.forEach((img, i) => (inputs[img.k] = outs[i]));
    this.masks.forEach((m, i) => (targets[m.k] = maskOuts[i]));
    return { inputs, targets };
  }
}
