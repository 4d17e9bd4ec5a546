// Rosenblatt's perceptron: one dense layer with a step activation, trained by the perceptron rule
// rather than backpropagation (the step has no useful gradient).
import { z } from "zod";
import { defineTemplate, finish, shapeError } from "./template-def.ts";

export const perceptron = defineTemplate({
  name: "perceptron",
  title: "Perceptron",
  description:
    "A single dense layer with a step activation, trained with the perceptron rule (mode: perceptron). " +
    "Binary (classes 1 or 2): one unit that outputs 0 or 1. More classes: one unit per class, one-vs-rest. " +
    "It only separates linearly separable classes.",
  inputShapeMeaning: "[features]",
  defaultInputShape: [2],
  defaultClasses: 2,
  params: z.object({}),
  build({ inputShape, classes }) {
    if (inputShape.length !== 1) throw shapeError(`the perceptron takes a flat feature vector [features]; got [${inputShape.join(", ")}]`);
    return finish({
      input: { shape: inputShape },
      layers: [{ type: "dense", units: classes <= 2 ? 1 : classes, activation: "step" }],
      mode: "perceptron",
    });
  },
});
