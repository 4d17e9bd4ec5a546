// A character-level language model in the manner of Karpathy's char-rnn: at every position it
// predicts the next character, so one sequence gives `time` training targets.
import { z } from "zod";
import { ValidationError } from "../../errors.ts";
import { defineTemplate, finish, intParam, numberParam, shapeError, type LayerInput } from "./template-def.ts";

export const charModel = defineTemplate({
  name: "char_model",
  title: "Character-level language model",
  description:
    "Input [time] of int32 character ids; an embedding (vocabSize × embeddingDim), `layers` LSTM or GRU layers that return their whole sequence, " +
    "and a dense softmax over the vocabulary at every time step: output [time, vocabSize]. The targets are the next character's id at each step " +
    "(sparseCategoricalCrossentropy). vocabSize defaults to `classes`. Default 32 steps, 64-character vocabulary, one LSTM of 64 units.",
  inputShapeMeaning: "[time] of int32 character ids",
  defaultInputShape: [32],
  defaultClasses: 64,
  params: z.object({
    vocabSize: intParam(2, 100_000).optional().describe("Distinct characters; default: classes."),
    embeddingDim: intParam(1, 1024).default(32).describe("Embedding size."),
    cell: z.enum(["lstm", "gru"]).default("lstm").describe("Recurrent cell."),
    units: intParam(1, 1024).default(64).describe("Units of each recurrent layer."),
    layers: intParam(1, 4).default(1).describe("Stacked recurrent layers."),
    dropout: numberParam(0, 0.9).default(0).describe("Dropout on each recurrent layer's inputs."),
  }),
  build({ inputShape, classes, params }) {
    if (inputShape.length !== 1) throw shapeError(`expected [time] (int32 character ids); got [${inputShape.join(", ")}]`);
    const vocabSize = params.vocabSize ?? classes;
    if (vocabSize < 2) throw ValidationError.at("querystring.classes", "a vocabulary needs at least 2 characters: pass classes or vocabSize of 2 or more");
    const layers: LayerInput[] = [{ type: "embedding", inputDim: vocabSize, outputDim: params.embeddingDim }];
    for (let i = 0; i < params.layers; i++) layers.push({ type: params.cell, units: params.units, returnSequences: true, dropout: params.dropout });
    layers.push({ type: "dense", units: vocabSize, activation: "softmax" });
    return finish({ input: { shape: inputShape, dtype: "int32" }, layers, loss: "sparseCategoricalCrossentropy" });
  },
});
