// Recurrent sequence classifiers: the same template for the Elman RNN, the LSTM (Hochreiter &
// Schmidhuber 1997) and the GRU (Cho et al. 2014), differing only in the cell.
import { z } from "zod";
import { classifierHead, defineTemplate, finish, flagParam, intParam, numberParam, sequenceShape, type LayerInput, type TemplateDef } from "./template-def.ts";

type Cell = "simpleRNN" | "lstm" | "gru";

const CELLS: Record<Cell, { name: string; title: string; about: string }> = {
  simpleRNN: { name: "simple_rnn", title: "Simple RNN", about: "Elman recurrent layers (tanh)" },
  lstm: { name: "lstm", title: "LSTM", about: "LSTM layers" },
  gru: { name: "gru", title: "GRU", about: "GRU layers" },
};

function recurrentTemplate(cell: Cell): TemplateDef {
  const { name, title, about } = CELLS[cell];
  return defineTemplate({
    name,
    title: `${title} sequence classifier`,
    description:
      `${about} over a sequence (the last one returns only its final state), then softmax over the classes. ` +
      "Input [time, features] of floats, or [time] of int32 token ids, which first go through an embedding of vocabSize × embeddingDim. " +
      "Stacked layers return their whole sequence to the next; `bidirectional` runs each layer both ways and concatenates. Default one layer of 32 units.",
    inputShapeMeaning: "[time, features], or [time] of token ids",
    defaultInputShape: [20, 8],
    defaultClasses: 2,
    params: z.object({
      units: intParam(1, 1024).default(32).describe("Units of each recurrent layer."),
      layers: intParam(1, 4).default(1).describe("Stacked recurrent layers."),
      bidirectional: flagParam().default(false).describe("Run each layer forwards and backwards and concatenate the two."),
      dropout: numberParam(0, 0.9).default(0).describe("Dropout on each layer's inputs (unidirectional layers only)."),
      vocabSize: intParam(2, 100_000).default(1000).describe("Token ids are in [0, vocabSize); only for [time] input."),
      embeddingDim: intParam(1, 1024).default(32).describe("Embedding size; only for [time] input."),
    }),
    build({ inputShape, classes, params }) {
      const { features } = sequenceShape(inputShape);
      const tokens = features === undefined;
      const layers: LayerInput[] = tokens ? [{ type: "embedding", inputDim: params.vocabSize, outputDim: params.embeddingDim }] : [];
      for (let i = 0; i < params.layers; i++) {
        const returnSequences = i < params.layers - 1;
        if (params.bidirectional) layers.push({ type: "bidirectional", layer: { type: cell, units: params.units, returnSequences } });
        else layers.push({ type: cell, units: params.units, returnSequences, dropout: params.dropout });
      }
      layers.push(classifierHead(classes));
      return finish({ input: tokens ? { shape: inputShape, dtype: "int32" } : { shape: inputShape }, layers });
    },
  });
}

export const simpleRnn = recurrentTemplate("simpleRNN");
export const lstm = recurrentTemplate("lstm");
export const gru = recurrentTemplate("gru");
