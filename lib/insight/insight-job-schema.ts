// Insight jobs: model insight over a dataset's rows, too heavy to answer within a request, so run
// by a worker like a training job (status, progress, cancel). The requests here are those of the
// endpoints on a version that start a job (an attack given a `dataset`, top-activating rows,
// t-SNE); the view is what GET /v1/insight-jobs/{id} answers.
import { z } from "zod";
import { TSNE_LIMITS } from "../engine/probes/tsne.ts";

export const INSIGHT_KINDS = ["adversarial", "top-activations", "tsne"] as const;
export type InsightKind = (typeof INSIGHT_KINDS)[number];

/** Rows an attack or a search for top-activating rows may cover. */
export const MAX_JOB_ROWS = 100_000;
/** Gradients one attack job may cost (rows × ε values × PGD steps): minutes of a small CNN on one core. */
export const MAX_JOB_GRADIENTS = 1_000_000;
/** Raw values the top-activating rows may hold in a job's result (k × one row's values). */
export const MAX_TOP_VALUES = 1 << 20;

export const splitSchema = z
  .enum(["validation", "test", "train", "all"])
  .describe(
    "Which of the dataset's rows: a split of the training job that made the version (the same rows it held out or trained on; only for the dataset it trained on), or all. Default: validation for that dataset, all for another.",
  );
export type SplitChoice = z.infer<typeof splitSchema>;

/** The fields every job over a dataset's rows takes. */
export const datasetRowsFields = {
  dataset: z.uuid().describe("A dataset whose rows fit the version's input (by name, or the only one), raw as :predict takes them."),
  split: splitSchema.optional(),
  rows: z.number().int().min(1).max(MAX_JOB_ROWS).optional().describe(`At most this many of the split's rows, drawn by the seed (default: all, up to the job's limit).`),
  seed: z.number().int().min(0).max(2 ** 31 - 1).default(0).describe("Draws the rows when `rows` is fewer than the split has, and seeds t-SNE."),
};

export const topActivationsRequestSchema = z
  .object({
    layer: z.string().min(1).describe("A layer's name, as the model's summary lists it."),
    unit: z.number().int().min(0).describe("The unit (a dense layer) or channel (the last axis of a convolution's output; its mean over positions counts)."),
    k: z.number().int().min(1).max(64).default(9).describe("How many rows to return, the most exciting first."),
    ...datasetRowsFields,
  })
  .strict()
  .meta({ id: "TopActivationsRequest" });
export type TopActivationsRequest = z.infer<typeof topActivationsRequestSchema>;

export const tsneRequestSchema = z
  .object({
    layer: z.string().min(1).describe("A layer's name, as the model's summary lists it, or the input's name (the raw rows: a baseline): each row is represented by that layer's output, flattened."),
    perplexity: z.number().min(TSNE_LIMITS.minPerplexity).max(TSNE_LIMITS.maxPerplexity).default(30).describe("Effective number of neighbours; below a third of the rows."),
    iterations: z.number().int().min(1).max(TSNE_LIMITS.maxIterations).default(1000),
    learningRate: z.number().positive().max(1e6).optional().describe("Default max(200, rows / 12)."),
    output: z.string().optional().describe("The labels that colour the points (default: the dataset's labels for the version's first classification output, if any)."),
    ...datasetRowsFields,
    rows: z.number().int().min(10).max(TSNE_LIMITS.maxRows).default(2000).describe(`At most this many of the split's rows, drawn by the seed (at most ${TSNE_LIMITS.maxRows}).`),
  })
  .strict()
  .meta({ id: "TsneRequest" });
export type TsneRequest = z.infer<typeof tsneRequestSchema>;

const rate = z.number().min(0).max(1);

export const adversarialJobResultSchema = z
  .object({
    rows: z.number().int().describe("Rows attacked."),
    split: splitSchema,
    output: z.string(),
    method: z.enum(["fgsm", "pgd"]),
    targetClass: z.string().nullable(),
    range: z.tuple([z.number(), z.number()]).nullable(),
    accuracy: rate.describe("Accuracy on the rows as they are."),
    results: z.array(z.object({ epsilon: z.number(), accuracy: rate, successRate: rate })).describe("Per ε, as the request-sized attack answers."),
  })
  .meta({ id: "AdversarialJobResult" });
export type AdversarialJobResult = z.infer<typeof adversarialJobResultSchema>;

export const topActivationsResultSchema = z
  .object({
    layer: z.string(),
    unit: z.number().int(),
    units: z.number().int().describe("Units (channels) the layer has."),
    split: splitSchema,
    rowsSearched: z.number().int(),
    top: z.array(
      z.object({
        row: z.number().int().describe("The row's index in the dataset."),
        activation: z.number(),
        label: z.string().nullable().describe("Its class, when the dataset has classification labels."),
        instance: z.unknown().describe("The row, raw, shaped like the input."),
      }),
    ),
  })
  .meta({ id: "TopActivationsResult" });
export type TopActivationsResult = z.infer<typeof topActivationsResultSchema>;

export const tsneResultSchema = z
  .object({
    layer: z.string(),
    dims: z.number().int().describe("Values per row of the layer's output (t-SNE first projects more than 50 on their top 50 principal components)."),
    split: splitSchema,
    perplexity: z.number(),
    iterations: z.number().int(),
    klDivergence: z.number().describe("KL(P‖Q) of the final embedding: lower is a more faithful map."),
    classes: z.array(z.string()).describe("The classes that colour the points; empty without labels."),
    points: z.array(z.object({ row: z.number().int(), x: z.number(), y: z.number(), class: z.number().int().nullable().describe("Index into classes.") })),
  })
  .meta({ id: "TsneResult" });
export type TsneResult = z.infer<typeof tsneResultSchema>;

export const insightJobSchema = z
  .object({
    id: z.uuid(),
    kind: z.enum(INSIGHT_KINDS),
    model: z.string(),
    version: z.number().int(),
    dataset: z.uuid(),
    status: z.enum(["queued", "running", "succeeded", "failed", "cancelled"]),
    progress: z.number().min(0).max(1).describe("The share of the work done."),
    request: z.record(z.string(), z.unknown()).describe("The request as checked, defaults filled in."),
    result: z.union([adversarialJobResultSchema, topActivationsResultSchema, tsneResultSchema]).nullable().describe("Once succeeded: by kind."),
    error: z.string().nullable(),
    cancelRequested: z.boolean(),
    attempts: z.number().int(),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
    links: z.object({ self: z.string(), picture: z.string().describe("The result as a PNG, once succeeded.") }),
  })
  .meta({ id: "InsightJob" });
export type InsightJobView = z.infer<typeof insightJobSchema>;
