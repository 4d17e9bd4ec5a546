// The multilayer perceptron: dense layers with a nonlinearity, trained by backpropagation.
import { z } from "zod";
import { ACTIVATIONS } from "../model-spec-schema.ts";
import { classifierHead, defineTemplate, finish, intParam, numberParam, type LayerInput } from "./template-def.ts";

// step and softmax make no sense between hidden layers: no gradient, and coupled units.
const HIDDEN_ACTIVATIONS = ACTIVATIONS.filter((a) => a !== "step" && a !== "softmax" && a !== "linear");

const hiddenList = z.preprocess(
  (v) => (typeof v === "string" && v.trim() === "" ? [] : typeof v === "string" ? v.split(",").map((s) => (s.trim() === "" ? NaN : Number(s))) : typeof v === "number" ? [v] : v),
  z.array(z.number().int("expected integers").positive("expected positive integers").max(4096, "at most 4096 units"), { error: "expected a comma-separated list of layer sizes, e.g. 64,32" })
    .max(16, "at most 16 hidden layers"),
);

export const mlp = defineTemplate({
  name: "mlp",
  title: "Multilayer perceptron",
  description:
    "Fully connected hidden layers (default 64 and 32 units, relu) and a softmax output (one sigmoid unit when classes = 1). " +
    "Inputs of higher rank, e.g. images, are flattened first.",
  inputShapeMeaning: "[features], or any shape (flattened)",
  defaultInputShape: [4],
  defaultClasses: 3,
  params: z.object({
    hidden: hiddenList.default([64, 32]).describe("Units of each hidden layer, comma-separated; empty for none (softmax regression)."),
    activation: z.enum(HIDDEN_ACTIVATIONS).default("relu").describe("Activation of the hidden layers."),
    dropout: numberParam(0, 0.9).default(0).describe("Dropout rate after each hidden layer; 0 for none."),
  }),
  build({ inputShape, classes, params }) {
    const layers: LayerInput[] = inputShape.length > 1 ? [{ type: "flatten" }] : [];
    for (const units of params.hidden) {
      layers.push({ type: "dense", units, activation: params.activation });
      if (params.dropout > 0) layers.push({ type: "dropout", rate: params.dropout });
    }
    layers.push(classifierHead(classes));
    return finish({ input: { shape: inputShape }, layers });
  },
});
