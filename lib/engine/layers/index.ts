// The custom layers behind spec layer types tfjs-layers lacks. Importing this module registers
// every class with tf.serialization, which tf.loadLayersModel needs to rebuild a saved model.
import { AdaptivePooling1D, AdaptivePooling2D } from "./adaptive-pooling.ts";
import { AddCoords2D } from "./add-coords.ts";
import { Attention } from "./attention.ts";
import { Distance } from "./distance.ts";
import { MultiHeadSelfAttention } from "./multi-head-attention.ts";
import { PositionalEncoding } from "./positional-encoding.ts";
import { SpatialDropout2D } from "./spatial-dropout.ts";
import { StepActivation, STEP_GRADIENT_ERROR } from "./step-activation.ts";
import { TransformerEncoder } from "./transformer-encoder.ts";

export type { AdaptivePooling1DConfig, AdaptivePooling2DConfig, AdaptivePoolingMode } from "./adaptive-pooling.ts";
export type { AddCoords2DConfig } from "./add-coords.ts";
export type { AttentionConfig, AttentionScore } from "./attention.ts";
export type { DistanceConfig, DistanceMetric } from "./distance.ts";
export type { MultiHeadSelfAttentionConfig } from "./multi-head-attention.ts";
export type { PositionalEncodingConfig } from "./positional-encoding.ts";
export type { SpatialDropout2DConfig } from "./spatial-dropout.ts";
export type { TransformerEncoderConfig } from "./transformer-encoder.ts";

export {
  AdaptivePooling1D,
  AdaptivePooling2D,
  AddCoords2D,
  Attention,
  Distance,
  MultiHeadSelfAttention,
  PositionalEncoding,
  SpatialDropout2D,
  StepActivation,
  STEP_GRADIENT_ERROR,
  TransformerEncoder,
};

/** Registered class names (the `className` in a saved model's topology), all prefixed "Trainyard". */
export { DilatedConv2D } from "./dilated-conv.ts";
export type { DilatedConv2DConfig } from "./dilated-conv.ts";

export const CUSTOM_LAYER_CLASS_NAMES: string[] = [
  AddCoords2D,
  AdaptivePooling2D,
  AdaptivePooling1D,
  PositionalEncoding,
  Attention,
  MultiHeadSelfAttention,
  TransformerEncoder,
  StepActivation,
  SpatialDropout2D,
  Distance,
].map((cls) => cls.className);
