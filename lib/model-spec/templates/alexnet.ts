// AlexNet (Krizhevsky et al. 2012), scaled to the input: the 11×11 stride-4 stem and three
// overlapping poolings only make sense on ImageNet-sized images; on 32×32 they would leave nothing.
import { z } from "zod";
import { fullyConnectedHead, defineTemplate, finish, imageShape, numberParam, scaled, type LayerInput } from "./template-def.ts";

/** The stem by image size: kernel and stride shrink with the image. */
function stemFor(side: number): { kernelSize: number; strides: number } {
  if (side >= 128) return { kernelSize: 11, strides: 4 };
  if (side >= 64) return { kernelSize: 7, strides: 2 };
  return { kernelSize: 5, strides: 1 };
}

export const alexnet = defineTemplate({
  name: "alexnet",
  title: "AlexNet",
  description:
    "Five convolutions (96, 256, 384, 384, 256 filters × width) with overlapping 3×3/2 max pooling, then dense 4096 × width, dropout 0.5, twice, and softmax. " +
    "Scaled to the input: from 128 px the stem is 11×11 stride 4 as in the paper, from 64 px 7×7 stride 2, below 5×5 stride 1; " +
    "there are three poolings when the map after the stem is at least 16 px, else two. Convolutions are 'same', poolings 'valid' (224 px ends in the paper's 6×6×256); " +
    "local response normalization is left out. Default width 0.25 (24-64-96-96-64 filters, dense 1024); width 1 is the original " +
    "(62 M parameters at 224×224 with 1000 classes, above the default TRAINYARD_MAX_PARAMS). Needs at least 8×8.",
  inputShapeMeaning: "[height, width, channels]",
  defaultInputShape: [32, 32, 3],
  defaultClasses: 10,
  params: z.object({
    width: numberParam(0.05, 1).default(0.25).describe("Multiplier of filters and dense units; 1 is the original."),
  }),
  build({ inputShape, classes, params }) {
    const { height, width: w } = imageShape(inputShape, 8, "AlexNet's poolings");
    const side = Math.min(height, w);
    const stem = stemFor(side);
    const afterStem = Math.ceil(side / stem.strides);
    // Pool after conv1 only when the map is big enough to be pooled three times and keep a pixel.
    const poolAfter = afterStem >= 16 ? new Set([0, 1, 4]) : new Set([1, 4]);
    const filters = [96, 256, 384, 384, 256].map((f) => scaled(f, params.width));
    const kernels = [stem.kernelSize, 5, 3, 3, 3];
    const layers: LayerInput[] = [];
    filters.forEach((f, i) => {
      layers.push({ type: "conv2d", filters: f, kernelSize: kernels[i], strides: i === 0 ? stem.strides : 1, padding: "same", activation: "relu" });
      if (poolAfter.has(i)) layers.push({ type: "maxPooling2d", poolSize: 3, strides: 2 });
    });
    layers.push(...fullyConnectedHead(params.width, classes));
    return finish({ input: { shape: inputShape }, layers });
  },
});
