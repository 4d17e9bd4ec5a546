import { z } from "zod";

// Nested arrays of numbers of any depth: one instance per entry, shaped like the model's input.
type Nested = number | Nested[];
const nested: z.ZodType<Nested> = z.lazy(() => z.union([z.number(), z.array(nested)]));

export const predictRequestSchema = z
  .object({
    instances: z.array(z.array(nested)).min(1, "must hold at least one instance"),
  })
  .meta({ id: "PredictRequest", description: "TensorFlow Serving's row format: one entry per instance, shaped like the model's input." });

export const predictResponseSchema = z
  .object({ predictions: z.array(z.array(z.number())) })
  .meta({ id: "PredictResponse", description: "One row of outputs per instance (class probabilities for a softmax model)." });
