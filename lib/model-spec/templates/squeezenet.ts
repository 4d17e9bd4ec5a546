// SqueezeNet 1.1 (Iandola et al. 2016): AlexNet-level accuracy from fire modules, which squeeze the
// channels with 1×1 convolutions before expanding them with parallel 1×1 and 3×3 ones.
import { z } from "zod";
import { GraphBuilder } from "./graph-builder.ts";
import { defineTemplate, finish, imageShape, outputActivation } from "./template-def.ts";

const relu = "relu" as const;

function fire(g: GraphBuilder, name: string, from: string, squeeze: number, expand: number): string {
  const s = g.add(`${name}_squeeze`, { type: "conv2d", filters: squeeze, kernelSize: 1, activation: relu }, from);
  const e1 = g.add(`${name}_expand1x1`, { type: "conv2d", filters: expand, kernelSize: 1, activation: relu }, s);
  const e3 = g.add(`${name}_expand3x3`, { type: "conv2d", filters: expand, kernelSize: 3, padding: "same", activation: relu }, s);
  return g.add(`${name}_concat`, { type: "concatenate" }, [e1, e3]);
}

export const squeezenet = defineTemplate({
  name: "squeezenet",
  title: "SqueezeNet",
  description:
    "SqueezeNet 1.1: 3×3 conv of 64, then fire modules 2-9 (squeeze 1×1 of 16…64 filters, expand 1×1 and 3×3 of 64…256 each, concatenated) " +
    "with 3×3/2 max pools after conv1, fire3 and fire5, dropout 0.5, a 1×1 convolution to `classes` channels, global average pooling and softmax (no fully connected layer). " +
    "The first convolution has stride 2 from 64 px and stride 1 below; all convolutions and pools are 'same'. " +
    "The final convolution is linear (the paper's relu there would pin a sigmoid output at ≥ 0.5). Needs at least 8×8.",
  inputShapeMeaning: "[height, width, channels]",
  defaultInputShape: [32, 32, 3],
  defaultClasses: 10,
  params: z.object({}),
  build({ inputShape, classes }) {
    const { height, width } = imageShape(inputShape, 8, "SqueezeNet's three poolings");
    const g = new GraphBuilder({ image: { shape: inputShape } });
    const pool = { type: "maxPooling2d", poolSize: 3, strides: 2, padding: "same" } as const;
    let x = g.add("conv1", { type: "conv2d", filters: 64, kernelSize: 3, strides: Math.min(height, width) >= 64 ? 2 : 1, padding: "same", activation: relu }, "image");
    x = g.add("pool1", pool, x);
    x = fire(g, "fire2", x, 16, 64);
    x = fire(g, "fire3", x, 16, 64);
    x = g.add("pool3", pool, x);
    x = fire(g, "fire4", x, 32, 128);
    x = fire(g, "fire5", x, 32, 128);
    x = g.add("pool5", pool, x);
    x = fire(g, "fire6", x, 48, 192);
    x = fire(g, "fire7", x, 48, 192);
    x = fire(g, "fire8", x, 64, 256);
    x = fire(g, "fire9", x, 64, 256);
    x = g.add("dropout", { type: "dropout", rate: 0.5 }, x);
    x = g.add("conv10", { type: "conv2d", filters: classes, kernelSize: 1 }, x);
    x = g.add("avg_pool", { type: "globalAveragePooling2d" }, x);
    g.add("output", { type: "activation", activation: outputActivation(classes) }, x);
    return finish(g.spec(["output"]));
  },
});
