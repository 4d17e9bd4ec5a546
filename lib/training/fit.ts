// How a model and a dataset fit together for training: which dataset input feeds each model
// input, which labels train each output, and with which loss. The API checks this before a job is
// queued (so a mismatch is a 400, not a failed job); the worker uses the same answer to train.
import { matchInputs, matchOutputs, type DatasetInput, type DatasetOutput } from "../data/dataset-service.ts";
import { lossFor, type OutputObjective } from "../engine/trainer.ts";
import { ValidationError } from "../errors.ts";
import { finalActivation } from "../spec/build-model.ts";
import { isGraph, modelInputs, modelOutputNames, outputLoss, type ModelSpec } from "../spec/model-spec.ts";

export interface Fit {
  /** Dataset input names, in the model's input order. */
  inputOrder: string[];
  /** Dataset label names, in the model's output order. */
  outputOrder: string[];
  objectives: OutputObjective[];
}

const NEEDS = { categoricalCrossentropy: "softmax", sparseCategoricalCrossentropy: "softmax", binaryCrossentropy: "sigmoid" } as const;

export function fitModelToDataset(spec: ModelSpec, outputShapes: (number | null)[][], dataset: { inputs: DatasetInput[]; outputs: DatasetOutput[] }): Fit {
  const inputOrder = matchInputs(modelInputs(spec), dataset.inputs);
  const names = modelOutputNames(spec);
  const labelSets = matchOutputs(names, dataset.outputs);
  const objectives = names.map((name, k): OutputObjective => {
    const labels = labelSets[k];
    const { loss: requested, weight, margin } = outputLoss(spec, name);
    const where = names.length === 1 ? "model" : `model output '${name}'`;
    let loss;
    try {
      loss = lossFor({ task: labels.task, classes: labels.classes, targetShape: labels.shape }, outputShapes[k], requested);
    } catch (err) {
      // The engine speaks of "model"; with several outputs, say which one.
      if (err instanceof ValidationError) throw new ValidationError(err.problems.map((p) => (p.path === "model" ? { ...p, path: where } : p)));
      throw err;
    }
    // A loss chosen from the data must still suit the output: cross-entropy of a linear output
    // trains nothing useful, and would do so silently. (A loss the spec names was checked with it.)
    const want = !requested && spec.mode !== "perceptron" ? (NEEDS as Record<string, string>)[loss] : undefined;
    if (want) {
      const { activation, path } = finalActivation(spec, isGraph(spec) ? name : undefined);
      if (activation !== want) {
        throw ValidationError.at(where, `${labels.classes.length} classes train with ${loss}, which needs a ${want} output; the output (${path}) ends in ${activation === "none" ? "no activation" : activation}`);
      }
    }
    return { name, loss, weight, ...(loss === "contrastive" ? { margin } : {}) };
  });
  return { inputOrder, outputOrder: labelSets.map((l) => l.name), objectives };
}
