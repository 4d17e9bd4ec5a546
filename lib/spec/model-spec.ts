// The model spec language: a network described as data. This zod schema is the single source of
// truth for validation, TypeScript types and the OpenAPI description (a union discriminated by
// `type`, so clients see every layer's fields).
import { z } from "zod";

const positiveInt = (what: string) => z.number({ error: `expected ${what}` }).int(`expected ${what}`).positive(`expected ${what}`);

export const ACTIVATIONS = ["sigmoid", "tanh", "relu", "leakyRelu", "softmax", "linear"] as const;
export const activationSchema = z.enum(ACTIVATIONS, {
  error: `must be one of ${ACTIVATIONS.join(", ")}`,
});
export type Activation = z.infer<typeof activationSchema>;

export const denseLayerSchema = z
  .object({
    type: z.literal("dense"),
    units: positiveInt("a positive integer"),
    activation: activationSchema.default("linear"),
    useBias: z.boolean().default(true),
  })
  .meta({ id: "DenseLayer", description: "Fully connected layer: activation(x·W + b)." });

export const dropoutLayerSchema = z
  .object({
    type: z.literal("dropout"),
    rate: z.number({ error: "expected a number" }).min(0, "must be >= 0").lt(1, "must be < 1"),
  })
  .meta({ id: "DropoutLayer", description: "Inverted dropout: zeroes a `rate` fraction of units while training and scales the rest by 1/(1-rate)." });

export const batchNormalizationLayerSchema = z
  .object({
    type: z.literal("batchNormalization"),
    momentum: z.number().gt(0, "must be > 0").lt(1, "must be < 1").default(0.99),
    epsilon: z.number().positive("must be > 0").default(1e-3),
  })
  .meta({ id: "BatchNormalizationLayer", description: "Normalizes each feature over the batch while training, with moving statistics at inference." });

export const activationLayerSchema = z
  .object({
    type: z.literal("activation"),
    activation: activationSchema,
    alpha: z.number().min(0).optional().describe("Negative slope, for leakyRelu (default 0.2)."),
  })
  .meta({ id: "ActivationLayer", description: "Applies an activation function on its own." });

export const layerSpecSchema = z
  .discriminatedUnion("type", [denseLayerSchema, dropoutLayerSchema, batchNormalizationLayerSchema, activationLayerSchema], {
    error: (issue) =>
      issue.code === "invalid_union" ? `unknown layer type; expected one of dense, dropout, batchNormalization, activation` : undefined,
  })
  .meta({ id: "LayerSpec" });
export type LayerSpec = z.infer<typeof layerSpecSchema>;

export const modelSpecSchema = z
  .object({
    input: z.object({
      shape: z.array(positiveInt("a positive integer"), { error: "expected an array of positive integers" }).min(1, "must have at least one dimension").max(8),
    }),
    layers: z.array(layerSpecSchema).min(1, "must have at least one layer").max(1000, "at most 1000 layers"),
  })
  .meta({ id: "ModelSpec", description: "A network as a stack of layers applied in order to an input of the given shape (batch dimension excluded)." });
export type ModelSpec = z.infer<typeof modelSpecSchema>;
