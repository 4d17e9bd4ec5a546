// The one home of the rules that tie a model's output, its loss and its labels together: which
// activation a loss needs, what a contrastive output looks like, which loss a set of labels
// trains with, and what the perceptron mode allows. The API asks these rules when a spec is
// stored and when a job is queued; the worker asks the same ones before it trains.
//
// They live with the spec language, not with training, because both the model registry (a spec
// with no dataset yet) and training (a spec and a dataset) need them, and they need nothing but
// the spec, output shapes and a description of the labels.
import { z } from "zod";
import { ValidationError, type FieldProblem } from "../errors.ts";
import { finalActivation, formatShape, isGraph, modelOutputNames, outputLoss, type Activation, type LayerOf, type LayerSpec, type LossName, type ModelSpec, type NodeSpec } from "./model-spec-schema.ts";

export const taskSchema = z.enum(["classification", "regression"]);
export type Task = z.infer<typeof taskSchema>;

/** What one output's labels are, as far as the choice of loss is concerned. */
export interface LabelsInfo {
  task: Task;
  classes: string[];
  /** The shape of one row's labels: [1] for a class or a value, [H, W] for a per-pixel mask. */
  targetShape: number[];
}

/** How one output is trained: its loss and that loss's weight in the total. */
export interface OutputObjective {
  name: string;
  loss: LossName;
  weight: number;
  /** contrastive only: the distance beyond which a dissimilar pair costs nothing (default 1). */
  margin?: number;
}

/** The output activation a loss needs to mean anything. */
const NEEDS: Partial<Record<LossName, Activation>> = { categoricalCrossentropy: "softmax", sparseCategoricalCrossentropy: "softmax", binaryCrossentropy: "sigmoid" };

const endsIn = (activation: Activation | "none") => (activation === "none" ? "no activation" : activation);
const valuesIn = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Why an output cannot carry a contrastive loss (it must be one distance per pair), or undefined. */
function contrastiveOutputProblem(shape: readonly (number | null)[]): string | undefined {
  return shape.every((d) => d === 1) ? undefined : `contrastive needs one value per pair (a distance); the output has shape ${formatShape(shape)}`;
}

/**
 * Problems with a spec's training setup that need no dataset: step activations under backprop,
 * the perceptron mode's single layer, each named loss against its output's activation and, when
 * the built output shapes are given, a contrastive loss on an output that is not one value.
 */
export function checkTraining(spec: ModelSpec, outputShapes?: (number | null)[][]): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const entries: [string, NodeSpec | LayerSpec][] = isGraph(spec)
    ? Object.entries(spec.nodes).map(([n, l]) => [`spec.nodes.${n}`, l])
    : spec.layers!.map((l, i) => [`spec.layers[${i}]`, l]);
  if (spec.mode === "perceptron") {
    const layers = spec.layers;
    const ok = !isGraph(spec) && layers?.length === 1 && layers[0].type === "dense" && (layers[0] as LayerOf<"dense">).activation === "step";
    if (!ok) problems.push({ path: "spec.mode", message: "perceptron mode trains a single dense layer with a step activation (a sequential spec with one layer)" });
  } else {
    for (const [path, l] of entries) {
      if ("activation" in l && l.activation === "step") {
        problems.push({ path: `${path}.activation`, message: "binary step has no gradient, so backpropagation cannot train through it; use mode \"perceptron\" or another activation" });
      }
    }
  }
  modelOutputNames(spec).forEach((output, k) => {
    const { loss, path: lossPath } = outputLoss(spec, output);
    const want = loss && NEEDS[loss];
    if (want) {
      const { activation, path } = finalActivation(spec, isGraph(spec) ? output : undefined);
      if (activation !== want) problems.push({ path: lossPath, message: `${loss} needs a ${want} output; the output (${path}) ends in ${endsIn(activation)}` });
    }
    const problem = loss === "contrastive" && outputShapes ? contrastiveOutputProblem(outputShapes[k]) : undefined;
    if (problem) problems.push({ path: lossPath, message: problem });
  });
  return problems;
}

/**
 * Picks an output's loss from its labels and shape (or checks the one the spec names), or
 * explains why they do not fit. Classification targets are class ids, one per output position:
 * an output [k] takes one id per row, a per-pixel output [H, W, k] takes [H, W] ids.
 * `where` names the output and the loss in messages (default `model` and `spec.loss`).
 */
export function lossFor(labels: LabelsInfo, outputShape: (number | null)[], requested?: LossName, where: { output?: string; loss?: string } = {}): LossName {
  const at = where.output ?? "model";
  const lossAt = where.loss ?? "spec.loss";
  const out = outputShape.map((d) => d ?? -1);
  if (requested === "contrastive") {
    // A distance per pair against 0 (similar) or 1 (dissimilar): numbers, or the classes "0" and "1".
    const problem = contrastiveOutputProblem(outputShape);
    if (problem) throw ValidationError.at(at, problem);
    if (valuesIn(labels.targetShape) !== 1) throw ValidationError.at(at, `contrastive loss needs one label per pair; the labels have shape ${formatShape(labels.targetShape)}`);
    if (labels.task === "classification" && !(labels.classes.length === 2 && labels.classes[0] === "0" && labels.classes[1] === "1")) {
      throw ValidationError.at(lossAt, `contrastive needs labels 0 (similar) and 1 (dissimilar); the dataset's classes are ${labels.classes.join(", ")}`);
    }
    return "contrastive";
  }
  if (labels.task === "regression") {
    if (requested && requested !== "meanSquaredError") throw ValidationError.at(lossAt, `${requested} needs a classification dataset; this one is regression`);
    const units = valuesIn(out);
    const want = valuesIn(labels.targetShape);
    if (units !== want) {
      // The usual cause: class ids uploaded as numbers, which read as regression targets.
      const hint = units > 1 && want === 1 ? "; if the labels are class ids, upload the dataset with task=classification (?task=classification for files)" : "";
      throw ValidationError.at(at, `output ${formatShape(out)} has ${units} values, the regression dataset has ${want} target(s) per row${hint}`);
    }
    return "meanSquaredError";
  }
  if (requested === "meanSquaredError") throw ValidationError.at(lossAt, "meanSquaredError needs a regression dataset; this one is classification");
  const k = labels.classes.length;
  const last = out[out.length - 1];
  const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
  const positions = out.slice(0, -1);
  const targetPositions = labels.targetShape.length === 1 && labels.targetShape[0] === 1 ? [] : labels.targetShape;
  if (!sameShape(positions, targetPositions) && !(last === 1 && sameShape(out, labels.targetShape))) {
    throw ValidationError.at(at, `output ${formatShape(out)} does not fit targets of shape ${formatShape(labels.targetShape)} with ${k} classes`);
  }
  if (last === k && requested !== "binaryCrossentropy") return requested ?? "categoricalCrossentropy";
  if (last === 1 && k === 2 && (!requested || requested === "binaryCrossentropy")) return "binaryCrossentropy";
  throw ValidationError.at(at, `output has ${last} units, the dataset has ${k} classes (${labels.classes.join(", ")})`);
}

/**
 * The objective of every output of a spec, given each output's built shape and labels (in the
 * model's output order). A loss chosen from the labels must still suit the output: cross-entropy
 * of a linear output trains nothing useful, and would do so silently. (A loss the spec names was
 * checked against its output by checkTraining.)
 */
export function objectivesFor(spec: ModelSpec, outputShapes: (number | null)[][], labels: LabelsInfo[]): OutputObjective[] {
  const names = modelOutputNames(spec);
  return names.map((name, k): OutputObjective => {
    const { loss: requested, weight, margin, path: lossPath } = outputLoss(spec, name);
    const at = names.length === 1 ? "model" : `model output '${name}'`;
    const loss = lossFor(labels[k], outputShapes[k], requested, { output: at, loss: lossPath });
    const want = !requested && spec.mode !== "perceptron" ? NEEDS[loss] : undefined;
    if (want) {
      const { activation, path } = finalActivation(spec, isGraph(spec) ? name : undefined);
      if (activation !== want) {
        throw ValidationError.at(at, `${labels[k].classes.length} classes train with ${loss}, which needs a ${want} output; the output (${path}) ends in ${endsIn(activation)}`);
      }
    }
    return { name, loss, weight, ...(loss === "contrastive" ? { margin } : {}) };
  });
}
