// Request/response shapes for hyperparameter studies.
import { z } from "zod";
import { hyperparametersSchema, jobStatusSchema } from "../training-job-schema.ts";

/** At most this many trials per study: each is a training job and, when its spec differs, a model. */
export const MAX_TRIALS = 64;

const valuesSchema = z
  .object({ values: z.array(z.unknown()).min(1, "must list at least one value").max(MAX_TRIALS, `at most ${MAX_TRIALS} values`).describe("The values to try (numbers, strings, booleans or whole objects such as an optimizer).") })
  .strict();

const rangeSchema = z
  .object({
    min: z.number(),
    max: z.number(),
    scale: z.enum(["linear", "log"]).default("linear").describe("log: drawn uniformly in log space (learning rates, regularization)."),
    integer: z.boolean().default(false).describe("Draw whole numbers (units, filters, batch sizes)."),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (!(r.max > r.min)) ctx.addIssue({ code: "custom", path: ["max"], message: "must be > min" });
    if (r.scale === "log" && !(r.min > 0)) ctx.addIssue({ code: "custom", path: ["min"], message: "must be > 0 with scale 'log'" });
    if (r.integer && Math.floor(r.max) < Math.ceil(r.min)) ctx.addIssue({ code: "custom", path: ["max"], message: "no integer lies between min and max" });
  });

export const dimensionSchema = z.union([valuesSchema, rangeSchema]).meta({
  id: "StudyDimension",
  description: "What to try at one path: a list of `values` (grid or random), or a range `{min, max, scale, integer}` (random only).",
});

export const objectiveSchema = z
  .object({
    metric: z.string().regex(/^[A-Za-z0-9_./-]{1,100}$/, "must be a metric name such as val_loss or val_accuracy").default("val_loss").describe("An epoch metric of the trials (val_loss, val_accuracy, loss, val_f1, val_mae, ...)."),
    mode: z.enum(["min", "max", "auto"], { error: "must be one of min, max, auto" }).default("auto").describe("Whether lower (min) or higher (max) is better. auto: max when the metric's last _ part is accuracy, acc, f1, precision, recall, r2 or auc; min otherwise."),
  })
  .strict();

export const studyRequestSchema = z
  .object({
    model: z.string().min(1).describe("The base model: trials change its spec at `spec.` paths (each changed spec becomes a model of its own) or train it as it is."),
    dataset: z.uuid({ error: "expected a dataset id (uuid)" }),
    job: hyperparametersSchema.optional().describe("The base training job, as POST /v1/training-jobs takes it (without model and dataset); trials change it at `job.` paths."),
    space: z
      .record(z.string(), dimensionSchema)
      .refine((s) => Object.keys(s).length >= 1, "must name at least one path")
      .refine((s) => Object.keys(s).length <= 16, "at most 16 paths")
      .describe("Per path, what to try. Paths are `spec.<field>` into the model's spec, with [i] for list items (`spec.layers[0].units`), or `job.<field>` into the training job (`job.optimizer.learningRate`, `job.batchSize`)."),
    strategy: z.enum(["grid", "random"], { error: "must be grid or random" }).describe("grid: every combination of the listed values; random: `trials` independent draws."),
    trials: z.number().int("expected an integer").min(1, "must be >= 1").max(MAX_TRIALS, `must be <= ${MAX_TRIALS}`).optional().describe(`random: how many trials (required). grid: at most the grid's size; fewer picks that many of its points with the seed. At most ${MAX_TRIALS}.`),
    objective: objectiveSchema.default({ metric: "val_loss", mode: "auto" }).describe("What ranks the trials (default val_loss, lower is better)."),
    asha: z
      .object({
        minEpochs: z.number().int("expected an integer").min(1, "must be >= 1").describe("The first rung: trials are first compared after this many epochs."),
        reductionFactor: z.number().int("expected an integer").min(2, "must be >= 2").max(16, "must be <= 16").default(3).describe("η: rungs at minEpochs·η^k; at a rung only the best 1/η of the trials so far go on."),
      })
      .strict()
      .optional()
      .describe("Successive halving (ASHA): stop trials early that are not among the best at a rung. A stopped trial still succeeds with the version of its last epoch."),
    seed: z.number().int("expected an integer").min(0).max(2 ** 32 - 1).optional().describe("Seeds the random draws and, unless job.seed is given, every trial's training (the same seed for all, so that trials differ only by their parameters). Chosen and recorded when omitted."),
  })
  .strict()
  .meta({ id: "CreateStudy" });
export type CreateStudy = z.infer<typeof studyRequestSchema>;
/** The request as stored with the study: validated, defaults filled in, seed chosen. */
export type StudyRequest = CreateStudy & { seed: number };

export const studyStatusSchema = z.enum(["running", "succeeded", "failed", "cancelled"]);

export const studyTrialSchema = z
  .object({
    trial: z.number().int().describe("The trial's number, from 1."),
    jobId: z.uuid().describe("Its training job (GET /v1/training-jobs/{id} for its progress and curves)."),
    status: jobStatusSchema,
    params: z.record(z.string(), z.unknown()).describe("The value of every path of the space in this trial."),
    objective: z.number().nullable().describe("The objective metric: of the version once succeeded, of the last stored epoch while running; null when there is none."),
    epochs: z.number().int().describe("Epochs trained."),
    stoppedEarly: z.string().nullable().describe("Why it stopped before its last epoch (ASHA or early stopping); null otherwise."),
    model: z.string().describe("The model it trains: the base model, or the trial's own when its spec differs."),
    version: z.number().int().nullable().describe("The model version it produced, once succeeded."),
  })
  .meta({ id: "StudyTrial" });
export type StudyTrialView = z.infer<typeof studyTrialSchema>;

const studyFields = {
  id: z.uuid(),
  status: studyStatusSchema.describe("running until every trial has ended; then succeeded (some trial succeeded), failed (none did) or cancelled."),
  objective: z.object({ metric: z.string(), mode: z.enum(["min", "max"]) }).describe("The objective, with auto resolved."),
  trialCount: z.number().int(),
  counts: z.record(jobStatusSchema, z.number().int()).describe("Trials by status."),
  best: z
    .object({ trial: z.number().int(), jobId: z.uuid(), model: z.string(), version: z.number().int().nullable(), objective: z.number() })
    .nullable()
    .describe("The succeeded trial with the best objective so far, and the model version it produced."),
  error: z.string().nullable(),
  createdAt: z.iso.datetime(),
  finishedAt: z.iso.datetime().nullable(),
};

export const studySummarySchema = z.object(studyFields).meta({ id: "StudySummary" });
export type StudySummaryView = z.infer<typeof studySummarySchema>;

export const studySchema = z
  .object({
    ...studyFields,
    request: z.record(z.string(), z.unknown()).describe("The request as validated: defaults filled in and the seed chosen."),
    trials: z.array(studyTrialSchema).describe("Sorted by the objective, best first; trials without a result yet (queued, running) and failed or cancelled ones last, by number."),
  })
  .meta({ id: "Study" });
export type StudyView = z.infer<typeof studySchema>;
