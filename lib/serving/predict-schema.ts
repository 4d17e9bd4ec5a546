import { z } from "zod";
import { nestedNumbersSchema as nested } from "../data/nested.ts";

// An instance is checked at its outer level only: its values and shape are checked against the
// model's signature by flattenInto, which names the exact element (instances[0][2]) where a
// schema union could only say instances[0].
const instanceSchema = z
  .custom<unknown[] | Record<string, unknown>>((v) => typeof v === "object" && v !== null, { error: "expected an array of numbers, or an object of them by input name" })
  .meta({ type: ["array", "object"] });

export const predictRequestSchema = z
  .object({
    instances: z
      .array(instanceSchema)
      .min(1, "must hold at least one instance")
      .describe("One entry per instance: nested arrays shaped like the model's input, or, for a model with several inputs, an object of them by input name ({\"left\": [...], \"right\": [...]})."),
  })
  .meta({ id: "PredictRequest", description: "TensorFlow Serving's row format." });

export const predictResponseSchema = z
  .object({ predictions: z.array(z.union([z.array(nested), z.record(z.string(), nested)])) })
  .meta({
    id: "PredictResponse",
    description: "One prediction per instance, shaped like the model's output: class probabilities for a softmax model, [H, W, classes] for a per-pixel one; for a model with several outputs, an object of them by output name.",
  });
