// CoordConv's coordinate channels (Liu et al. 2018): a plain convolution is translation-equivariant
// and cannot tell where in the image it is; appending each pixel's position lets the next conv2d
// learn position-dependent features (AddCoords2D followed by conv2d is CoordConv).
import * as tf from "@tensorflow/tfjs";

type Shape = (number | null)[];
type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export interface AddCoords2DConfig {
  /** Also append the distance from the image centre, sqrt(row² + col²), in [0, √2]. Default false. */
  withRadius?: boolean;
}

/**
 * [batch, H, W, C] → [batch, H, W, C + 2 (+1)]: appends the row coordinate, then the column
 * coordinate, each scaled to [-1, 1] (0 when that side is a single pixel), then optionally the radius.
 */
export class AddCoords2D extends tf.layers.Layer {
  static className = "TrainyardAddCoords2D";
  readonly withRadius: boolean;

  constructor(args: AddCoords2DConfig & LayerArgs = {}) {
    super(args);
    this.withRadius = args.withRadius ?? false;
  }

  private get extraChannels(): number {
    return this.withRadius ? 3 : 2;
  }

  computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    if (shape.length !== 4) {
      throw new Error(`${AddCoords2D.className} expects [batch, height, width, channels], got [${shape.join(", ")}]`);
    }
    const channels = shape[3];
    return [shape[0], shape[1], shape[2], channels === null ? null : channels + this.extraChannels];
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      // H and W come from the tensor, not from build(): one model serves several image sizes.
      const [batch, height, width] = x.shape;
      const coords = tf.tensor4d(coordinateChannels(height, width, this.withRadius), [1, height, width, this.extraChannels]);
      return tf.concat([x, tf.tile(coords, [batch, 1, 1, 1])], 3);
    });
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), withRadius: this.withRadius };
  }
}

/** Row-major [H, W, k] values: row, column (and radius) per pixel. */
function coordinateChannels(height: number, width: number, withRadius: boolean): Float32Array {
  const k = withRadius ? 3 : 2;
  const out = new Float32Array(height * width * k);
  const scale = (i: number, n: number) => (n > 1 ? (2 * i) / (n - 1) - 1 : 0);
  for (let r = 0; r < height; r++) {
    const row = scale(r, height);
    for (let c = 0; c < width; c++) {
      const col = scale(c, width);
      const at = (r * width + c) * k;
      out[at] = row;
      out[at + 1] = col;
      if (withRadius) out[at + 2] = Math.sqrt(row * row + col * col);
    }
  }
  return out;
}

tf.serialization.registerClass(AddCoords2D);
