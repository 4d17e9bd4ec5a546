// LeNet-5 (LeCun et al. 1998), the convolutional network that read cheques.
import { z } from "zod";
import { classifierHead, defineTemplate, finish, imageShape } from "./template-def.ts";

export const lenet5 = defineTemplate({
  name: "lenet5",
  title: "LeNet-5",
  description:
    "conv 6@5×5 → 2×2 average pool → conv 16@5×5 → 2×2 average pool → dense 120 → dense 84 → softmax, with tanh activations as in the original. " +
    "The first convolution is 'valid' from 32×32 up (as on the original 32×32 digits) and 'same' below, so 28×28 MNIST works. " +
    "Differences from the paper: C3 connects to all six maps (not a sparse table) and the RBF output is a softmax. Needs at least 12×12.",
  inputShapeMeaning: "[height, width, channels]",
  defaultInputShape: [28, 28, 1],
  defaultClasses: 10,
  params: z.object({}),
  build({ inputShape, classes }) {
    const { height, width } = imageShape(inputShape, 12, "two 5×5 convolutions and two 2×2 poolings");
    const pool = { type: "averagePooling2d", poolSize: 2, strides: 2 } as const;
    return finish({
      input: { shape: inputShape },
      layers: [
        { type: "conv2d", filters: 6, kernelSize: 5, padding: Math.min(height, width) >= 32 ? "valid" : "same", activation: "tanh" },
        pool,
        { type: "conv2d", filters: 16, kernelSize: 5, activation: "tanh" },
        pool,
        { type: "flatten" },
        { type: "dense", units: 120, activation: "tanh" },
        { type: "dense", units: 84, activation: "tanh" },
        classifierHead(classes),
      ],
    });
  },
});
