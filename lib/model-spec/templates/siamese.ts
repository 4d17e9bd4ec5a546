// A siamese network (Bromley et al. 1993; Koch et al. 2015): one encoder applied to two inputs with
// the same weights, and the distance between the two embeddings as the output. The right branch is
// written as `shared` nodes of the left one, so the two can never drift apart.
import { z } from "zod";
import { GraphBuilder } from "./graph-builder.ts";
import { defineTemplate, finish, intParam, numberParam, shapeError, type LayerInput } from "./template-def.ts";

/** The encoder as a chain of layers; the graph applies it twice. */
function encoder(inputShape: number[], embeddingSize: number): { name: string; layer: LayerInput }[] {
  const chain: { name: string; layer: LayerInput }[] = [];
  if (inputShape.length === 1) {
    chain.push({ name: "dense1", layer: { type: "dense", units: 128, activation: "relu" } });
  } else if (inputShape.length === 3) {
    const side = Math.min(inputShape[0], inputShape[1]);
    if (side < 8) throw shapeError(`${inputShape[0]}×${inputShape[1]} is too small: the siamese encoder's pooling needs at least 8×8`);
    // Halve until the map is at most 8 px, so the flattened size stays modest on large images.
    const stages = Math.min(4, Math.max(1, Math.ceil(Math.log2(side / 8))));
    for (let s = 1; s <= stages; s++) {
      chain.push({ name: `conv${s}`, layer: { type: "conv2d", filters: Math.min(128, 16 * 2 ** s), kernelSize: 3, padding: "same", activation: "relu" } });
      chain.push({ name: `pool${s}`, layer: { type: "maxPooling2d", poolSize: 2, strides: 2 } });
    }
    chain.push({ name: "flatten", layer: { type: "flatten" } });
  } else {
    throw shapeError(`expected [features] or [height, width, channels]; got [${inputShape.join(", ")}]`);
  }
  chain.push({ name: "embedding", layer: { type: "dense", units: embeddingSize } });
  return chain;
}

export const siamese = defineTemplate({
  name: "siamese",
  title: "Siamese network",
  description:
    "Two inputs, `left` and `right`, of the same shape go through one shared encoder (images: one to four stages of 3×3 conv + 2×2 max pool with 32, 64, 128, 128 filters, " +
    "as many as bring the map to at most 8 px, then flatten; vectors: dense 128 relu) to a dense embedding, and a `distance` node outputs their distance, shape [1]. " +
    "Train with label 0 for matching pairs and 1 for different ones: the contrastive loss pulls matching pairs together and pushes different ones at least `margin` apart (Hadsell et al. 2006); a pair counts as matching below half the margin. " +
    "`classes` is not used. Images need at least 8×8.",
  inputShapeMeaning: "[features] or [height, width, channels], for each of the two inputs",
  defaultInputShape: [28, 28, 1],
  defaultClasses: 1,
  params: z.object({
    metric: z.enum(["euclidean", "manhattan", "cosine"]).default("euclidean").describe("Distance between the two embeddings."),
    embeddingSize: intParam(2, 1024).default(32).describe("Units of the embedding each input is mapped to."),
    margin: numberParam(0.001, 1000).default(1).describe("Contrastive loss: how far apart different pairs are pushed."),
  }),
  build({ inputShape, params }) {
    const g = new GraphBuilder({ left: { shape: inputShape }, right: { shape: inputShape } });
    let left = "left";
    let right = "right";
    for (const { name, layer } of encoder(inputShape, params.embeddingSize)) {
      left = g.add(`left_${name}`, layer, left);
      right = g.shared(`right_${name}`, left, right);
    }
    g.add("distance", { type: "distance", metric: params.metric }, [left, right]);
    return finish(g.spec(["distance"], { loss: "contrastive", margin: params.margin }));
  },
});
