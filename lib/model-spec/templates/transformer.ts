// A small transformer encoder classifier (Vaswani et al. 2017, encoder only): attention sees every
// position at once, so the positional encoding is what tells it the order.
import { z } from "zod";
import { ValidationError } from "../../errors.ts";
import { classifierHead, defineTemplate, finish, intParam, numberParam, sequenceShape, type LayerInput } from "./template-def.ts";

export const transformer = defineTemplate({
  name: "transformer",
  title: "Transformer encoder classifier",
  description:
    "Input [time] of int32 token ids (embedding of vocabSize × dModel) or [time, features] of floats (dense projection to dModel); " +
    "sinusoidal positional encoding; `blocks` transformerEncoder blocks (numHeads heads of dModel/numHeads, feed-forward ffDim, residuals and layer norm); " +
    "global average pooling over time, dropout and softmax. Default 32 tokens, vocabulary 1000, dModel 32, 2 heads, 2 blocks, ffDim 64.",
  inputShapeMeaning: "[time] of int32 token ids, or [time, features]",
  defaultInputShape: [32],
  defaultClasses: 2,
  params: z.object({
    vocabSize: intParam(2, 100_000).default(1000).describe("Token ids are in [0, vocabSize); only for [time] input."),
    dModel: intParam(4, 1024).default(32).describe("Model width: embedding size and each block's output."),
    numHeads: intParam(1, 32).default(2).describe("Attention heads; must divide dModel."),
    blocks: intParam(1, 12).default(2).describe("Encoder blocks."),
    ffDim: intParam(1, 4096).optional().describe("Hidden units of each block's feed-forward network; default 2 × dModel."),
    dropout: numberParam(0, 0.9).default(0.1).describe("Dropout inside the blocks and before the output."),
  }),
  build({ inputShape, classes, params }) {
    const { time, features } = sequenceShape(inputShape);
    if (params.dModel % params.numHeads !== 0) throw ValidationError.at("querystring.numHeads", `must divide dModel (${params.dModel})`);
    const tokens = features === undefined;
    const layers: LayerInput[] = [
      tokens ? { type: "embedding", inputDim: params.vocabSize, outputDim: params.dModel } : { type: "dense", units: params.dModel },
      { type: "positionalEncoding", maxLength: time },
    ];
    for (let i = 0; i < params.blocks; i++) {
      layers.push({ type: "transformerEncoder", numHeads: params.numHeads, keyDim: params.dModel / params.numHeads, ffDim: params.ffDim ?? 2 * params.dModel, dropout: params.dropout });
    }
    layers.push({ type: "globalAveragePooling1d" });
    if (params.dropout > 0) layers.push({ type: "dropout", rate: params.dropout });
    layers.push(classifierHead(classes));
    return finish({ input: tokens ? { shape: inputShape, dtype: "int32" } : { shape: inputShape }, layers });
  },
});
