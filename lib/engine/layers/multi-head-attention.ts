// Multi-head self-attention (Vaswani et al. 2017, §3.2.2). tfjs-layers has no attention layer at
// all; the math lives in `multiHeadSelfAttention` so TransformerEncoder can run it on its own weights.
import * as tf from "@tensorflow/tfjs";
import { causalMaskBias } from "./attention.ts";

type Shape = (number | null)[];
type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
type Kwargs = { [key: string]: unknown };

export interface MultiHeadSelfAttentionConfig {
  numHeads: number;
  /** Size of each head's query and key projection. */
  keyDim: number;
  /** Size of each head's value projection. Default keyDim. */
  valueDim?: number;
  /** Step i attends only to steps j ≤ i (decoder-style). Default false. */
  causal?: boolean;
  /** Dropout rate on the attention weights, applied only while training. Default 0. */
  dropout?: number;
  /** Biases on the four projections. Default true. */
  useBias?: boolean;
}

/** Projection weights, [in, out] kernels; biases absent when the layer has useBias false. */
export interface AttentionParams {
  wq: tf.Tensor2D;
  wk: tf.Tensor2D;
  wv: tf.Tensor2D;
  wo: tf.Tensor2D;
  bq?: tf.Tensor1D;
  bk?: tf.Tensor1D;
  bv?: tf.Tensor1D;
  bo?: tf.Tensor1D;
}

export interface AttentionOptions {
  numHeads: number;
  keyDim: number;
  valueDim: number;
  causal: boolean;
  dropout: number;
  training: boolean;
}

/** [b, T, in] · [in, out] (+ bias) → [b, T, out]. */
export function dense3d(x: tf.Tensor3D, kernel: tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor3D {
  const [b, t, d] = x.shape;
  let y = tf.matMul(tf.reshape(x, [b * t, d]), kernel);
  if (bias) y = tf.add(y, bias);
  return tf.reshape(y, [b, t, kernel.shape[1]]);
}

/** [b, T, heads·size] → [b·heads, T, size], so every head is one batch entry of a matMul. */
function splitHeads(x: tf.Tensor3D, heads: number, size: number): tf.Tensor3D {
  const [b, t] = x.shape;
  return tf.reshape(tf.transpose(tf.reshape(x, [b, t, heads, size]), [0, 2, 1, 3]), [b * heads, t, size]);
}

/** Scaled dot-product attention per head, heads concatenated and projected back: [b, T, dModel]. */
export function multiHeadSelfAttention(x: tf.Tensor3D, p: AttentionParams, o: AttentionOptions): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, t] = x.shape;
    const q = splitHeads(dense3d(x, p.wq, p.bq), o.numHeads, o.keyDim);
    const k = splitHeads(dense3d(x, p.wk, p.bk), o.numHeads, o.keyDim);
    const v = splitHeads(dense3d(x, p.wv, p.bv), o.numHeads, o.valueDim);
    let scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(o.keyDim)) as tf.Tensor3D;
    if (o.causal) scores = tf.add(scores, causalMaskBias(t, t));
    let weights: tf.Tensor3D = tf.softmax(scores);
    if (o.training && o.dropout > 0) weights = tf.dropout(weights, o.dropout) as tf.Tensor3D;
    const heads = tf.matMul(weights, v); // [b·h, T, valueDim]
    const merged = tf.reshape(tf.transpose(tf.reshape(heads, [b, o.numHeads, t, o.valueDim]), [0, 2, 1, 3]), [b, t, o.numHeads * o.valueDim]);
    return dense3d(merged as tf.Tensor3D, p.wo, p.bo);
  });
}

export function checkAttentionArgs(cls: string, args: { numHeads: unknown; keyDim: unknown; valueDim?: unknown; dropout?: unknown }): void {
  for (const key of ["numHeads", "keyDim", "valueDim"] as const) {
    const value = args[key];
    if (value === undefined && key === "valueDim") continue;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
      throw new Error(`${cls}: ${key} must be a positive integer, got ${JSON.stringify(value)}`);
    }
  }
  const dropout = args.dropout ?? 0;
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) {
    throw new Error(`${cls}: dropout must be in [0, 1), got ${JSON.stringify(dropout)}`);
  }
}

/** The [batch, T, dModel] shape both attention layers take, with dModel known (weights depend on it). */
export function sequenceShape(cls: string, inputShape: Shape | Shape[]): Shape {
  const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
  if (shape.length !== 3) throw new Error(`${cls} expects [batch, time, dModel], got [${shape.join(", ")}]`);
  if (shape[2] === null) throw new Error(`${cls} needs a known dModel (last dimension)`);
  return shape;
}

/** Self-attention on [b, T, dModel] → [b, T, dModel]; T may be unknown until call time. */
export class MultiHeadSelfAttention extends tf.layers.Layer {
  static className = "TrainyardMultiHeadSelfAttention";
  readonly numHeads: number;
  readonly keyDim: number;
  readonly valueDim: number;
  readonly causal: boolean;
  readonly dropout: number;
  readonly useBias: boolean;
  private w: Partial<Record<keyof AttentionParams, tf.LayerVariable>> = {};

  constructor(args: MultiHeadSelfAttentionConfig & LayerArgs) {
    super(args);
    checkAttentionArgs(MultiHeadSelfAttention.className, args);
    this.numHeads = args.numHeads;
    this.keyDim = args.keyDim;
    this.valueDim = args.valueDim ?? args.keyDim;
    this.causal = args.causal ?? false;
    this.dropout = args.dropout ?? 0;
    this.useBias = args.useBias ?? true;
  }

  build(inputShape: Shape | Shape[]): void {
    const dModel = sequenceShape(MultiHeadSelfAttention.className, inputShape)[2] as number;
    const qk = this.numHeads * this.keyDim;
    const v = this.numHeads * this.valueDim;
    const kernel = () => tf.initializers.glorotUniform({});
    const zeros = () => tf.initializers.zeros();
    this.w.wq = this.addWeight("wq", [dModel, qk], "float32", kernel());
    this.w.wk = this.addWeight("wk", [dModel, qk], "float32", kernel());
    this.w.wv = this.addWeight("wv", [dModel, v], "float32", kernel());
    this.w.wo = this.addWeight("wo", [v, dModel], "float32", kernel());
    if (this.useBias) {
      this.w.bq = this.addWeight("bq", [qk], "float32", zeros());
      this.w.bk = this.addWeight("bk", [qk], "float32", zeros());
      this.w.bv = this.addWeight("bv", [v], "float32", zeros());
      this.w.bo = this.addWeight("bo", [dModel], "float32", zeros());
    }
    this.built = true;
  }

  computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return [...sequenceShape(MultiHeadSelfAttention.className, inputShape)];
  }

  call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor3D;
      const params = Object.fromEntries(Object.entries(this.w).map(([k, w]) => [k, w.read()])) as unknown as AttentionParams;
      return multiHeadSelfAttention(x, params, {
        numHeads: this.numHeads,
        keyDim: this.keyDim,
        valueDim: this.valueDim,
        causal: this.causal,
        dropout: this.dropout,
        training: kwargs?.training === true,
      });
    });
  }

  getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      numHeads: this.numHeads,
      keyDim: this.keyDim,
      valueDim: this.valueDim,
      causal: this.causal,
      dropout: this.dropout,
      useBias: this.useBias,
    };
  }
}

tf.serialization.registerClass(MultiHeadSelfAttention);
