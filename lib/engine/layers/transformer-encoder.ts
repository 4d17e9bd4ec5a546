// One Transformer encoder block, post-norm as in the original paper (Vaswani et al. 2017, §3.1):
// y = LayerNorm(x + MHSA(x)); out = LayerNorm(y + FFN(y)). Post-norm matches the paper and Keras-NLP's
// default; it trains less easily than pre-norm in deep stacks, so use warm-up or few blocks.
import * as tf from "@tensorflow/tfjs";
import {
  type AttentionParams,
  checkAttentionArgs,
  dense3d,
  multiHeadSelfAttention,
  sequenceShape,
} from "./multi-head-attention.ts";

type Shape = (number | null)[];
type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
type Kwargs = { [key: string]: unknown };

export interface TransformerEncoderConfig {
  numHeads: number;
  /** Size of each head's query/key/value projection. */
  keyDim: number;
  /** Hidden units of the position-wise feed-forward network. */
  ffDim: number;
  /**
   * Dropout rate while training, on the attention weights and on each sub-layer's output before
   * it is added to the residual (the paper's residual dropout). Default 0.
   */
  dropout?: number;
  /** Step i attends only to steps j ≤ i (decoder-only stacks). Default false. */
  causal?: boolean;
  /** Layer-norm epsilon. Default 1e-5 (PyTorch and Keras-NLP). */
  epsilon?: number;
}

const WEIGHT_NAMES = [
  "wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo",
  "ln1_gamma", "ln1_beta", "ffn_w1", "ffn_b1", "ffn_w2", "ffn_b2", "ln2_gamma", "ln2_beta",
] as const;
type WeightName = (typeof WEIGHT_NAMES)[number];

function layerNorm(x: tf.Tensor3D, gamma: tf.Tensor, beta: tf.Tensor, epsilon: number): tf.Tensor3D {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, epsilon))), gamma), beta);
}

/** [b, T, dModel] → [b, T, dModel]; T may be unknown until call time. */
export class TransformerEncoder extends tf.layers.Layer {
  static className = "TrainyardTransformerEncoder";
  readonly numHeads: number;
  readonly keyDim: number;
  readonly ffDim: number;
  readonly dropout: number;
  readonly causal: boolean;
  readonly epsilon: number;
  private w: Partial<Record<WeightName, tf.LayerVariable>> = {};

  constructor(args: TransformerEncoderConfig & LayerArgs) {
    super(args);
    const cls = TransformerEncoder.className;
    checkAttentionArgs(cls, args);
    if (!Number.isInteger(args.ffDim) || args.ffDim < 1) {
      throw new Error(`${cls}: ffDim must be a positive integer, got ${JSON.stringify(args.ffDim)}`);
    }
    const epsilon = args.epsilon ?? 1e-5;
    if (!(epsilon > 0)) throw new Error(`${cls}: epsilon must be positive, got ${JSON.stringify(args.epsilon)}`);
    this.numHeads = args.numHeads;
    this.keyDim = args.keyDim;
    this.ffDim = args.ffDim;
    this.dropout = args.dropout ?? 0;
    this.causal = args.causal ?? false;
    this.epsilon = epsilon;
  }

  build(inputShape: Shape | Shape[]): void {
    const d = sequenceShape(TransformerEncoder.className, inputShape)[2] as number;
    const inner = this.numHeads * this.keyDim;
    const glorot = () => tf.initializers.glorotUniform({});
    const zeros = () => tf.initializers.zeros();
    const ones = () => tf.initializers.ones();
    const shapes: Record<WeightName, [number[], () => ReturnType<typeof glorot>]> = {
      wq: [[d, inner], glorot], wk: [[d, inner], glorot], wv: [[d, inner], glorot], wo: [[inner, d], glorot],
      bq: [[inner], zeros], bk: [[inner], zeros], bv: [[inner], zeros], bo: [[d], zeros],
      ln1_gamma: [[d], ones], ln1_beta: [[d], zeros],
      ffn_w1: [[d, this.ffDim], glorot], ffn_b1: [[this.ffDim], zeros],
      ffn_w2: [[this.ffDim, d], glorot], ffn_b2: [[d], zeros],
      ln2_gamma: [[d], ones], ln2_beta: [[d], zeros],
    };
    for (const name of WEIGHT_NAMES) {
      const [shape, init] = shapes[name];
      this.w[name] = this.addWeight(name, shape, "float32", init());
    }
    this.built = true;
  }

  computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return [...sequenceShape(TransformerEncoder.className, inputShape)];
  }

  call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor3D;
      const training = kwargs?.training === true;
      const w = (name: WeightName) => (this.w[name] as tf.LayerVariable).read();
      const drop = (t: tf.Tensor3D): tf.Tensor3D => (training && this.dropout > 0 ? (tf.dropout(t, this.dropout) as tf.Tensor3D) : t);
      const params: AttentionParams = {
        wq: w("wq") as tf.Tensor2D, wk: w("wk") as tf.Tensor2D, wv: w("wv") as tf.Tensor2D, wo: w("wo") as tf.Tensor2D,
        bq: w("bq") as tf.Tensor1D, bk: w("bk") as tf.Tensor1D, bv: w("bv") as tf.Tensor1D, bo: w("bo") as tf.Tensor1D,
      };
      const attended = multiHeadSelfAttention(x, params, {
        numHeads: this.numHeads,
        keyDim: this.keyDim,
        valueDim: this.keyDim,
        causal: this.causal,
        dropout: this.dropout,
        training,
      });
      const y = layerNorm(tf.add(x, drop(attended)), w("ln1_gamma"), w("ln1_beta"), this.epsilon);
      const hidden = tf.relu(dense3d(y, w("ffn_w1") as tf.Tensor2D, w("ffn_b1") as tf.Tensor1D));
      const ff = dense3d(hidden, w("ffn_w2") as tf.Tensor2D, w("ffn_b2") as tf.Tensor1D);
      return layerNorm(tf.add(y, drop(ff)), w("ln2_gamma"), w("ln2_beta"), this.epsilon);
    });
  }

  getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      numHeads: this.numHeads,
      keyDim: this.keyDim,
      ffDim: this.ffDim,
      dropout: this.dropout,
      causal: this.causal,
      epsilon: this.epsilon,
    };
  }
}

tf.serialization.registerClass(TransformerEncoder);
