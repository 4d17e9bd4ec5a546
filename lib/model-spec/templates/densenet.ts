// DenseNet-BC (Huang et al. 2016): inside a dense block every layer sees the concatenation of all
// earlier feature maps; transition layers between blocks compress the channels and halve the map.
import { z } from "zod";
import { GraphBuilder } from "./graph-builder.ts";
import { classifierHead, defineTemplate, finish, flagParam, imageShape, intParam, numberParam } from "./template-def.ts";

/** batchNormalization → relu → conv, the pre-activation order DenseNet uses throughout. */
function bnReluConv(g: GraphBuilder, name: string, from: string, filters: number, kernelSize: number): string {
  const bn = g.add(`${name}_bn`, { type: "batchNormalization" }, from);
  const relu = g.add(`${name}_relu`, { type: "activation", activation: "relu" }, bn);
  return g.add(`${name}_conv`, { type: "conv2d", filters, kernelSize, padding: "same", useBias: false, kernelInitializer: "heNormal" }, relu);
}

export const densenet = defineTemplate({
  name: "densenet",
  title: "DenseNet",
  description:
    "DenseNet-BC: a 3×3 convolution of 2×growthRate filters, then `blocks` dense blocks of `layersPerBlock` layers " +
    "(BN-relu-1×1 conv of 4×growthRate bottleneck, BN-relu-3×3 conv of growthRate, concatenated onto the block's running input), " +
    "with transition layers between blocks (BN-relu-1×1 conv keeping `compression` of the channels, 2×2 average pool), then BN-relu, global average pooling and softmax. " +
    "From 128 px the ImageNet stem (7×7/2 conv, 3×3/2 max pool) is used. Default growthRate 12, 3 blocks of 4 layers; " +
    "the image must be at least 2^(blocks-1) px.",
  inputShapeMeaning: "[height, width, channels]",
  defaultInputShape: [32, 32, 3],
  defaultClasses: 10,
  params: z.object({
    growthRate: intParam(1, 64).default(12).describe("Channels each layer adds (k)."),
    blocks: intParam(1, 5).default(3).describe("Dense blocks; each transition between two halves the image."),
    layersPerBlock: intParam(1, 32).default(4).describe("Layers in each dense block."),
    compression: numberParam(0.1, 1).default(0.5).describe("Fraction of channels a transition layer keeps (θ)."),
    bottleneck: flagParam().default(true).describe("1×1 bottleneck convolution before each 3×3 (the B in DenseNet-BC)."),
  }),
  build({ inputShape, classes, params }) {
    const { height, width } = imageShape(inputShape, 2 ** (params.blocks - 1), `${params.blocks} dense blocks with 2×2 pooling between them`);
    const imagenetStem = Math.min(height, width) >= 128;
    const k = params.growthRate;
    const g = new GraphBuilder({ image: { shape: inputShape } });
    let x = g.add("stem_conv", { type: "conv2d", filters: 2 * k, kernelSize: imagenetStem ? 7 : 3, strides: imagenetStem ? 2 : 1, padding: "same", useBias: false, kernelInitializer: "heNormal" }, "image");
    if (imagenetStem) {
      x = g.add("stem_bn", { type: "batchNormalization" }, x);
      x = g.add("stem_relu", { type: "activation", activation: "relu" }, x);
      x = g.add("stem_pool", { type: "maxPooling2d", poolSize: 3, strides: 2, padding: "same" }, x);
    }
    let channels = 2 * k;
    for (let b = 1; b <= params.blocks; b++) {
      for (let l = 1; l <= params.layersPerBlock; l++) {
        const name = `block${b}_layer${l}`;
        const inner = params.bottleneck ? bnReluConv(g, `${name}_bottleneck`, x, 4 * k, 1) : x;
        const grown = bnReluConv(g, name, inner, k, 3);
        x = g.add(`${name}_concat`, { type: "concatenate" }, [x, grown]);
        channels += k;
      }
      if (b < params.blocks) {
        channels = Math.max(1, Math.floor(channels * params.compression));
        x = bnReluConv(g, `transition${b}`, x, channels, 1);
        x = g.add(`transition${b}_pool`, { type: "averagePooling2d", poolSize: 2, strides: 2 }, x);
      }
    }
    x = g.add("final_bn", { type: "batchNormalization" }, x);
    x = g.add("final_relu", { type: "activation", activation: "relu" }, x);
    x = g.add("avg_pool", { type: "globalAveragePooling2d" }, x);
    g.add("output", classifierHead(classes), x);
    return finish(g.spec(["output"]));
  },
});
