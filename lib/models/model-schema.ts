import { z } from "zod";
import { modelSpecSchema } from "../spec/model-spec.ts";

export const modelNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/, "must be 1-100 letters, digits, '_', '.', '-', starting with a letter or digit");

export const createModelSchema = z.object({ name: modelNameSchema, spec: modelSpecSchema }).meta({ id: "CreateModel" });
export type CreateModel = z.infer<typeof createModelSchema>;

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
  })
  .meta({ id: "ModelSummary" });

export const validateModelResponseSchema = z
  .object({ valid: z.literal(true), inputShapes: z.array(shape), outputShapes: z.array(shape), summary: modelSummarySchema })
  .meta({ id: "ValidateModelResponse" });

export const modelSchema = z
  .object({
    name: z.string(),
    spec: modelSpecSchema,
    paramCount: z.number().int(),
    inputShape: shape.describe("Shape of the (first) input."),
    inputs: z.array(z.object({ name: z.string(), shape })).describe("Every input, in order; a dataset feeds them by name (a one-input model takes any one-input dataset)."),
    outputShape: shape.describe("Shape of the (first) output."),
    outputs: z.array(z.object({ name: z.string(), shape })).describe("Every output, in order; a dataset's labels train them by name (a one-output model takes any one-output dataset)."),
    latestVersion: z.number().int().nullable().describe("Version served by :predict; null until a training job succeeds."),
    createdAt: z.iso.datetime(),
  })
  .meta({ id: "Model" });
export type ModelView = z.infer<typeof modelSchema>;
