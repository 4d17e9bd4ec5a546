// ResNet (He et al. 2015), the CIFAR variant of section 4.2: 6n+2 layers in three stages of n basic
// blocks. A 1×1 projection shortcut (option B) is used where a block changes the shape, so every
// `add` meets equal shapes.
import { z } from "zod";
import { GraphBuilder } from "./graph-builder.ts";
import { classifierHead, defineTemplate, finish, imageShape, intParam } from "./template-def.ts";

function basicBlock(g: GraphBuilder, name: string, from: string, inFilters: number, filters: number, strides: number): string {
  const a = g.convBn(`${name}_conv1`, from, { filters, kernelSize: 3, strides });
  const b = g.convBn(`${name}_conv2`, a, { filters, kernelSize: 3, activation: "linear" });
  const shortcut = strides !== 1 || inFilters !== filters ? g.convBn(`${name}_projection`, from, { filters, kernelSize: 1, strides, activation: "linear" }) : from;
  const sum = g.add(`${name}_add`, { type: "add" }, [b, shortcut]);
  return g.add(`${name}_relu`, { type: "activation", activation: "relu" }, sum);
}

export const resnet = defineTemplate({
  name: "resnet",
  title: "ResNet",
  description:
    "CIFAR-style residual network of depth 6n+2 (8, 14, 20, 32, 44, 56, 110): a 3×3 convolution, three stages of n basic blocks " +
    "(two 3×3 conv + batch norm, identity shortcut, `add`, relu) with width, 2×width, 4×width filters, the second and third stage starting at stride 2 " +
    "with a 1×1 projection shortcut; then global average pooling and softmax. From 128 px the ImageNet stem (7×7/2 conv, 3×3/2 max pool) is used instead. " +
    "Default depth 20, width 16 (ResNet-20, 0.27 M parameters). Needs at least 8×8.",
  inputShapeMeaning: "[height, width, channels]",
  defaultInputShape: [32, 32, 3],
  defaultClasses: 10,
  params: z.object({
    depth: intParam(8, 110)
      .refine((d) => (d - 2) % 6 === 0, "must be 6n+2: 8, 14, 20, 26, 32, 44, 56 or 110")
      .default(20)
      .describe("Layers with weights, 6n+2: n basic blocks per stage."),
    width: intParam(4, 128).default(16).describe("Filters of the first stage; the next two double it."),
  }),
  build({ inputShape, classes, params }) {
    const { height, width } = imageShape(inputShape, 8, "ResNet's two stride-2 stages");
    const imagenetStem = Math.min(height, width) >= 128;
    const g = new GraphBuilder({ image: { shape: inputShape } });
    let x = g.convBn("stem", "image", { filters: params.width, kernelSize: imagenetStem ? 7 : 3, strides: imagenetStem ? 2 : 1 });
    if (imagenetStem) x = g.add("stem_pool", { type: "maxPooling2d", poolSize: 3, strides: 2, padding: "same" }, x);
    const n = (params.depth - 2) / 6;
    let inFilters = params.width;
    for (let stage = 0; stage < 3; stage++) {
      const filters = params.width * 2 ** stage;
      for (let block = 0; block < n; block++) {
        x = basicBlock(g, `stage${stage + 1}_block${block + 1}`, x, inFilters, filters, stage > 0 && block === 0 ? 2 : 1);
        inFilters = filters;
      }
    }
    x = g.add("avg_pool", { type: "globalAveragePooling2d" }, x);
    g.add("output", classifierHead(classes), x);
    return finish(g.spec(["output"]));
  },
});
