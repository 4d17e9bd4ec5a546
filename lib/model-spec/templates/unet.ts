// U-Net (Ronneberger et al. 2015): a contracting path, an expanding path of transposed
// convolutions, and skip connections that concatenate each encoder level onto the decoder level
// of the same size, which is what gives the per-pixel output its sharp edges.
import { z } from "zod";
import { GraphBuilder } from "./graph-builder.ts";
import { defineTemplate, finish, flagParam, imageShape, intParam, outputActivation, shapeError } from "./template-def.ts";

export const unet = defineTemplate({
  name: "unet",
  title: "U-Net",
  description:
    "Segmentation: `depth` encoder levels of two 3×3 convolutions (filters, 2×filters, …) and 2×2 max pooling, a bottleneck of two convolutions, " +
    "then as many decoder levels of a 2×2 stride-2 conv2dTranspose, concatenation with the encoder level of the same size, and two 3×3 convolutions; " +
    "a final 1×1 convolution gives `classes` channels per pixel with softmax (sigmoid when classes = 1). Output [height, width, classes]. " +
    "Convolutions are 'same', so the output is the size of the input (the paper's are 'valid' and crop the skips). " +
    "Height and width must be divisible by 2^depth. Default depth 3, 16 filters.",
  inputShapeMeaning: "[height, width, channels]",
  defaultInputShape: [32, 32, 3],
  defaultClasses: 2,
  params: z.object({
    depth: intParam(1, 6).default(3).describe("Encoder (and decoder) levels; the paper has 4."),
    filters: intParam(1, 128).default(16).describe("Filters of the first level, doubled at each level down; the paper has 64."),
    batchNorm: flagParam().default(false).describe("Batch normalization after each convolution."),
  }),
  build({ inputShape, classes, params }) {
    const { height, width } = imageShape(inputShape, 2 ** params.depth, `depth ${params.depth}`);
    const factor = 2 ** params.depth;
    if (height % factor !== 0 || width % factor !== 0) {
      throw shapeError(`U-Net with depth ${params.depth} needs height and width divisible by ${factor}; got ${height}×${width}`);
    }
    const g = new GraphBuilder({ image: { shape: inputShape } });
    const convPair = (name: string, from: string, filters: number) => {
      let x = from;
      for (const i of [1, 2]) {
        x = params.batchNorm
          ? g.convBn(`${name}_conv${i}`, x, { filters, kernelSize: 3 })
          : g.add(`${name}_conv${i}`, { type: "conv2d", filters, kernelSize: 3, padding: "same", activation: "relu", kernelInitializer: "heNormal" }, x);
      }
      return x;
    };
    const skips: string[] = [];
    let x = "image";
    for (let level = 0; level < params.depth; level++) {
      x = convPair(`encoder${level + 1}`, x, params.filters * 2 ** level);
      skips.push(x);
      x = g.add(`encoder${level + 1}_pool`, { type: "maxPooling2d", poolSize: 2, strides: 2 }, x);
    }
    x = convPair("bottleneck", x, params.filters * 2 ** params.depth);
    for (let level = params.depth - 1; level >= 0; level--) {
      const filters = params.filters * 2 ** level;
      const up = g.add(`decoder${level + 1}_up`, { type: "conv2dTranspose", filters, kernelSize: 2, strides: 2, padding: "same" }, x);
      const merged = g.add(`decoder${level + 1}_concat`, { type: "concatenate" }, [skips[level], up]);
      x = convPair(`decoder${level + 1}`, merged, filters);
    }
    g.add("output", { type: "conv2d", filters: classes, kernelSize: 1, activation: outputActivation(classes) }, x);
    return finish(g.spec(["output"]));
  },
});
