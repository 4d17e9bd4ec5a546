// What a model version records about how to call it, written when a training job registers the
// version and read by serving: the inputs (names, the raw row shapes clients send, and the
// preprocessing fitted on the training split that turns them into what the network takes) and
// the outputs (names, and what their numbers mean).
import { z } from "zod";
import { fittedPreprocessingSchema } from "../data/preprocessing/preprocessing-schema.ts";
import { DEFAULT_INPUT, DEFAULT_OUTPUT } from "../model-spec/model-spec-schema.ts";
import { taskSchema } from "../model-spec/objectives.ts";

export const signatureSchema = z
  .object({
    inputs: z.array(
      z.object({
        name: z.string(),
        shape: z.array(z.number().int()).describe("One raw row, as :predict takes it (before preprocessing)."),
        preprocessing: fittedPreprocessingSchema.optional(),
      }),
    ),
    outputs: z.array(z.object({ name: z.string(), task: taskSchema, classes: z.array(z.string()) })),
  })
  .meta({ id: "Signature" });
export type Signature = z.infer<typeof signatureSchema>;

/** Reads a stored signature; versions from before named inputs and outputs kept one input's shape and one output's task. */
export function readSignature(raw: unknown): Signature {
  const s = raw as Partial<Signature> & { inputShape?: number[]; task?: Signature["outputs"][number]["task"]; classes?: string[] };
  return {
    inputs: s.inputs ?? [{ name: DEFAULT_INPUT, shape: s.inputShape ?? [] }],
    outputs: s.outputs ?? [{ name: DEFAULT_OUTPUT, task: s.task ?? "regression", classes: s.classes ?? [] }],
  };
}
