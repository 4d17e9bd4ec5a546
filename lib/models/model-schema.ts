import { z } from "zod";
import { modelSpecSchema } from "../spec/model-spec.ts";

export const modelNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/, "must be 1-100 letters, digits, '_', '.', '-', starting with a letter or digit");

export const createModelSchema = z.object({ name: modelNameSchema, spec: modelSpecSchema }).meta({ id: "CreateModel" });
export type CreateModel = z.infer<typeof createModelSchema>;

export const modelSchema = z
  .object({
    name: z.string(),
    spec: modelSpecSchema,
    paramCount: z.number().int(),
    inputShape: z.array(z.number().int()),
    outputShape: z.array(z.number().int()),
    latestVersion: z.number().int().nullable().describe("Version served by :predict; null until a training job succeeds."),
    createdAt: z.iso.datetime(),
  })
  .meta({ id: "Model" });
export type ModelView = z.infer<typeof modelSchema>;
