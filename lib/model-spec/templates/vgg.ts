// VGG (Simonyan & Zisserman 2014): only 3×3 convolutions and 2×2 max pooling, deepened by blocks.
import { z } from "zod";
import { fullyConnectedHead, defineTemplate, finish, flagParam, imageShape, intParam, numberParam, scaled, shapeError, type LayerInput } from "./template-def.ts";

/** Convolutions per block of each configuration in the paper (A, B, D, E). */
const VARIANTS = { vgg11: [1, 1, 2, 2, 2], vgg13: [2, 2, 2, 2, 2], vgg16: [2, 2, 3, 3, 3], vgg19: [2, 2, 4, 4, 4] } as const;
const BLOCK_FILTERS = [64, 128, 256, 512, 512];

export const vgg = defineTemplate({
  name: "vgg",
  title: "VGG",
  description:
    "Blocks of 3×3 'same' convolutions (64, 128, 256, 512, 512 filters × width), each followed by 2×2 max pooling, then dense 4096 × width, dropout 0.5, twice, and softmax. " +
    "Convolutions per block follow the variant (vgg16: 2, 2, 3, 3, 3). The number of blocks defaults to as many as the image can be halved, at most 5 " +
    "(32×32 → 5 blocks down to 1×1; 16×16 → 4). Default width 0.25 (16…128 filters, dense 1024); width 1 is the original.",
  inputShapeMeaning: "[height, width, channels]",
  defaultInputShape: [32, 32, 3],
  defaultClasses: 10,
  params: z.object({
    blocks: intParam(1, 5).optional().describe("Convolution blocks, each halving the image; default: as many as fit, at most 5."),
    variant: z.enum(Object.keys(VARIANTS) as [keyof typeof VARIANTS]).default("vgg16").describe("Convolutions per block: vgg11, vgg13, vgg16 or vgg19."),
    width: numberParam(0.05, 1).default(0.25).describe("Multiplier of filters and dense units; 1 is the original."),
    batchNorm: flagParam().default(false).describe("Batch normalization after each convolution (not in the original, but trains far more easily)."),
  }),
  build({ inputShape, classes, params }) {
    const { height, width } = imageShape(inputShape, 2, "one block of 2×2 pooling");
    const side = Math.min(height, width);
    const fit = Math.min(5, Math.floor(Math.log2(side)));
    const blocks = params.blocks ?? fit;
    if (blocks > fit) throw shapeError(`${height}×${width} is too small for ${blocks} blocks of 2×2 pooling (needs at least ${2 ** blocks}×${2 ** blocks}); pass blocks=${fit} or a larger image`);
    const layers: LayerInput[] = [];
    for (let b = 0; b < blocks; b++) {
      const filters = scaled(BLOCK_FILTERS[b], params.width);
      for (let c = 0; c < VARIANTS[params.variant][b]; c++) {
        if (params.batchNorm) layers.push({ type: "conv2d", filters, kernelSize: 3, padding: "same", useBias: false }, { type: "batchNormalization" }, { type: "activation", activation: "relu" });
        else layers.push({ type: "conv2d", filters, kernelSize: 3, padding: "same", activation: "relu" });
      }
      layers.push({ type: "maxPooling2d", poolSize: 2, strides: 2 });
    }
    layers.push(...fullyConnectedHead(params.width, classes));
    return finish({ input: { shape: inputShape }, layers });
  },
});
