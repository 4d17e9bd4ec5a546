// A pruning job's first step (lib/engine/probes/pruning.ts does the math): on the version it
// starts from, the validation metrics at a range of sparsities for both criteria (without
// fine-tuning: what each criterion keeps of the network), then the weights pruned as asked. The
// masks hold the pruned weights at zero through fine-tuning; a resumed job rebuilds them from the
// zeros its checkpoint holds.
import * as tf from "@tensorflow/tfjs";
import { applyMasks, type Criterion, maskKeeper, type MaskKeeper, prunableWeights, pruneMasks, saliencyOf, sparsityOf } from "../engine/probes/pruning.ts";
import { targetTensor } from "../engine/train/losses.ts";
import { evaluateReport, objectivesOf, outputShapesOf } from "../engine/train/metrics.ts";
import type { Objective, TrainData } from "../engine/train/train-types.ts";
import type { Hyperparameters, PruningReport } from "./training-job-schema.ts";

/** Sparsities of the curve, besides the one asked for. */
const CURVE = [0, 0.25, 0.5, 0.7, 0.8, 0.9, 0.95];
/** Training rows the OBD estimate averages over: enough for a stable diagonal, cheap per vector. */
const SALIENCY_ROWS = 512;
/** Validation rows each point of the curve is measured on. */
const CURVE_ROWS = 2000;

export function prune(model: tf.LayersModel, data: TrainData, split: { train: Int32Array; validation: Int32Array }, objective: Objective, hp: Hyperparameters): { report: PruningReport; keeper: MaskKeeper } {
  const o = hp.prune!;
  const objectives = objectivesOf(model, objective);
  const outputShapes = outputShapesOf(model);
  // The rows as the trainer holds them: inputs, and targets in the losses' form (one-hot for softmax).
  const tensors = (idx: Int32Array) => ({
    xs: data.inputs.map((t) => tf.tensor(gather(t.data, t.shape, idx), [idx.length, ...t.shape], t.dtype ?? "float32")),
    ys: data.targets.map((t, k) => targetTensor({ ...t, data: gather(t.data, t.shape, idx) }, idx.length, objectives[k].loss, outputShapes[k])),
  });
  const first = (idx: Int32Array, n: number) => idx.subarray(0, Math.min(n, idx.length));
  const { xs, ys } = tensors(first(split.train, SALIENCY_ROWS));
  // The curve is measured on validation rows when there are any, else on the sample.
  const measured = split.validation.length ? tensors(first(split.validation, CURVE_ROWS)) : { xs, ys };
  try {
    const original = prunableWeights(model).map((w) => w.read().clone());
    const restore = () => prunableWeights(model).forEach((w, i) => w.write(original[i].clone()));
    const saliency = new Map<Criterion, Map<string, Float32Array>>();
    for (const criterion of ["obd", "magnitude"] as const) saliency.set(criterion, saliencyOf(criterion, model, xs, ys, objective, { samples: o.samples, seed: hp.seed }));
    const curve: PruningReport["curve"] = [];
    for (const criterion of ["obd", "magnitude"] as const) {
      for (const sparsity of [...new Set([...CURVE, o.sparsity])].sort((a, b) => a - b)) {
        applyMasks(model, pruneMasks(saliency.get(criterion)!, sparsity, o.scope));
        curve.push({ criterion, sparsity, metrics: evaluateReport(model, measured.xs, measured.ys, objective, hp.batchSize, "val_").metrics });
        restore();
      }
    }
    const masks = pruneMasks(saliency.get(o.criterion)!, o.sparsity, o.scope);
    const achieved = applyMasks(model, masks);
    tf.dispose(original);
    return { report: { criterion: o.criterion, sparsity: o.sparsity, scope: o.scope, achieved, curve }, keeper: maskKeeper(model, masks) };
  } finally {
    tf.dispose([...xs, ...ys, ...(measured.xs === xs ? [] : [...measured.xs, ...measured.ys])]);
  }
}

/** A resumed pruning job: the pruned weights are the checkpoint's zeros. */
export function keeperFromZeros(model: tf.LayersModel): MaskKeeper {
  const masks = new Map(prunableWeights(model).map((w) => [w.name, Float32Array.from(w.read().dataSync(), (v) => (v === 0 ? 0 : 1))]));
  return maskKeeper(model, masks);
}

export { sparsityOf };

function gather(data: Float32Array, shape: number[], idx: Int32Array): Float32Array {
  const width = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(idx.length * width);
  idx.forEach((r, i) => out.set(data.subarray(r * width, (r + 1) * width), i * width));
  return out;
}
