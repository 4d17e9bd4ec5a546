// How a model and a dataset fit together for training: which dataset input feeds each model
// input, which labels train each output, and with which loss. The API checks this before a job is
// queued (so a mismatch is a 400, not a failed job); the worker uses the same answer to train.
import type { DatasetInput, DatasetOutput } from "../data/dataset-schema.ts";
import { processedShape, specFor } from "../data/preprocessing/preprocessor.ts";
import type { PreprocessingField } from "../data/preprocessing/preprocessing-schema.ts";
import { ValidationError } from "../errors.ts";
import { formatShape, modelInputs, modelOutputNames, type ModelSpec } from "../model-spec/model-spec-schema.ts";
import { objectivesFor, type OutputObjective } from "../model-spec/objectives.ts";

export interface DatasetMatch {
  /** Dataset input names, in the model's input order. */
  inputOrder: string[];
  /** Dataset label names, in the model's output order. */
  outputOrder: string[];
  /** The labels that train each output, in the model's output order. */
  labels: DatasetOutput[];
  objectives: OutputObjective[];
}

/**
 * Pairs a spec (and its built output shapes) with a dataset's inputs and labels, and picks each
 * output's loss; a 400 says what does not fit. Inputs are compared after preprocessing (a tabular
 * input's one-hot columns widen it), as declared by `preprocessing` or by default.
 */
export function matchModelToDataset(
  spec: ModelSpec,
  outputShapes: (number | null)[][],
  dataset: { inputs: DatasetInput[]; outputs: DatasetOutput[] },
  preprocessing?: PreprocessingField,
): DatasetMatch {
  const processed = dataset.inputs.map((i) => ({ ...i, shape: processedShape(i, specFor(preprocessing, i.name)), stored: i.shape }));
  const inputOrder = matchInputs(modelInputs(spec), processed);
  const labels = matchOutputs(modelOutputNames(spec), dataset.outputs);
  const objectives = objectivesFor(spec, outputShapes, labels.map((l) => ({ task: l.task, classes: l.classes, targetShape: l.shape })));
  return { inputOrder, outputOrder: labels.map((l) => l.name), labels, objectives };
}

/**
 * Pairs each of a model's inputs or outputs (`names`) with the dataset's part of the same name;
 * a model with one takes a dataset with one whatever the names. `missing` words the 400.
 */
function pairByName<T extends { name: string }>(names: string[], parts: T[], missing: (name: string) => string): T[] {
  const byName = new Map(parts.map((p) => [p.name, p]));
  return names.map((name) => {
    const part = names.length === 1 && parts.length === 1 ? parts[0] : byName.get(name);
    if (!part) throw ValidationError.at("dataset", missing(name));
    return part;
  });
}

/**
 * Pairs a model's inputs with a dataset's and checks their shapes. Returns the dataset input
 * names in the model's order, or throws a 400 that says which input is missing or does not fit.
 */
export function matchInputs(model: { name: string; shape: (number | null)[] }[], dataset: (DatasetInput & { stored?: number[] })[]): string[] {
  const names = model.map((m) => m.name);
  const pairs = pairByName(names, dataset, (name) => `has no input named '${name}' for the model's input of that name (the dataset's inputs: ${dataset.map((i) => i.name).join(", ")})`);
  return pairs.map((d, k) => {
    const m = model[k];
    const fits = m.shape.length === d.shape.length && m.shape.every((dim, i) => dim === null || dim === d.shape[i]);
    if (!fits) {
      const which = model.length === 1 ? "input shape" : `input '${m.name}' shape`;
      const after = d.stored && formatShape(d.stored) !== formatShape(d.shape) ? ` after preprocessing (${formatShape(d.stored)} as stored; categorical columns are one-hot)` : "";
      throw ValidationError.at("model", `${which} ${formatShape(m.shape)} does not match the dataset's rows ${formatShape(d.shape)}${after}`);
    }
    return d.name;
  });
}

/** Pairs a model's outputs with a dataset's sets of labels: the labels for each output, in the model's output order. */
export function matchOutputs(model: string[], dataset: DatasetOutput[]): DatasetOutput[] {
  const missing = (name: string) =>
    `has no labels for the model's output '${name}' (the model's outputs: ${model.join(", ")}; the dataset's: ${dataset.map((o) => o.name).join(", ")})`;
  return pairByName(model, dataset, missing);
}
