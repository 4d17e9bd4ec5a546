// Request/response shapes for training jobs.
import { z } from "zod";
import { preprocessingFieldSchema } from "../data/preprocessing/preprocessing-schema.ts";
import { augmentationSchema } from "../model-spec/augmentation-schema.ts";
import { optimizerSchema } from "../model-spec/optimizer-schema.ts";
import { earlyStoppingSchema, lrScheduleSchema, scheduleIssues } from "../model-spec/schedule-schema.ts";

/** What a job trains with; stored with the job, so a retry or a resume uses exactly the same. */
export const hyperparametersSchema = z.object({
  epochs: z.number().int("expected an integer").min(0, "must be >= 0").max(100_000).default(10).describe("Epochs to train; 0 only with prune (pruned, not fine-tuned)."),
  batchSize: z.number().int("expected an integer").min(1, "must be >= 1").max(65_536).default(32),
  optimizer: optimizerSchema.default({ type: "adam", learningRate: 0.001 }),
  validationSplit: z.number().min(0, "must be >= 0").lt(1, "must be < 1").default(0.2),
  testSplit: z.number().min(0, "must be >= 0").lt(1, "must be < 1").default(0).describe("Rows held out until training ends; their metrics (test_loss, test_accuracy) are stored with the model version."),
  stratify: z.boolean().optional().describe("Split each class in the same proportions (default: true when the first output is a classification)."),
  preprocessing: preprocessingFieldSchema
    .optional()
    .describe("How inputs are prepared, one spec for all or one per input name. Default: tabular numeric columns standardized, categorical ones one-hot, images scaled to [0, 1]. Fitted on the training split and applied by :predict."),
  augmentation: augmentationSchema.optional(),
  adversarial: z
    .object({
      epsilon: z.number().positive("must be > 0").max(1e6).describe("FGSM's ε in the raw input's units (255 is a whole pixel range); category columns are never perturbed."),
      fraction: z.number().gt(0, "must be > 0").max(1, "must be <= 1").default(0.5).describe("The share of each training batch replaced by its FGSM examples."),
    })
    .strict()
    .optional()
    .describe("Adversarial training (Goodfellow et al., 2015): in each training batch, this share of the rows is replaced by x + ε·sign(∇ₓ loss), computed with the weights of that moment and kept in the data's range (images: 0 to 1/scale); validation rows are never perturbed. One input only; not with tbptt or the perceptron rule."),
  gradientClipping: z
    .object({
      norm: z.number().positive("must be > 0").optional().describe("Scale each step's gradients so that their global L2 norm is at most this."),
      value: z.number().positive("must be > 0").optional().describe("Clip each gradient value into [−value, value] (before the norm)."),
    })
    .strict()
    .refine((c) => c.norm !== undefined || c.value !== undefined, "give norm, value or both")
    .optional(),
  labelSmoothing: z.number().min(0, "must be >= 0").lt(1, "must be < 1").optional().describe("ε: cross-entropy targets become (1 − ε)·y + ε/K in the training loss (K classes, 2 for a sigmoid)."),
  classWeights: z
    .union([z.literal("balanced"), z.record(z.string(), z.number().positive("must be > 0"))])
    .optional()
    .describe("Weights of the dataset's classes (its first set of labels) in the training loss: by class name (others 1), or \"balanced\" (n / (K · count), counted on the training rows)."),
  tbptt: z
    .object({ window: z.number().int("expected an integer").min(1, "must be >= 1").describe("k: time steps per window; shorter than the sequence.") })
    .strict()
    .optional()
    .describe("Truncated backpropagation through time for recurrent models (TBPTT(k, k)): each batch of sequences is cut into windows of k steps; the recurrent layers carry their state from window to window as a value, so gradients reach back at most k steps. Sequence-to-sequence outputs are updated after every window, sequence-to-one outputs at the last one."),
  lrSchedule: lrScheduleSchema.optional().describe("The learning rate over time (step, exponential, cosine with restarts, reduce-on-plateau; each with an optional linear warm-up). The rate in force is the `lr` metric."),
  earlyStopping: earlyStoppingSchema.optional().describe("Stop once a monitored metric (default val_loss) has not improved for `patience` epochs; `restoreBestWeights` makes the version the best epoch's."),
  threads: z
    .union([z.number().int("expected an integer").min(1, "must be >= 1").max(64, "must be <= 64"), z.literal("auto")])
    .optional()
    .describe("Threads that share each batch (data parallel): each computes the gradients of its share of the rows, averaged into one step. Default 1; \"auto\": as many as the worker allows when the model has convolutions and each thread gets at least 16 rows, else 1 (on two cores LeNet-5 trains 1.3–1.6× faster on two threads; a small MLP slower). A worker caps it at TRAINYARD_TRAINING_THREADS. Same seed and threads, same result; against one thread, batch normalization uses each share's statistics and dropout draws per share. Not with tbptt or adversarial training; a perceptron trains on one."),
  priority: z.number().int("expected an integer").min(1, "must be >= 1").max(1000, "must be <= 1000").optional().describe("Which queued job a free worker takes first: lower first (1–1000, default 500), then in the order they were queued."),
  prune: z
    .object({
      criterion: z.enum(["obd", "magnitude"]).default("obd").describe("obd: optimal brain damage, saliency ½·h_kk·w_k² from a diagonal Hessian estimate over training rows; magnitude: |w_k|."),
      sparsity: z.number().gt(0, "must be > 0").lt(1, "must be < 1").describe("The share of the prunable weights (kernels of dense and convolution layers; never biases, normalization or embeddings) set to zero."),
      scope: z.enum(["global", "perLayer"]).default("global").describe("One threshold over all kernels, or the same share of each."),
      samples: z.number().int("expected an integer").min(1).max(256).default(32).describe("OBD: random vectors of the Hutchinson estimate of the Hessian's diagonal (more: less noise, more time)."),
    })
    .strict()
    .optional()
    .describe("Prune the version initFrom names before training: its weights by the criterion to the sparsity, then `epochs` of fine-tuning with the pruned weights held at zero (0: none, the version is the pruned weights as they are); the version registered has a `sparsity` metric. Before pruning, the job measures the validation metrics at a range of sparsities for both criteria (`pruning` on the job, and GET …/pruning.png)."),
  initFrom: z
    .object({
      model: z.string().min(1).optional().describe("The model whose version to start from; default the job's own model."),
      version: z.union([z.number().int("expected an integer").min(1, "must be >= 1"), z.literal("latest")]).default("latest"),
    })
    .strict()
    .optional()
    .describe("Fine-tuning: start from a trained version's weights instead of random ones. Layers are matched by name (sequential specs name them l<index>_<type>; graph specs by node name) and shape; the rest start fresh."),
  freeze: z
    .array(z.string().min(1))
    .max(1000)
    .optional()
    .describe("Layers whose weights do not train (by name, as for initFrom): e.g. a pretrained feature extractor under a new head."),
  seed: z.number().int("expected an integer").min(0).max(2 ** 32 - 1).optional().describe("Same seed, same result on the same backend. Chosen at random and recorded when omitted."),
});
export type Hyperparameters = z.infer<typeof hyperparametersSchema> & {
  seed: number;
  /** initFrom resolved when the job was created: the version it names, as it stood then. */
  initFrom?: { versionId?: string };
};

/** POST /v1/training-jobs/{id}:continue: train a finished job's model further, from its last checkpoint, as a new job. */
export const continueTrainingJobSchema = z
  .object({
    epochs: z.number().int("expected an integer").min(1, "must be >= 1").max(100_000).describe("Epochs to train beyond the ones the job finished."),
    earlyStopping: earlyStoppingSchema.optional().describe("Early stopping for the new epochs (the finished job's is not carried over: it would stop again at once)."),
  })
  .strict()
  .meta({ id: "ContinueTrainingJob" });
export type ContinueTrainingJob = z.infer<typeof continueTrainingJobSchema>;

export const createTrainingJobSchema = hyperparametersSchema
  .extend({
    model: z.string().min(1).describe("Name of the model to train."),
    dataset: z.uuid({ error: "expected a dataset id (uuid)" }),
  })
  .superRefine((job, ctx) => {
    // "auto" settles on one thread where one is needed.
    const threads = typeof job.threads === "number" ? job.threads : 1;
    for (const field of ["tbptt", "adversarial"] as const) {
      if (threads > 1 && job[field]) ctx.addIssue({ code: "custom", path: ["threads"], message: `${field} trains on one thread; leave threads out or set it to 1` });
    }
    if (job.epochs === 0 && !job.prune) ctx.addIssue({ code: "custom", path: ["epochs"], message: "must be >= 1 (0 only with prune: a version pruned and not fine-tuned)" });
    if (job.validationSplit + job.testSplit >= 1) ctx.addIssue({ code: "custom", path: ["testSplit"], message: `with validationSplit ${job.validationSplit}, leaves no rows to train on` });
    if (job.lrSchedule) for (const issue of scheduleIssues(job.lrSchedule, job.optimizer.learningRate)) ctx.addIssue({ code: "custom", path: ["lrSchedule", ...issue.path], message: issue.message });
    // Validation metrics need validation rows: say so now rather than at the end of epoch 1.
    for (const [field, monitor] of [["earlyStopping", job.earlyStopping?.monitor], ["lrSchedule", job.lrSchedule?.type === "reduceOnPlateau" ? job.lrSchedule.monitor : undefined]] as const) {
      if (monitor?.startsWith("val_") && job.validationSplit === 0) ctx.addIssue({ code: "custom", path: [field, "monitor"], message: `'${monitor}' is measured on validation rows, and validationSplit is 0; set validationSplit > 0 or monitor '${monitor.slice(4)}'` });
    }
  })
  .meta({ id: "CreateTrainingJob" });
export type CreateTrainingJob = z.infer<typeof createTrainingJobSchema>;

export const jobStatusSchema = z.enum(["queued", "running", "paused", "succeeded", "failed", "cancelled"]);
export const metricsSchema = z.record(z.string(), z.number()).meta({ id: "Metrics", description: "loss, accuracy, val_loss, val_accuracy (accuracy for classification only); on validation (val_) and test (test_) rows also precision, recall and f1 (macro) and, up to 20 classes, per class as <metric>/<class>, or mse, mae and r2 for regression; lr with a learning-rate schedule. With several outputs, the total loss and <output>_<metric>." });

/**
 * Where a job stands. `epoch` and `epochs` come from Postgres (epochs finished and stored); the
 * rest only while the job runs: live, kept by the worker in Redis, and absent when not known.
 */
export const progressSchema = z
  .object({
    epoch: z.number().int().describe("Epochs finished (and stored)."),
    epochs: z.number().int().describe("Epochs planned."),
    batch: z.number().int().optional().describe("The batch last trained in the epoch under way (epoch + 1), 1-based."),
    batches: z.number().int().optional().describe("Batches per epoch."),
    samplesPerSecond: z.number().optional().describe("Training rows per second, averaged over the last few seconds."),
    elapsedSeconds: z.number().optional().describe("While it runs: since the job first started (a finished job has startedAt and finishedAt)."),
    remainingSeconds: z.number().optional().describe("Estimated time to the last epoch, from the measured pace (validation and checkpoints included once an epoch has finished); early stopping may end sooner."),
  })
  .meta({ id: "TrainingProgress" });
export type Progress = z.infer<typeof progressSchema>;

/** One of the textbook failure modes, measured (lib/engine/train/diagnostics.ts). */
export const diagnosticWarningSchema = z
  .object({
    kind: z.enum(["vanishingGradients", "explodingGradients", "deadRelu", "saturation"]),
    epoch: z.number().int().describe("The epoch it was first seen at."),
    message: z.string(),
  })
  .meta({ id: "DiagnosticWarning" });

export const pruningReportSchema = z
  .object({
    criterion: z.enum(["obd", "magnitude"]),
    sparsity: z.number().describe("The sparsity asked for."),
    scope: z.enum(["global", "perLayer"]),
    achieved: z.number().describe("The share of prunable weights that were zero after pruning."),
    curve: z
      .array(z.object({ criterion: z.enum(["obd", "magnitude"]), sparsity: z.number(), metrics: z.record(z.string(), z.number()) }))
      .describe("The validation metrics of the starting version pruned to each sparsity by each criterion, without fine-tuning."),
  })
  .meta({ id: "PruningReport" });
export type PruningReport = z.infer<typeof pruningReportSchema>;

export const trainingJobSchema = z
  .object({
    id: z.uuid(),
    status: jobStatusSchema,
    model: z.string(),
    dataset: z.uuid(),
    hyperparameters: z.object({
      epochs: z.number().int(),
      batchSize: z.number().int(),
      optimizer: z.object({ type: z.enum(["sgd", "adam", "rmsprop", "adagrad"]), learningRate: z.number() }).catchall(z.union([z.number(), z.boolean()])),
      validationSplit: z.number(),
      testSplit: z.number().optional(),
      stratify: z.boolean().optional(),
      preprocessing: preprocessingFieldSchema.optional(),
      seed: z.number().int(),
    }).loose(),
    progress: progressSchema,
    metrics: metricsSchema.nullable(),
    warnings: z.array(diagnosticWarningSchema).describe("Diagnostics warnings raised so far (vanishing or exploding gradients, dead ReLUs, saturated layers); the series is at /diagnostics."),
    pruning: pruningReportSchema.nullable().describe("A pruning job's measurements (hyperparameters.prune); null for other jobs and until pruned."),
    stoppedEarly: z.string().nullable().describe("Why early stopping ended the job before its last epoch (the monitored metric, the best epoch, and whether its weights were restored); null otherwise."),
    error: z.string().nullable(),
    cancelRequested: z.boolean(),
    pauseRequested: z.boolean().describe("A pause was asked for; the worker pauses the job at the next batch boundary."),
    waitingReason: z.string().nullable().describe("Why a queued job is not running yet (its tenant's limit of running jobs); null when nothing holds it."),
    continuedFrom: z.uuid().nullable().describe("The finished job this one continues (:continue), from that job's last checkpoint."),
    study: z.object({ id: z.uuid(), trial: z.number().int(), params: z.record(z.string(), z.unknown()) }).nullable().describe("The hyperparameter study this job is a trial of, its number and the values it tries; null for a job of its own."),
    attempts: z.number().int().describe("Attempts so far. A dead worker or process, or a transient error, starts another, which resumes from the last checkpoint."),
    lastInterruption: z.string().nullable().describe("What last interrupted the job (an attempt that stopped, an unreachable database) and how it went on; null if nothing did."),
    modelVersion: z.number().int().nullable().describe("The model version this job produced, once it succeeded."),
    createdAt: z.iso.datetime(),
    startedAt: z.iso.datetime().nullable(),
    finishedAt: z.iso.datetime().nullable(),
  })
  .meta({ id: "TrainingJob" });
export type TrainingJobView = z.infer<typeof trainingJobSchema>;

export const metricSeriesSchema = z
  .object({
    jobId: z.uuid(),
    epochs: z.array(z.object({ epoch: z.number().int(), metrics: metricsSchema })),
  })
  .meta({ id: "MetricSeries" });

const confusionSchema = z.array(z.object({ output: z.string(), classes: z.array(z.string()), matrix: z.array(z.array(z.number())) }));

export const diagnosticSeriesSchema = z
  .object({
    jobId: z.uuid(),
    warnings: z.array(diagnosticWarningSchema),
    testConfusion: confusionSchema
      .nullable()
      .describe("Per classification output, the confusion matrix of the held-out test rows (testSplit), scored once after training: rows the true class, columns the predicted one. null without a test split or before the job succeeds."),
    epochs: z.array(
      z.object({
        epoch: z.number().int(),
        gradNorm: z.number().describe("L2 norm of the whole gradient, on a fixed sample of training rows."),
        layers: z.array(
          z.object({
            layer: z.string(),
            gradNorm: z.number().optional().describe("L2 norm of the gradient with respect to the layer's weights."),
            weightNorm: z.number().optional(),
            updateRatio: z.number().optional().describe("learning rate × gradNorm / weightNorm: how far a step moves the weights, relatively (healthy near 1e-3)."),
            deadFraction: z.number().optional().describe("ReLU layers: share of units never active on sampled validation rows."),
            saturatedFraction: z.number().optional().describe("Sigmoid, tanh and softmax layers: share of activations within 1% of a bound."),
          }),
        ),
        confusion: confusionSchema
          .optional()
          .describe("Per classification output, the validation confusion matrix: rows the true class, columns the predicted one."),
      }),
    ),
  })
  .meta({ id: "DiagnosticSeries" });
export type DiagnosticSeries = z.infer<typeof diagnosticSeriesSchema>;
