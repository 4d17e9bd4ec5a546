// Adaptive pooling (PyTorch's AdaptiveAvgPool / AdaptiveMaxPool): the output size is fixed and the
// pooling windows follow from the input size, so one network (e.g. conv layers → adaptive pool →
// dense) accepts images of several sizes. tfjs-layers only has fixed-window pooling.
import * as tf from "@tensorflow/tfjs";

type Shape = (number | null)[];
type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export type AdaptivePoolingMode = "avg" | "max";

export interface AdaptivePooling2DConfig {
  /** [outHeight, outWidth]. */
  outputSize: [number, number];
  mode: AdaptivePoolingMode;
}

export interface AdaptivePooling1DConfig {
  outputSize: number;
  mode: AdaptivePoolingMode;
}

/**
 * PyTorch's bins: output i pools input indices floor(i·n/out) .. ceil((i+1)·n/out) - 1. Bins
 * overlap when out does not divide n, and repeat elements when out > n.
 */
export function adaptiveBins(n: number, out: number): Array<[start: number, end: number]> {
  const bins: Array<[number, number]> = [];
  for (let i = 0; i < out; i++) bins.push([Math.floor((i * n) / out), Math.ceil(((i + 1) * n) / out)]);
  return bins;
}

/** Pools `x` along one axis into `out` adaptive bins, keeping the axis. */
function poolAxis(x: tf.Tensor, axis: number, out: number, mode: AdaptivePoolingMode): tf.Tensor {
  const n = x.shape[axis];
  if (n === 0) throw new Error(`adaptive pooling: input axis ${axis} has size 0`);
  const parts = adaptiveBins(n, out).map(([start, end]) => {
    const begin = x.shape.map((_, i) => (i === axis ? start : 0));
    const size = x.shape.map((_, i) => (i === axis ? end - start : -1));
    const window = tf.slice(x, begin, size);
    return mode === "avg" ? tf.mean(window, axis, true) : tf.max(window, axis, true);
  });
  return parts.length === 1 ? parts[0] : tf.concat(parts, axis);
}

function checkMode(mode: unknown, cls: string): AdaptivePoolingMode {
  if (mode !== "avg" && mode !== "max") throw new Error(`${cls}: mode must be "avg" or "max", got ${JSON.stringify(mode)}`);
  return mode;
}

function checkSize(size: unknown, cls: string): number {
  if (typeof size !== "number" || !Number.isInteger(size) || size < 1) {
    throw new Error(`${cls}: outputSize must hold positive integers, got ${JSON.stringify(size)}`);
  }
  return size;
}

/** [batch, H, W, C] → [batch, outHeight, outWidth, C]; H and W may be unknown until call time. */
export class AdaptivePooling2D extends tf.layers.Layer {
  static className = "TrainyardAdaptivePooling2D";
  readonly outputSize: [number, number];
  readonly mode: AdaptivePoolingMode;

  constructor(args: AdaptivePooling2DConfig & LayerArgs) {
    super(args);
    const cls = AdaptivePooling2D.className;
    if (!Array.isArray(args.outputSize) || args.outputSize.length !== 2) {
      throw new Error(`${cls}: outputSize must be [height, width], got ${JSON.stringify(args.outputSize)}`);
    }
    this.outputSize = [checkSize(args.outputSize[0], cls), checkSize(args.outputSize[1], cls)];
    this.mode = checkMode(args.mode, cls);
  }

  computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    if (shape.length !== 4) {
      throw new Error(`${AdaptivePooling2D.className} expects [batch, height, width, channels], got [${shape.join(", ")}]`);
    }
    return [shape[0], this.outputSize[0], this.outputSize[1], shape[3]];
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      // Bins are rectangles, so pooling rows then columns equals pooling each rectangle (for
      // both mean and max) with oh + ow slices instead of oh·ow.
      const rows = poolAxis(x, 1, this.outputSize[0], this.mode);
      return poolAxis(rows, 2, this.outputSize[1], this.mode);
    });
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), outputSize: [...this.outputSize], mode: this.mode };
  }
}

/** [batch, T, C] → [batch, outputSize, C]; T may be unknown until call time. */
export class AdaptivePooling1D extends tf.layers.Layer {
  static className = "TrainyardAdaptivePooling1D";
  readonly outputSize: number;
  readonly mode: AdaptivePoolingMode;

  constructor(args: AdaptivePooling1DConfig & LayerArgs) {
    super(args);
    this.outputSize = checkSize(args.outputSize, AdaptivePooling1D.className);
    this.mode = checkMode(args.mode, AdaptivePooling1D.className);
  }

  computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    if (shape.length !== 3) {
      throw new Error(`${AdaptivePooling1D.className} expects [batch, steps, channels], got [${shape.join(", ")}]`);
    }
    return [shape[0], this.outputSize, shape[2]];
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => poolAxis(Array.isArray(inputs) ? inputs[0] : inputs, 1, this.outputSize, this.mode));
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), outputSize: this.outputSize, mode: this.mode };
  }
}

tf.serialization.registerClass(AdaptivePooling2D);
tf.serialization.registerClass(AdaptivePooling1D);
