// Dilated (atrous) 2-D convolution that trains. TensorFlow.js computes dilated convolutions
// forward but throws in their gradients ("dilation rates greater than 1 are not yet supported in
// gradients") on every backend. A dilated kernel is the same kernel with zeros between its taps,
// so this layer keeps the kh×kw kernel as its weight, spreads it out with pad + reshape (ops whose
// gradients exist everywhere) and runs an ordinary convolution: same result, trainable.
// conv1d with dilation uses it too: a [batch, time, channels] input is convolved as [time, 1].
import * as tf from "@tensorflow/tfjs";

type Shape = (number | null)[];
type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export interface DilatedConv2DConfig {
  filters: number;
  kernelSize: [number, number];
  dilationRate: [number, number];
  strides: [number, number];
  padding: "valid" | "same";
  useBias: boolean;
  /** Names of tfjs initializers, e.g. "glorotUniform". */
  kernelInitializer: string;
  biasInitializer: string;
  kernelRegularizer?: { l1: number; l2: number } | null;
}

const outSize = (n: number | null, k: number, s: number, padding: string) =>
  n === null ? null : padding === "same" ? Math.ceil(n / s) : Math.floor((n - k) / s) + 1;

export class DilatedConv2D extends tf.layers.Layer {
  static className = "TrainyardDilatedConv2D";
  private readonly cfg: DilatedConv2DConfig;
  private kernel?: tf.LayerVariable;
  private bias?: tf.LayerVariable;

  constructor(args: DilatedConv2DConfig & LayerArgs) {
    const { filters, kernelSize, dilationRate, strides, padding, useBias, kernelInitializer, biasInitializer, kernelRegularizer, ...rest } = args;
    super(rest);
    this.cfg = { filters, kernelSize, dilationRate, strides, padding, useBias, kernelInitializer, biasInitializer, kernelRegularizer: kernelRegularizer ?? null };
  }

  /** Extent of the spread-out kernel along each axis. */
  private effective(): [number, number] {
    const [kh, kw] = this.cfg.kernelSize;
    const [dh, dw] = this.cfg.dilationRate;
    return [dh * (kh - 1) + 1, dw * (kw - 1) + 1];
  }

  build(inputShape: Shape | Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    const channels = shape[shape.length - 1];
    if (channels === null) throw new Error(`${DilatedConv2D.className}: the channel dimension must be known`);
    type Init = Parameters<tf.layers.Layer["addWeight"]>[3];
    const init = (name: string) => (tf.initializers as unknown as Record<string, () => Init>)[name]();
    const reg = this.cfg.kernelRegularizer;
    this.kernel = this.addWeight("kernel", [...this.cfg.kernelSize, channels, this.cfg.filters], "float32", init(this.cfg.kernelInitializer),
      reg && (reg.l1 || reg.l2) ? tf.regularizers.l1l2(reg) : undefined);
    if (this.cfg.useBias) this.bias = this.addWeight("bias", [this.cfg.filters], "float32", init(this.cfg.biasInitializer));
    this.built = true;
  }

  computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    const [eh, ew] = this.effective();
    const h = outSize(shape[1], eh, this.cfg.strides[0], this.cfg.padding);
    if (shape.length === 3) return [shape[0], h, this.cfg.filters];
    return [shape[0], h, outSize(shape[2], ew, this.cfg.strides[1], this.cfg.padding), this.cfg.filters];
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const input = Array.isArray(inputs) ? inputs[0] : inputs;
      const oneD = input.rank === 3;
      const x = (oneD ? tf.expandDims(input, 2) : input) as tf.Tensor4D;
      const k = this.kernel!.read();
      const [kh, kw] = this.cfg.kernelSize;
      const [dh, dw] = this.cfg.dilationRate;
      const [eh, ew] = this.effective();
      const [, , cin, cout] = k.shape;
      // [kh, kw, in, out] → [kh, 1, kw, 1, in, out] → zeros after each tap → [kh·dh, kw·dw, in, out] → trim the trailing zeros.
      const spread = tf
        .pad(k.reshape([kh, 1, kw, 1, cin, cout]), [[0, 0], [0, dh - 1], [0, 0], [0, dw - 1], [0, 0], [0, 0]])
        .reshape([kh * dh, kw * dw, cin, cout])
        .slice([0, 0, 0, 0], [eh, ew, cin, cout]) as tf.Tensor4D;
      let y: tf.Tensor = tf.conv2d(x, spread, this.cfg.strides, this.cfg.padding);
      // The activation, if any, is a layer of its own after this one (see build-model.ts).
      if (this.bias) y = tf.add(y, this.bias.read());
      return oneD ? tf.squeeze(y, [2]) : y;
    });
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.cfg } as unknown as tf.serialization.ConfigDict;
  }
}

tf.serialization.registerClass(DilatedConv2D);
