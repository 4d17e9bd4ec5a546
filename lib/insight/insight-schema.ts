// The model-insight requests and answers: adversarial examples, saliency and occlusion maps, a
// layer's activations, a convolution's filters. Instances are raw, as :predict takes them (the
// version's fitted preprocessing is part of the graph the probes differentiate).
import { z } from "zod";
import { datasetRowsFields } from "./insight-job-schema.ts";

/** Rows one probe request may hold: each costs a gradient (or an occlusion sweep), not a forward pass. */
export const MAX_PROBE_INSTANCES = 64;
/** Forward passes one request may cost (rows × ε values × PGD steps, or rows × occlusion positions): about a second of a small CNN. */
export const MAX_PROBE_ROWS = 20_000;

const instances = z
  .array(z.unknown())
  .min(1, "must hold at least one instance")
  .max(MAX_PROBE_INSTANCES, `at most ${MAX_PROBE_INSTANCES} instances per request`)
  .describe("Raw instances, as :predict takes them in its row format (one input).");
const classRef = z.union([z.string().min(1), z.number().int().min(0)]).describe("A class: its name, or its index in the output's classes.");
const output = z.string().optional().describe("Which classification output (default: the first).");

export const adversarialRequestSchema = z
  .object({
    method: z.enum(["fgsm", "pgd"]).default("fgsm").describe("fgsm: one step of ε·sign(∇ₓ loss); pgd: `steps` steps of stepSize, each projected back onto the ε-ball."),
    epsilon: z
      .union([z.number().min(0).max(1e6), z.array(z.number().min(0).max(1e6)).min(1).max(20, "at most 20 values")])
      .describe("The perturbation's size in the units of the raw input (255 is a whole pixel range); a list gives a curve."),
    targetClass: classRef.optional().describe("Step towards this class (a targeted attack) instead of away from each instance's label."),
    steps: z.number().int().min(1).max(100).default(10).describe("PGD's steps."),
    stepSize: z.number().positive().max(1e6).optional().describe("PGD's step; default 2.5·ε/steps."),
    range: z
      .tuple([z.number(), z.number()])
      .refine(([lo, hi]) => lo < hi, "must be [low, high] with low < high")
      .optional()
      .describe("The data's valid range, kept by the adversarial inputs; default for images [0, 1/scale] of their fitted scaling (0–255), else none."),
    output,
    instances: instances.optional().describe("Raw instances, as :predict takes them in its row format (one input); with labels. Or a dataset instead."),
    labels: z.array(classRef).min(1).optional().describe("Each instance's true class."),
    ...datasetRowsFields,
    dataset: datasetRowsFields.dataset.optional().describe("Attack a dataset's rows instead of given instances: the answer is a job (202), GET /v1/insight-jobs/{id}."),
  })
  .strict()
  .superRefine((r, ctx) => {
    if ((r.instances === undefined) === (r.dataset === undefined)) ctx.addIssue({ code: "custom", path: r.dataset === undefined ? ["instances"] : ["dataset"], message: "give either instances (with labels) or a dataset, not both" });
    if (r.instances !== undefined && r.labels === undefined) ctx.addIssue({ code: "custom", path: ["labels"], message: "is required with instances" });
    if (r.dataset !== undefined && r.labels !== undefined) ctx.addIssue({ code: "custom", path: ["labels"], message: "comes from the dataset; give labels only with instances" });
    if (r.dataset === undefined) for (const k of ["split", "rows"] as const) if (r[k] !== undefined) ctx.addIssue({ code: "custom", path: [k], message: "applies to a dataset only" });
  })
  .meta({ id: "AdversarialRequest" });
export type AdversarialRequest = z.infer<typeof adversarialRequestSchema>;

const prediction = z.object({ class: z.string(), probability: z.number() });

export const adversarialResponseSchema = z
  .object({
    version: z.number().int(),
    output: z.string(),
    method: z.enum(["fgsm", "pgd"]),
    targetClass: z.string().nullable(),
    range: z.tuple([z.number(), z.number()]).nullable().describe("The range the adversarial inputs were kept in; null: none."),
    results: z
      .array(z.object({ epsilon: z.number(), accuracy: z.number(), successRate: z.number() }))
      .describe("Per ε: accuracy on the adversarial inputs, and the attack's success: untargeted, the share of instances classified correctly before that are not after; targeted, the share classified as the target."),
    instances: z.array(
      z.object({
        label: z.string(),
        before: prediction,
        after: z.array(prediction.extend({ epsilon: z.number(), adversarial: z.unknown().describe("The adversarial instance, raw, shaped like the input.") })),
      }),
    ),
  })
  .meta({ id: "AdversarialResponse" });

export const saliencyRequestSchema = z
  .object({
    instances,
    class: classRef.optional().describe("Whose score to explain (default: each instance's predicted class)."),
    output,
  })
  .strict()
  .meta({ id: "SaliencyRequest" });
export type SaliencyRequest = z.infer<typeof saliencyRequestSchema>;

export const occlusionRequestSchema = saliencyRequestSchema
  .extend({
    patch: z.number().int().min(1).max(4096).optional().describe("The grey patch's side, in cells (pixels); default a seventh of the image's smaller side."),
    stride: z.number().int().min(1).max(4096).optional().describe("How far the patch moves; default half the patch."),
    fill: z.number().optional().describe("The patch's raw value; default the middle of the data's range (grey), else 0."),
  })
  .strict()
  .meta({ id: "OcclusionRequest" });
export type OcclusionRequest = z.infer<typeof occlusionRequestSchema>;

const map = z.object({
  class: z.string(),
  probability: z.number().describe("The class's probability for the instance as it is."),
  height: z.number().int(),
  width: z.number().int(),
  values: z.array(z.array(z.number())).describe("[height][width]."),
});

export const saliencyResponseSchema = z
  .object({
    version: z.number().int(),
    output: z.string(),
    maps: z.array(map).describe("Per instance: |∂ score / ∂ input| (the largest over channels) of the class's logit less the mean logit."),
  })
  .meta({ id: "SaliencyResponse" });

export const occlusionResponseSchema = z
  .object({
    version: z.number().int(),
    output: z.string(),
    patch: z.number().int(),
    stride: z.number().int(),
    fill: z.number(),
    maps: z.array(map).describe("Per instance, per patch position (its top-left corner at multiples of the stride): the class's probability as it is less its probability with the patch there."),
  })
  .meta({ id: "OcclusionResponse" });

export const activationsRequestSchema = z
  .object({
    layer: z.string().min(1).describe("A layer's name, as the model's summary lists it."),
    instances: instances.max(16, "at most 16 instances per request"),
  })
  .strict()
  .meta({ id: "ActivationsRequest" });
export type ActivationsRequest = z.infer<typeof activationsRequestSchema>;

export const activationsResponseSchema = z
  .object({
    version: z.number().int(),
    layer: z.string(),
    shape: z.array(z.number().int()).describe("Batch first."),
    values: z.unknown().describe("The layer's output, nested like its shape."),
  })
  .meta({ id: "ActivationsResponse" });

export const filtersQuerySchema = z.object({ layer: z.string().min(1).describe("A convolution's name, as the model's summary lists it.") });

export const filtersResponseSchema = z
  .object({
    version: z.number().int(),
    layer: z.string(),
    shape: z.array(z.number().int()).describe("[kernel height, kernel width, input channels, filters] (a 1-D convolution's height is its length, width 1)."),
    values: z.unknown().describe("The kernel, nested like its shape."),
  })
  .meta({ id: "FiltersResponse" });
