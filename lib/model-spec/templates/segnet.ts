// SegNet (Badrinarayanan et al. 2015): an encoder-decoder without skip connections; the decoder
// recovers resolution by upsampling alone.
import { z } from "zod";
import { defineTemplate, finish, imageShape, intParam, outputActivation, shapeError, type LayerInput } from "./template-def.ts";

export const segnet = defineTemplate({
  name: "segnet",
  title: "SegNet",
  description:
    "Segmentation: `depth` encoder levels of `convsPerLevel` 3×3 conv + batch norm + relu and 2×2 max pooling (filters, 2×filters, …), " +
    "then mirrored decoder levels of 2× upSampling2d and the same convolutions, and a 1×1 convolution to `classes` channels per pixel with softmax " +
    "(sigmoid when classes = 1); no skip connections. Output [height, width, classes]. " +
    "The paper upsamples with the encoder's max-pooling indices; here it is nearest-neighbour upsampling. " +
    "Height and width must be divisible by 2^depth. Default depth 3, 16 filters, 2 convolutions per level.",
  inputShapeMeaning: "[height, width, channels]",
  defaultInputShape: [32, 32, 3],
  defaultClasses: 2,
  params: z.object({
    depth: intParam(1, 6).default(3).describe("Encoder (and decoder) levels; the paper has 5."),
    filters: intParam(1, 128).default(16).describe("Filters of the first level, doubled at each level down; the paper has 64."),
    convsPerLevel: intParam(1, 4).default(2).describe("Convolutions per level (the paper uses 2 or 3)."),
  }),
  build({ inputShape, classes, params }) {
    const { height, width } = imageShape(inputShape, 2 ** params.depth, `depth ${params.depth}`);
    const factor = 2 ** params.depth;
    if (height % factor !== 0 || width % factor !== 0) {
      throw shapeError(`SegNet with depth ${params.depth} needs height and width divisible by ${factor}; got ${height}×${width}`);
    }
    const layers: LayerInput[] = [];
    const convs = (filters: number) => {
      for (let i = 0; i < params.convsPerLevel; i++) {
        layers.push(
          { type: "conv2d", filters, kernelSize: 3, padding: "same", useBias: false, kernelInitializer: "heNormal" },
          { type: "batchNormalization" },
          { type: "activation", activation: "relu" },
        );
      }
    };
    for (let level = 0; level < params.depth; level++) {
      convs(params.filters * 2 ** level);
      layers.push({ type: "maxPooling2d", poolSize: 2, strides: 2 });
    }
    for (let level = params.depth - 1; level >= 0; level--) {
      layers.push({ type: "upSampling2d", size: 2 });
      convs(params.filters * 2 ** level);
    }
    layers.push({ type: "conv2d", filters: classes, kernelSize: 1, activation: outputActivation(classes) });
    return finish({ input: { shape: inputShape }, layers });
  },
});
