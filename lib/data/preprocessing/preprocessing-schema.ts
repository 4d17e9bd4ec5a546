// Preprocessing as declared (with a training job) and as fitted (stored with the model version
// and shown by GET on it). Declared steps name what to do; fitted ones carry the statistics of the
// training split, so that inference applies exactly what training did.
import { z } from "zod";

export const preprocessingSpecSchema = z
  .object({
    numeric: z
      .enum(["standardize", "minmax", "none"])
      .optional()
      .describe("Tabular numeric columns: (x − mean) / std (default), (x − min) / (max − min), or as uploaded."),
    categorical: z.enum(["onehot", "ordinal"]).optional().describe("Tabular categorical columns: one-hot (default), or the category's code."),
    impute: z
      .enum(["mean", "median", "mostFrequent"])
      .optional()
      .describe("How missing cells (a dataset uploaded with ?missing=impute) are filled: numeric columns by the training split's mean (default) or median, categorical ones by their most frequent category."),
    image: z
      .object({
        scale: z.number().positive().max(1e6).optional().describe("Multiplies every pixel (default 1/255: 0–255 becomes 0–1)."),
        center: z.enum(["none", "perChannel", "meanImage"]).optional().describe("Subtracts the training split's mean per channel, or its mean image, after scaling (default none)."),
      })
      .strict()
      .optional(),
  })
  .strict()
  .meta({ id: "Preprocessing", description: "Fitted on the training split only, stored with the model version, and applied identically by :predict." });
export type PreprocessingSpec = z.infer<typeof preprocessingSpecSchema>;

/** One spec for every input, or one per input name. */
export const preprocessingFieldSchema = z.union([preprocessingSpecSchema, z.record(z.string(), preprocessingSpecSchema)]);
export type PreprocessingField = z.infer<typeof preprocessingFieldSchema>;

const fittedColumnSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("numeric"),
    name: z.string(),
    /** Missing cells become this value before scaling. */
    fill: z.number().optional(),
    /** x → (x − shift) × scale. */
    shift: z.number(),
    scale: z.number(),
  }),
  z.object({
    type: z.literal("categorical"),
    name: z.string(),
    categories: z.array(z.string()),
    encoding: z.enum(["onehot", "ordinal"]),
    /** Missing cells become this category code. */
    fill: z.number().int().optional(),
  }),
]);
export type FittedColumn = z.infer<typeof fittedColumnSchema>;

export const fittedPreprocessingSchema = z
  .discriminatedUnion("kind", [
    z.object({ kind: z.literal("tabular"), columns: z.array(fittedColumnSchema) }),
    z.object({
      kind: z.literal("image"),
      scale: z.number(),
      center: z.enum(["none", "perChannel", "meanImage"]),
      /** After scaling: one value per channel (perChannel) or per value of an image (meanImage). */
      mean: z.array(z.number()).optional(),
    }),
  ])
  .meta({ id: "FittedPreprocessing", description: "What a model version does to each raw input before the network: the training split's statistics." });
export type FittedPreprocessing = z.infer<typeof fittedPreprocessingSchema>;
