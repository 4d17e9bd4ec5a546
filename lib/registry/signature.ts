// What a model version records about how to call it, written when a training job registers the
// version and read by serving: the inputs (names, and the row shapes it was trained on) and the
// outputs (names, and what their numbers mean).
import { DEFAULT_INPUT, DEFAULT_OUTPUT } from "../model-spec/model-spec-schema.ts";
import type { Task } from "../model-spec/objectives.ts";

export interface Signature {
  inputs: { name: string; shape: number[] }[];
  outputs: { name: string; task: Task; classes: string[] }[];
}

/** Reads a stored signature; versions from before named inputs and outputs kept one input's shape and one output's task. */
export function readSignature(raw: unknown): Signature {
  const s = raw as Partial<Signature> & { inputShape?: number[]; task?: Signature["outputs"][number]["task"]; classes?: string[] };
  return {
    inputs: s.inputs ?? [{ name: DEFAULT_INPUT, shape: s.inputShape ?? [] }],
    outputs: s.outputs ?? [{ name: DEFAULT_OUTPUT, task: s.task ?? "regression", classes: s.classes ?? [] }],
  };
}
