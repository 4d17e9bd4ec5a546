// Request/response shapes for datasets: the zod schemas the routes and the OpenAPI file share.
import { z } from "zod";
import { nodeName } from "../model-spec/model-spec-schema.ts";
import { taskSchema } from "../model-spec/objectives.ts";
import { nestedLabelsSchema, nestedNumbersSchema } from "./nested.ts";
import { preprocessingFieldSchema } from "./preprocessing/preprocessing-schema.ts";

export const datasetTaskSchema = taskSchema;
export type { Task } from "../model-spec/objectives.ts";

const labelsSchema = z.array(nestedLabelsSchema, { error: "expected an array of labels, one per row" });

const rowsSchema = (what: string) =>
  z.array(z.array(nestedNumbersSchema), { error: `expected an array of rows${what}` }).min(1, "must have at least one row");

/** One cell of a table: a number, a string (a category, or a number written as text), or null for a missing value. */
const tableCellSchema = z.union([z.number(), z.string(), z.null()], { error: "expected a number, a string or null" });

/** Longest `sequenceLength` of a `sequences` upload. */
export const MAX_SEQUENCE_LENGTH = 65_536;

export const createDatasetJsonSchema = z
  .object({
    name: z.string().trim().min(1, "must not be empty").max(200),
    features: rowsSchema("")
      .optional()
      .describe("One input: one entry per row, numbers or nested arrays for images and sequences (e.g. 28×28×1). Give one of `features`, `inputs`, `rows`, `columns` or `sequences`."),
    inputs: z
      .record(nodeName, rowsSchema(" for this input"))
      .optional()
      .describe("Several inputs (a siamese pair, an image with metadata): rows per input name, matched to the names of a graph spec's `inputs`. Give one of `features`, `inputs`, `rows`, `columns` or `sequences`."),
    rows: z
      .array(z.record(z.string(), tableCellSchema), { error: "expected an array of objects, one per row" })
      .min(1, "must have at least one row")
      .optional()
      .describe("A table, one object of column values per row (every row the same keys): numbers become numeric columns, text categorical ones, null is missing; the `label` column holds the labels. Instead of `features` and `labels`."),
    columns: z
      .record(z.string(), z.array(tableCellSchema, { error: "expected an array of values, one per row" }))
      .optional()
      .describe("A table, one array of values per column (all the same length), read as `rows` are. Instead of `features` and `labels`."),
    label: z.string().min(1).optional().describe("`rows` and `columns`: the column that holds the labels (default: the last)."),
    categorical: z.array(z.string()).optional().describe("`rows` and `columns`: columns to treat as categories even if they hold numbers."),
    missing: z
      .enum(["error", "impute"])
      .optional()
      .describe("`rows` and `columns`: missing values (null, \"\", \"NA\", ...) are an error (default), or kept and filled in by preprocessing (impute)."),
    sequences: z
      .array(z.array(nestedNumbersSchema), { error: "expected an array of sequences, one per row" })
      .min(1, "must have at least one row")
      .optional()
      .describe("Sequences of different lengths, one per row: token ids ([3, 1, 4]) or steps of features ([[0.1, 2], [0.3, 1]]), padded with 0 (token id 0 is padding) or truncated to `sequenceLength`. Instead of `features`."),
    sequenceLength: z.number().int().positive().max(MAX_SEQUENCE_LENGTH).optional().describe("`sequences`: the length every sequence is padded or truncated to (default: the longest)."),
    padding: z.enum(["post", "pre"]).optional().describe("`sequences`: pad at the end (post, default) or at the start (pre)."),
    truncating: z.enum(["post", "pre"]).optional().describe("`sequences`: drop steps from the end (post, default: keep the first) or from the start (pre: keep the last)."),
    inputShape: z.array(z.number().int().positive()).min(1).optional().describe("Reshapes flat `features` rows, e.g. 784 numbers per row as [28, 28, 1]."),
    labels: labelsSchema
      .optional()
      .describe("One output: one label per row, a class name or id, a value, or nested arrays of them for shaped targets (an [H, W] mask of class ids per image for segmentation, k values for k regression outputs). Give `labels` or `outputs`."),
    outputs: z
      .record(nodeName, labelsSchema)
      .optional()
      .describe("Several outputs: labels per output name, matched to the names of a graph spec's `outputs` (a class and a box, a class and a value). Give `labels` or `outputs`."),
    task: z
      .union([datasetTaskSchema, z.record(nodeName, datasetTaskSchema)])
      .optional()
      .describe("Default: classification when labels are strings, regression when numbers (say classification for masks of class ids). With `outputs`, one task for all or a task per output name."),
    featureNames: z.array(z.string()).optional(),
    preprocessing: preprocessingFieldSchema.optional().describe("How jobs on this dataset prepare its inputs unless a job says otherwise (see a training job's preprocessing)."),
  })
  .meta({ id: "CreateDataset" });
export type CreateDatasetJson = z.infer<typeof createDatasetJsonSchema>;

/** One column of a tabular input: numbers as they are, or categories stored as their code (index into `categories`). */
export const columnSchema = z
  .object({
    name: z.string(),
    kind: z.enum(["numeric", "categorical"]),
    categories: z.array(z.string()).optional().describe("categorical: code i stands for categories[i] (sorted)."),
    missing: z.number().int().optional().describe("Cells with no value, stored as NaN and filled by preprocessing (impute)."),
  })
  .meta({ id: "DatasetColumn" });
export type DatasetColumn = z.infer<typeof columnSchema>;

/**
 * What an input holds, which decides its default preprocessing: `tabular` (flat rows of columns:
 * standardized, categories one-hot), `image` ([H, W, C] pixels 0–255: scaled to [0, 1]),
 * `sequence` ([time] token ids or [time, features]) and `tensor` (anything else; as uploaded).
 */
export const inputKindSchema = z.enum(["tabular", "image", "sequence", "tensor"]);
export type InputKind = z.infer<typeof inputKindSchema>;

/** One named input of a dataset and the shape of one of its rows (as stored: a categorical column is one code). */
export const datasetInputSchema = z.object({
  name: z.string(),
  shape: z.array(z.number().int()),
  kind: inputKindSchema.optional().describe("Absent on datasets stored before kinds: tabular for flat rows, tensor otherwise."),
  columns: z.array(columnSchema).optional().describe("Tabular inputs: one entry per value of a row."),
});
export type DatasetInput = z.infer<typeof datasetInputSchema>;

/** An input's kind, for datasets stored before kinds were recorded. */
export const kindOf = (input: DatasetInput): InputKind => input.kind ?? (input.shape.length === 1 ? "tabular" : "tensor");

/** One set of labels of a dataset: the model output it trains, its task and classes, the shape of one row's labels. */
export const datasetOutputSchema = z.object({
  name: z.string(),
  task: datasetTaskSchema,
  classes: z.array(z.string()),
  shape: z.array(z.number().int()).describe("Shape of one row's labels: [1] for a class or a value, [H, W] for a per-pixel mask."),
  counts: z.array(z.number().int()).optional().describe("Classification: how many labels (rows, or pixels of masks) each class has, in the order of classes."),
});
export type DatasetOutput = z.infer<typeof datasetOutputSchema>;

/** Query parameters of a raw-body upload (CSV, TSV, NDJSON, NumPy, image zips, text); each format reads those it knows. */
export const uploadQuerySchema = z.object({
  name: z.string().trim().min(1).max(200).optional().describe("Dataset name (required for raw-body uploads)."),
  label: z.string().min(1).optional().describe("Tabular: the column that holds the label (default: the last)."),
  task: datasetTaskSchema.optional().describe("Default: classification when the label column has text, regression when numbers."),
  categorical: z.string().optional().describe("Tabular: comma-separated columns to treat as categories even if they hold numbers."),
  missing: z.enum(["error", "impute"]).optional().describe("Tabular: empty or NA cells are an error (default), or kept and filled in by preprocessing (impute)."),
  imageSize: z.string().optional().describe("Image zips: H,W to resize every image to (required when sizes differ)."),
  channels: z.enum(["1", "3"]).optional().describe("Image zips: 1 (grayscale) or 3 (RGB, default)."),
  sequenceLength: z.string().optional().describe("Text: characters per training sequence (char models)."),
  preprocessing: z.string().optional().describe("JSON of the dataset's default preprocessing, as a JSON upload's `preprocessing` (e.g. {\"numeric\":\"minmax\"})."),
});
export type UploadQuery = z.infer<typeof uploadQuerySchema>;
/** The query of a CSV upload (a subset of every raw-body upload's). */
export const createDatasetCsvQuerySchema = uploadQuerySchema;
export type CreateDatasetCsvQuery = UploadQuery;

export const datasetSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    task: datasetTaskSchema,
    rows: z.number().int(),
    inputShape: z.array(z.number().int()).describe("Shape of one row of the first (usually the only) input."),
    inputs: z.array(datasetInputSchema).describe("Every input a row feeds, in order."),
    classes: z.array(z.string()),
    featureNames: z.array(z.string()),
    targetSize: z.number().int(),
    targetShape: z.array(z.number().int()).describe("Shape of one row's target: [1] for a class or a value, [H, W] for a per-pixel mask."),
    outputs: z.array(datasetOutputSchema).describe("Every set of labels, by the model output it trains; task, classes and targetShape above describe the first."),
    contentHash: z.string().nullable().describe("sha256 of the stored layout and values: the same data uploaded again under the same name is recognised, not stored twice."),
    bytes: z.number().int().describe("Bytes of stored values (float32)."),
    preprocessing: preprocessingFieldSchema.nullable().describe("The preprocessing declared with the upload: jobs use it unless they declare their own."),
    warnings: z.array(z.string()).describe("Things worth knowing that are not errors, e.g. numeric labels that look like class ids (upload with task=classification)."),
    createdAt: z.iso.datetime(),
  })
  .meta({ id: "Dataset" });
export type DatasetView = z.infer<typeof datasetSchema>;

/** Query of the dataset listing: newest first, a page at a time. */
export const listDatasetsQuerySchema = z.object({
  limit: z.coerce.number({ error: "expected a whole number from 1 to 200" }).int("expected a whole number from 1 to 200").min(1).max(200).default(50).describe("Datasets per page, 1–200 (default 50)."),
  cursor: z.string().max(512).optional().describe("`nextCursor` of the previous page, as it was given: the next page starts after that page's last dataset."),
});
export type ListDatasetsQuery = z.infer<typeof listDatasetsQuerySchema>;

export const datasetPageSchema = z
  .object({
    datasets: z.array(datasetSchema).describe("Newest first."),
    nextCursor: z.string().nullable().describe("Pass as `cursor` for the next page; null on the last page. Datasets added meanwhile are newer and do not shift the pages that follow."),
  })
  .meta({ id: "DatasetPage" });
export type DatasetPage = z.infer<typeof datasetPageSchema>;

export const datasetRowsQuerySchema = z.object({
  offset: z.coerce.number({ error: "expected a whole number ≥ 0" }).int("expected a whole number ≥ 0").min(0).default(0).describe("The first row to show (0-based)."),
  limit: z.coerce.number({ error: "expected a whole number from 1 to 100" }).int("expected a whole number from 1 to 100").min(1).max(100).default(20).describe("Rows to show, 1–100 (default 20)."),
});
export type DatasetRowsQuery = z.infer<typeof datasetRowsQuerySchema>;

/** A value as a person reads it: a number, a category or class name, null for a missing cell, or arrays or objects of them. */
export type ReadableValue = number | string | null | ReadableValue[] | { [name: string]: ReadableValue };
const readableValueSchema = (description: string) =>
  z.custom<ReadableValue>(() => true).meta({ description, type: ["number", "string", "null", "array", "object"] });

export const datasetRowsSchema = z
  .object({
    rows: z.number().int().describe("Rows in the dataset (not on this page)."),
    offset: z.number().int(),
    items: z
      .array(
        z.object({
          row: z.number().int().describe("The row's number (0-based)."),
          features: readableValueSchema(
            "The row's input: for a table an object by column name (category names, null for a missing cell), else nested arrays of the input's shape. For several inputs, an object of them by input name.",
          ),
          label: readableValueSchema("The row's label: a class name (classification) or a number, nested arrays of them for shaped labels. For several outputs, an object of them by output name."),
        }),
      )
      .describe("Empty when offset is at or past the last row."),
  })
  .meta({ id: "DatasetRows" });
export type DatasetRows = z.infer<typeof datasetRowsSchema>;
