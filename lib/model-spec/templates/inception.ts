// GoogLeNet (Szegedy et al. 2014): nine Inception modules, each running 1×1, 3×3 and 5×5
// convolutions and a pooling side by side and concatenating them, with 1×1 reductions in front of
// the large kernels to keep the cost down.
import { z } from "zod";
import { GraphBuilder } from "./graph-builder.ts";
import { classifierHead, defineTemplate, finish, imageShape, numberParam, scaled } from "./template-def.ts";

/** Filters of each module in the paper's table 1: 1×1, 3×3 reduce, 3×3, 5×5 reduce, 5×5, pool projection. */
const MODULES: Record<string, [number, number, number, number, number, number]> = {
  "3a": [64, 96, 128, 16, 32, 32],
  "3b": [128, 128, 192, 32, 96, 64],
  "4a": [192, 96, 208, 16, 48, 64],
  "4b": [160, 112, 224, 24, 64, 64],
  "4c": [128, 128, 256, 24, 64, 64],
  "4d": [112, 144, 288, 32, 64, 64],
  "4e": [256, 160, 320, 32, 128, 128],
  "5a": [256, 160, 320, 32, 128, 128],
  "5b": [384, 192, 384, 48, 128, 128],
};

const conv = (filters: number, kernelSize: number, strides = 1) => ({ type: "conv2d", filters, kernelSize, strides, padding: "same", activation: "relu" }) as const;
const pool = (strides: number) => ({ type: "maxPooling2d", poolSize: 3, strides, padding: "same" }) as const;

function inceptionModule(g: GraphBuilder, id: string, from: string, width: number): string {
  const [c1, c3r, c3, c5r, c5, pp] = MODULES[id].map((f) => scaled(f, width));
  const name = `inception_${id}`;
  const b1 = g.add(`${name}_1x1`, conv(c1, 1), from);
  const b3 = g.add(`${name}_3x3`, conv(c3, 3), g.add(`${name}_3x3_reduce`, conv(c3r, 1), from));
  const b5 = g.add(`${name}_5x5`, conv(c5, 5), g.add(`${name}_5x5_reduce`, conv(c5r, 1), from));
  const bp = g.add(`${name}_pool_proj`, conv(pp, 1), g.add(`${name}_pool`, pool(1), from));
  return g.add(`${name}_output`, { type: "concatenate" }, [b1, b3, b5, bp]);
}

export const inception = defineTemplate({
  name: "inception",
  title: "Inception (GoogLeNet)",
  description:
    "GoogLeNet: a stem, then Inception modules 3a-3b, 3×3/2 max pool, 4a-4e, max pool, 5a-5b, global average pooling, dropout 0.4 and softmax. " +
    "Each module concatenates four branches: 1×1; 1×1 → 3×3; 1×1 → 5×5; 3×3 max pool → 1×1, with the paper's filter counts × width. " +
    "The stem follows the image: from 128 px the paper's (7×7/2 conv, pool, 1×1, 3×3, pool: /8), from 64 px the same with a 3×3/1 first conv (/4), " +
    "below one 3×3 convolution (CIFAR-style, no downsampling). Default width 0.25. Local response normalization and the two auxiliary classifiers are left out. Needs at least 8×8.",
  inputShapeMeaning: "[height, width, channels]",
  defaultInputShape: [32, 32, 3],
  defaultClasses: 10,
  params: z.object({
    width: numberParam(0.05, 1).default(0.25).describe("Multiplier of every module's filters; 1 is the original."),
  }),
  build({ inputShape, classes, params }) {
    const { height, width } = imageShape(inputShape, 8, "GoogLeNet's two poolings between module stages");
    const side = Math.min(height, width);
    const g = new GraphBuilder({ image: { shape: inputShape } });
    let x: string;
    if (side >= 64) {
      x = g.add("conv1", side >= 128 ? conv(scaled(64, params.width), 7, 2) : conv(scaled(64, params.width), 3), "image");
      x = g.add("pool1", pool(2), x);
      x = g.add("conv2_reduce", conv(scaled(64, params.width), 1), x);
      x = g.add("conv2", conv(scaled(192, params.width), 3), x);
      x = g.add("pool2", pool(2), x);
    } else {
      x = g.add("conv1", conv(scaled(192, params.width), 3), "image");
    }
    for (const id of ["3a", "3b"]) x = inceptionModule(g, id, x, params.width);
    x = g.add("pool3", pool(2), x);
    for (const id of ["4a", "4b", "4c", "4d", "4e"]) x = inceptionModule(g, id, x, params.width);
    x = g.add("pool4", pool(2), x);
    for (const id of ["5a", "5b"]) x = inceptionModule(g, id, x, params.width);
    x = g.add("avg_pool", { type: "globalAveragePooling2d" }, x);
    x = g.add("dropout", { type: "dropout", rate: 0.4 }, x);
    g.add("output", classifierHead(classes), x);
    return finish(g.spec(["output"]));
  },
});
