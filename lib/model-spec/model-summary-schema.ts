// What a built spec amounts to, layer by layer: shapes, parameters, FLOPs and memory. The engine
// computes it; :validate answers it (named ModelSummary in lib/registry/model-schema.ts, where
// the API's schemas take their OpenAPI names in order); the limits are checked against it.
import { z } from "zod";

const shape = z.array(z.number().int().nullable()).describe("Without the batch axis; null is a free dimension.");

export const modelSummarySchema = z
  .object({
    layers: z.array(
      z.object({
        name: z.string(),
        type: z.string(),
        path: z.string().describe("Where the layer is in the spec, e.g. spec.layers[2] or spec.nodes.res2_add."),
        outputShape: shape,
        params: z.number().int(),
        flops: z.number().describe("Estimated forward FLOPs per sample (a multiply-add counts 2)."),
      }),
    ),
    totalParams: z.number().int(),
    trainableParams: z.number().int(),
    flopsPerSample: z.number(),
    weightBytes: z.number().int(),
    activationBytesPerSample: z.number().int().describe("float32 activations of one sample's forward pass; free dimensions counted as 1."),
  });
export type ModelSummary = z.infer<typeof modelSummarySchema>;
export type LayerSummary = ModelSummary["layers"][number];
