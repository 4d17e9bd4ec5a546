// Request/response shapes of the built-in data sets: the zod schemas the route and the OpenAPI file share.
import { z } from "zod";
import { datasetTaskSchema, inputKindSchema } from "../dataset-schema.ts";

export const builtinParameterSchema = z
  .object({
    name: z.string(),
    type: z.enum(["integer", "number"]),
    minimum: z.number(),
    maximum: z.number(),
    default: z.number(),
    description: z.string(),
  })
  .meta({ id: "BuiltinParameter" });

export const builtinDatasetSchema = z
  .object({
    name: z.string().describe("What to POST to /v1/datasets/builtin/{name}."),
    title: z.string(),
    description: z.string(),
    type: z.enum(["dataset", "generator"]).describe("dataset: real data the service ships or installs; generator: synthetic data, seeded."),
    source: z.string(),
    licence: z.string(),
    task: datasetTaskSchema,
    kind: inputKindSchema.describe("What the input holds, which decides its default preprocessing (image: scaled from 0–255 to [0, 1])."),
    rows: z.number().int().describe("Rows an import with the default parameters makes."),
    inputShape: z.array(z.number().int()).describe("Shape of one row, with the default parameters."),
    targetShape: z.array(z.number().int()).describe("Shape of one row's labels: [1] for a class, [H, W] for a mask."),
    classes: z.array(z.string()).describe("The classes, by id, with the default parameters."),
    parameters: z.array(builtinParameterSchema).describe("What the import body may set besides `name`, with bounds and defaults."),
  })
  .meta({ id: "BuiltinDataset" });
export type BuiltinDatasetView = z.infer<typeof builtinDatasetSchema>;

export const importBuiltinSchema = z
  .looseObject({
    name: z.string().trim().min(1, "must not be empty").max(200).optional().describe("Name of the new dataset (default: the built-in's name)."),
  })
  .describe("`name`, and the built-in's parameters by name (rows, noise, seed, …; GET /v1/datasets/builtin lists them). Omitted parameters take their defaults.")
  .meta({ id: "ImportBuiltinDataset" });
export type ImportBuiltin = z.infer<typeof importBuiltinSchema>;
