// A dataset made ready for one training job: split into train / validation / test rows (seeded,
// stratified for classification), each input's preprocessing fitted on the training rows only and
// applied to every row. Deterministic in (data, hyperparameters), so a resumed attempt prepares
// exactly what the first one did.
import type { DatasetTensors, UnpackedDataset } from "../data/packing.ts";
import { applyPreprocessing, fitPreprocessing, fittedShape, specFor } from "../data/preprocessing/preprocessor.ts";
import type { FittedPreprocessing, PreprocessingField } from "../data/preprocessing/preprocessing-schema.ts";
import { splitRows, strataOutput, type Split } from "./data-split.ts";

export interface PreparedData {
  data: UnpackedDataset;
  split: Split;
  /** Per model input (in the model's order): the fitted preprocessing, if any, and the raw row shape clients send. */
  inputs: { fitted?: FittedPreprocessing; rawShape: number[] }[];
}

export interface PreparationOptions {
  validationSplit: number;
  testSplit?: number;
  stratify?: boolean;
  preprocessing?: PreprocessingField;
  seed: number;
}

/**
 * The job's train / validation / test rows: seeded, stratified by the first output's classes
 * unless turned off. Insight jobs ask it too, for the rows a version was (not) trained on.
 */
export function splitOf(dataset: Pick<DatasetTensors, "outputs">, raw: UnpackedDataset, opts: Omit<PreparationOptions, "preprocessing">): Split {
  const k = strataOutput(dataset.outputs, opts.stratify);
  const strataBlock = k === undefined ? undefined : raw.targets.find((t) => t.name === dataset.outputs[k].name);
  return splitRows(raw.rows, {
    validationSplit: opts.validationSplit,
    testSplit: opts.testSplit ?? 0,
    seed: opts.seed,
    strata: strataBlock?.data,
    classes: strataBlock?.classes,
  });
}

/** `raw` is the dataset unpacked in the model's input order (`inputOrder` names its inputs). */
export function prepareData(dataset: DatasetTensors, raw: UnpackedDataset, inputOrder: string[], opts: PreparationOptions): PreparedData {
  const split = splitOf(dataset, raw, opts);
  const featureNames = dataset.featureNames;
  const inputs = raw.inputs.map((block, i) => {
    const input = dataset.inputs.find((d) => d.name === inputOrder[i])!;
    const fitted = fitPreprocessing(input, block.data, split.train, specFor(opts.preprocessing, input.name), featureNames);
    return { fitted, rawShape: block.shape };
  });
  const data: UnpackedDataset = {
    ...raw,
    inputs: raw.inputs.map((block, i) => {
      const { fitted } = inputs[i];
      return fitted ? { data: applyPreprocessing(fitted, block.data, raw.rows), shape: fittedShape(fitted, block.shape) } : block;
    }),
  };
  return { data, split, inputs };
}
