// EfficientNet (Tan & Le 2019): a stack of MBConv blocks — inverted bottlenecks with depthwise
// convolutions and squeeze-and-excitation — scaled in width and depth by two multipliers.
import { z } from "zod";
import { GraphBuilder } from "./graph-builder.ts";
import { classifierHead, defineTemplate, finish, imageShape, numberParam } from "./template-def.ts";

/** EfficientNet-B0's stages: expansion ratio, output channels, repeats, first stride, kernel size. */
const STAGES = [
  [1, 16, 1, 1, 3],
  [6, 24, 2, 2, 3],
  [6, 40, 2, 2, 5],
  [6, 80, 3, 2, 3],
  [6, 112, 3, 1, 5],
  [6, 192, 4, 2, 5],
  [6, 320, 1, 1, 3],
] as const;
const SE_RATIO = 0.25;

/** The reference implementation's rounding: to a multiple of 8, never more than 10% below the target. */
function roundFilters(channels: number, width: number): number {
  const target = channels * width;
  let rounded = Math.max(8, Math.floor((target + 4) / 8) * 8);
  if (rounded < 0.9 * target) rounded += 8;
  return rounded;
}

interface MbConv {
  inFilters: number;
  outFilters: number;
  expand: number;
  kernelSize: number;
  strides: number;
  /** Height and width after the depthwise convolution, which the excitation gate is spread over. */
  mapSize: [number, number];
}

function mbConv(g: GraphBuilder, name: string, from: string, b: MbConv): string {
  const expanded = b.inFilters * b.expand;
  let x = b.expand === 1 ? from : g.convBn(`${name}_expand`, from, { filters: expanded, kernelSize: 1, activation: "swish" });
  x = g.add(`${name}_dwconv`, { type: "depthwiseConv2d", kernelSize: b.kernelSize, strides: b.strides, padding: "same", useBias: false }, x);
  x = g.add(`${name}_dwconv_bn`, { type: "batchNormalization" }, x);
  x = g.add(`${name}_dwconv_swish`, { type: "activation", activation: "swish" }, x);
  // Squeeze-and-excitation: a per-channel gate in (0, 1) computed from the whole map. The spec's
  // `multiply` takes equal shapes only, so the [1, 1, C] gate is repeated over the map first.
  const squeezed = g.add(`${name}_se_squeeze`, { type: "globalAveragePooling2d" }, x);
  const reduced = g.add(`${name}_se_reduce`, { type: "dense", units: Math.max(1, Math.floor(b.inFilters * SE_RATIO)), activation: "swish" }, squeezed);
  const gate = g.add(`${name}_se_expand`, { type: "dense", units: expanded, activation: "sigmoid" }, reduced);
  const gate4d = g.add(`${name}_se_reshape`, { type: "reshape", targetShape: [1, 1, expanded] }, gate);
  const gateMap = g.add(`${name}_se_spread`, { type: "upSampling2d", size: b.mapSize }, gate4d);
  x = g.add(`${name}_se_excite`, { type: "multiply" }, [x, gateMap]);
  x = g.convBn(`${name}_project`, x, { filters: b.outFilters, kernelSize: 1, activation: "linear" });
  return b.strides === 1 && b.inFilters === b.outFilters ? g.add(`${name}_add`, { type: "add" }, [x, from]) : x;
}

export const efficientnet = defineTemplate({
  name: "efficientnet",
  title: "EfficientNet",
  description:
    "EfficientNet-B0's layout scaled by `width` (channels, rounded to multiples of 8) and `depth` (block repeats, rounded up): a 3×3 conv + BN + swish stem, " +
    "seven stages of MBConv blocks (1×1 expand conv ×6, depthwise k×k conv, squeeze-and-excitation by global average pooling → dense → dense sigmoid → reshape to [1, 1, C] → upSampling2d to the map's size → multiply, " +
    "1×1 linear projection, residual `add` when stride 1 and channels match), a 1×1 conv to 1280 × width, global average pooling, dropout 0.2 and softmax. " +
    "The stem has stride 2 from 64 px (as in the paper, total stride 32) and stride 1 below (total 16). Stochastic depth is left out. " +
    "Default width 0.5, depth 0.5 (10 blocks); width 1, depth 1 is B0. Needs at least 16×16.",
  inputShapeMeaning: "[height, width, channels]",
  defaultInputShape: [32, 32, 3],
  defaultClasses: 10,
  params: z.object({
    width: numberParam(0.1, 2).default(0.5).describe("Width coefficient: multiplies every stage's channels (B0 = 1)."),
    depth: numberParam(0.1, 3).default(0.5).describe("Depth coefficient: multiplies every stage's block repeats (B0 = 1)."),
  }),
  build({ inputShape, classes, params }) {
    const { height, width } = imageShape(inputShape, 16, "EfficientNet's four stride-2 stages");
    const stemStride = Math.min(height, width) >= 64 ? 2 : 1;
    const g = new GraphBuilder({ image: { shape: inputShape } });
    let mapSize: [number, number] = [Math.ceil(height / stemStride), Math.ceil(width / stemStride)];
    let inFilters = roundFilters(32, params.width);
    let x = g.convBn("stem", "image", { filters: inFilters, kernelSize: 3, strides: stemStride, activation: "swish" });
    STAGES.forEach(([expand, channels, repeats, strides, kernelSize], s) => {
      const outFilters = roundFilters(channels, params.width);
      for (let r = 0; r < Math.ceil(repeats * params.depth); r++) {
        const blockStrides = r === 0 ? strides : 1;
        mapSize = [Math.ceil(mapSize[0] / blockStrides), Math.ceil(mapSize[1] / blockStrides)];
        x = mbConv(g, `stage${s + 1}_block${r + 1}`, x, { inFilters, outFilters, expand, kernelSize, strides: blockStrides, mapSize });
        inFilters = outFilters;
      }
    });
    x = g.convBn("head", x, { filters: roundFilters(1280, params.width), kernelSize: 1, activation: "swish" });
    x = g.add("avg_pool", { type: "globalAveragePooling2d" }, x);
    x = g.add("dropout", { type: "dropout", rate: 0.2 }, x);
    g.add("output", classifierHead(classes), x);
    return finish(g.spec(["output"]));
  },
});
