// Request/response shapes for datasets: the zod schemas the routes and the OpenAPI file share.
import { z } from "zod";

type Nested = number | Nested[];
const nested: z.ZodType<Nested> = z.lazy(() => z.union([z.number(), z.array(nested)]));

export const datasetTaskSchema = z.enum(["classification", "regression"]);

export const createDatasetJsonSchema = z
  .object({
    name: z.string().trim().min(1, "must not be empty").max(200),
    features: z
      .array(z.array(nested), { error: "expected an array of rows" })
      .min(1, "must have at least one row")
      .describe("One entry per row: numbers, or nested arrays for images and sequences (e.g. 28×28×1)."),
    inputShape: z.array(z.number().int().positive()).min(1).optional().describe("Reshapes flat rows, e.g. 784 numbers per row as [28, 28, 1]."),
    labels: z.array(z.union([z.string(), z.number()]), { error: "expected an array of strings or numbers" }),
    task: datasetTaskSchema.optional().describe("Default: classification when labels are strings, regression when numbers."),
    featureNames: z.array(z.string()).optional(),
  })
  .meta({ id: "CreateDataset" });
export type CreateDatasetJson = z.infer<typeof createDatasetJsonSchema>;

export const createDatasetCsvQuerySchema = z.object({
  name: z.string().trim().min(1).max(200).optional().describe("Dataset name (CSV uploads)."),
  label: z.string().min(1).optional().describe("The CSV column that holds the label (CSV uploads)."),
  task: datasetTaskSchema.optional().describe("Default: classification when the label column has text, regression when numbers."),
});

export const datasetSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    task: datasetTaskSchema,
    rows: z.number().int(),
    inputShape: z.array(z.number().int()),
    classes: z.array(z.string()),
    featureNames: z.array(z.string()),
    targetSize: z.number().int(),
    createdAt: z.iso.datetime(),
  })
  .meta({ id: "Dataset" });
export type DatasetView = z.infer<typeof datasetSchema>;
