import { z } from "zod";
import { modelSpecSchema } from "../model-spec/model-spec-schema.ts";
import { modelSummarySchema as summary } from "../model-spec/model-summary-schema.ts";
import { signatureSchema } from "./signature.ts";

export const modelNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/, "must be 1-100 letters, digits, '_', '.', '-', starting with a letter or digit");

export const createModelSchema = z.object({ name: modelNameSchema, spec: modelSpecSchema }).meta({ id: "CreateModel" });
export type CreateModel = z.infer<typeof createModelSchema>;

const shape = z.array(z.number().int().nullable()).describe("Without the batch axis; null is a free dimension.");

export const modelSummarySchema = summary.meta({ id: "ModelSummary" });

export const validateModelResponseSchema = z
  .object({ valid: z.literal(true), inputShapes: z.array(shape), outputShapes: z.array(shape), summary: modelSummarySchema })
  .meta({ id: "ValidateModelResponse" });

/** Per model: how concurrent predictions merge into one forward pass (lib/serving/runtime/batcher.ts). */
export const batchingSchema = z
  .object({
    maxBatchSize: z.number().int("expected an integer").min(1, "must be >= 1").max(4096, "must be <= 4096").optional().describe("Most rows in one forward pass."),
    maxDelayMs: z.number().int("expected an integer").min(0, "must be >= 0").max(1000, "must be <= 1000").optional().describe("Longest a request waits for company while its thread is busy; 0 turns batching off for this model."),
  })
  .strict()
  .meta({ id: "Batching" });
export type Batching = z.infer<typeof batchingSchema>;

export const modelSchema = z
  .object({
    name: z.string(),
    spec: modelSpecSchema,
    paramCount: z.number().int(),
    inputShape: shape.describe("Shape of the (first) input."),
    inputs: z.array(z.object({ name: z.string(), shape })).describe("Every input, in order; a dataset feeds them by name (a one-input model takes any one-input dataset)."),
    outputShape: shape.describe("Shape of the (first) output."),
    outputs: z.array(z.object({ name: z.string(), shape })).describe("Every output, in order; a dataset's labels train them by name (a one-output model takes any one-output dataset)."),
    batching: batchingSchema.nullable().describe("This model's dynamic batching; null: the API's defaults (TRAINYARD_BATCH_MAX_SIZE, TRAINYARD_BATCH_MAX_DELAY_MS)."),
    latestVersion: z.number().int().nullable().describe("The newest version (served by :predict unless the model has a default alias); null until a training job succeeds."),
    createdAt: z.iso.datetime(),
  })
  .meta({ id: "Model" });
export type ModelView = z.infer<typeof modelSchema>;

/** The outcomes of a version's ONNX check (export/onnx/onnx-check.ts). */
export const ONNX_STATUSES = ["passed", "failed", "unsupported"] as const;
export type OnnxStatus = (typeof ONNX_STATUSES)[number];

export const modelVersionSchema = z
  .object({
    version: z.number().int(),
    jobId: z.uuid().nullable().describe("The training job that produced it; null for a version imported from elsewhere."),
    datasetId: z.uuid().nullable().describe("The dataset its job trained on (null when imported, or when the job recorded none)."),
    signature: signatureSchema.describe("How to call it: inputs (raw shapes and the preprocessing fitted on the training split) and outputs (task, classes)."),
    metrics: z.record(z.string(), z.number()).describe("The last epoch's metrics, and test_ metrics when the job held out a test split."),
    sizeBytes: z.number().int().describe("Bytes of its stored weights."),
    aliases: z.array(z.string()).describe("The aliases that point at it."),
    createdAt: z.iso.datetime(),
    onnx: z
      .object({
        status: z.enum([...ONNX_STATUSES, "unchecked"]).describe("passed: ONNX Runtime predicts what TensorFlow.js does within 1e-4 (relative) on seeded inputs at batch 1 and 16; failed: it does not, or could not run the export; unsupported: a layer has no ONNX form (reason names it); unchecked: not checked yet (an imported or older version: its first load checks it)."),
        opset: z.number().int().nullable(),
        maxRelativeError: z.number().nullable().describe("The largest relative difference the check saw."),
        reason: z.string().nullable(),
        checkedAt: z.iso.datetime().nullable(),
      })
      .describe("The parity check of its network's ONNX export, which decides whether ONNX Runtime may serve it."),
    runtime: z.enum(["onnx", "tfjs"]).nullable().describe("What serves its predictions on this replica (TRAINYARD_SERVING_RUNTIME and the ONNX check); null when TRAINYARD_SERVING_RUNTIME is onnx and it did not pass (its predictions are refused, 409)."),
    exports: z
      .object({ tfjs: z.string(), zip: z.string(), onnx: z.string() })
      .describe("Where to download it: TensorFlow.js's model.json (weight shards beside it), the same as one zip, and ONNX. Paths on this API."),
  })
  .meta({ id: "ModelVersion" });
export type ModelVersionView = z.infer<typeof modelVersionSchema>;

/** Alias names are never all digits, so a target is a version number or an alias, never both. */
export const aliasNameSchema = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_.-]{0,62}$/, "must be 1-63 letters, digits, '_', '.', '-', starting with a letter");

export const modelAliasSchema = z
  .object({ name: z.string(), version: z.number().int(), updatedAt: z.iso.datetime() })
  .meta({ id: "ModelAlias", description: "A name that points at one version; moving it is atomic." });
export type ModelAliasView = z.infer<typeof modelAliasSchema>;

export const modelAliasesSchema = z
  .object({
    defaultAlias: z.string().nullable().describe("The alias a prediction without a version or alias uses; null: the latest version."),
    aliases: z.array(modelAliasSchema),
  })
  .meta({ id: "ModelAliases" });
export type ModelAliasesView = z.infer<typeof modelAliasesSchema>;


export const moveAliasSchema = z.object({ version: z.number().int().positive() }).meta({ id: "MoveAlias" });
export const setDefaultAliasSchema = z
  .object({ alias: aliasNameSchema.nullable().describe("An existing alias, or null to serve the latest version.") })
  .meta({ id: "SetDefaultAlias" });
