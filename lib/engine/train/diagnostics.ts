// The textbook failure modes of training, measured once per epoch (issue 9, "Diagnose"):
// - per-layer gradient norms and update/weight ratios, from one backward pass on a fixed sample of
//   training rows (the same rows every epoch, so epochs compare);
// - dead ReLUs: per ReLU layer, the share of units that are never active on a sample of
//   validation rows (training rows if there is no validation split);
// - saturation: per sigmoid, tanh or softmax layer, the share of activations within 1% of a bound,
//   where their gradient all but vanishes.
// From the series so far, warnings in the terms of the canon: vanishing gradients (early layers'
// norms orders of magnitude below the last's), exploding gradients (norms growing epoch after
// epoch to far above where they started), mostly dead ReLU layers, saturated layers.
// Costs one extra forward and backward pass on at most SAMPLE_ROWS rows per epoch.
import * as tf from "@tensorflow/tfjs";
import { forwardForLoss, type logitLayers } from "./losses.ts";
import type { ConfusionMatrix } from "./output-scores.ts";
import type { OutputObjective } from "./train-types.ts";

/** Rows sampled for the measurements. */
export const SAMPLE_ROWS = 64;

export interface LayerDiagnostics {
  layer: string;
  /** L2 norm of the loss's gradient with respect to the layer's trainable weights (layers with weights). */
  gradNorm?: number;
  /** L2 norm of the layer's trainable weights. */
  weightNorm?: number;
  /** learning rate × gradNorm / weightNorm: how far one step moves the weights, relatively (healthy around 1e-3). */
  updateRatio?: number;
  /** ReLU layers: share of units never active on the sample. */
  deadFraction?: number;
  /** Sigmoid, tanh and softmax layers: share of activations within 1% of a bound. */
  saturatedFraction?: number;
}

export interface EpochDiagnostics {
  epoch: number;
  /** L2 norm of the whole gradient. */
  gradNorm: number;
  layers: LayerDiagnostics[];
  /** As stored: per classification output, the validation confusion matrix of the epoch. */
  confusion?: ConfusionMatrix[];
}

/** One warning, with the epoch it was first raised at; `kind` is stable for clients to switch on. */
export interface DiagnosticWarning {
  kind: "vanishingGradients" | "explodingGradients" | "deadRelu" | "saturation";
  epoch: number;
  message: string;
}

interface ActivationLayer {
  name: string;
  activation?: { getClassName(): string };
  getClassName(): string;
  output: tf.SymbolicTensor | tf.SymbolicTensor[];
  trainableWeights: tf.LayerVariable[];
}

/** The kind of nonlinearity a layer ends in, if one that these diagnostics look at. */
function nonlinearity(layer: ActivationLayer): "relu" | "sigmoid" | "tanh" | "softmax" | undefined {
  const name = layer.activation?.getClassName();
  return name === "relu" || name === "sigmoid" || name === "tanh" || name === "softmax" ? name : undefined;
}

/** Measures a model epoch after epoch; the model whose outputs are the watched activations is built once. */
export class Diagnoser {
  private readonly layers: ActivationLayer[];
  private readonly watched: ActivationLayer[];
  private readonly probeModel: tf.LayersModel | undefined;
  /** Names of the model's output layers: their saturation is reported, not warned about (a confident classifier is saturated). */
  readonly outputLayers: Set<string>;

  constructor(private readonly model: tf.LayersModel, private readonly objectives: OutputObjective[], private readonly logits: ReturnType<typeof logitLayers>) {
    this.layers = model.layers as unknown as ActivationLayer[];
    // A layer called more than once (shared weights) has no single output to watch.
    const single = (l: ActivationLayer) => {
      try {
        return !Array.isArray(l.output);
      } catch {
        return false;
      }
    };
    this.watched = this.layers.filter((l) => nonlinearity(l) && single(l));
    this.probeModel = this.watched.length ? tf.model({ inputs: model.inputs, outputs: this.watched.map((l) => l.output as tf.SymbolicTensor) }) : undefined;
    this.outputLayers = new Set(model.outputs.map((o) => o.sourceLayer.name));
  }

  /** One epoch's measurements. `train` and `probe` are the sample rows (inputs and targets in the model's order). */
  measure(epoch: number, learningRate: number, train: { xs: tf.Tensor[]; ys: tf.Tensor[] }, probe: tf.Tensor[]): EpochDiagnostics {
    const { model, layers, watched, probeModel, objectives, logits } = this;
    const withWeights = layers.filter((l) => l.trainableWeights.length > 0);
    const vars = withWeights.flatMap((l) => l.trainableWeights.map((w) => w.read() as tf.Variable));
    let result: EpochDiagnostics | undefined;
    // Plain numbers leave the scope; every tensor made here is disposed with it.
    tf.tidy(() => {
      const { grads } = tf.variableGrads(() => {
        const { terms } = forwardForLoss(model, train.xs, train.ys, objectives, logits, false);
        return (terms.length === 1 ? terms[0] : tf.addN(terms)) as tf.Scalar;
      }, vars);
      const out: LayerDiagnostics[] = [];
      let total = 0;
      for (const layer of withWeights) {
        let g2 = 0;
        let w2 = 0;
        for (const w of layer.trainableWeights) {
          const v = w.read() as tf.Variable;
          const g = grads[v.name];
          if (g) g2 += tf.sum(tf.square(g)).dataSync()[0];
          w2 += tf.sum(tf.square(v)).dataSync()[0];
        }
        total += g2;
        const gradNorm = Math.sqrt(g2);
        const weightNorm = Math.sqrt(w2);
        out.push({ layer: layer.name, gradNorm, weightNorm, updateRatio: weightNorm > 0 ? (learningRate * gradNorm) / weightNorm : undefined });
      }

      // Activations of every layer that ends in a nonlinearity, in one pass over the probe rows.
      if (probeModel) {
        const acts = probeModel.predict(probe.length === 1 ? probe[0] : probe) as tf.Tensor | tf.Tensor[];
        (Array.isArray(acts) ? acts : [acts]).forEach((a, i) => {
          const layer = watched[i];
          const kind = nonlinearity(layer)!;
          let entry = out.find((d) => d.layer === layer.name);
          if (!entry) out.push((entry = { layer: layer.name }));
          const units = a.reshape([a.shape[0], -1]);
          if (kind === "relu") {
            // A unit is dead when it is 0 for every row of the probe.
            const alive = tf.greater(tf.max(units, 0), 0);
            entry.deadFraction = 1 - tf.mean(tf.cast(alive, "float32")).dataSync()[0];
          } else if (kind === "softmax") {
            entry.saturatedFraction = tf.mean(tf.cast(tf.greater(tf.max(a, -1), 0.99), "float32")).dataSync()[0];
          } else {
            const [lo, hi] = kind === "sigmoid" ? [0.01, 0.99] : [-0.99, 0.99];
            entry.saturatedFraction = tf.mean(tf.cast(tf.logicalOr(tf.less(units, lo), tf.greater(units, hi)), "float32")).dataSync()[0];
          }
        });
      }
      // Layers in the model's order, so that "early" and "late" mean what they say.
      const order = new Map(layers.map((l, i) => [l.name, i]));
      out.sort((a, b) => order.get(a.layer)! - order.get(b.layer)!);
      result = { epoch, gradNorm: Math.sqrt(total), layers: out };
    });
    return result!;
  }
}

/** Early layers' gradients this many times smaller than the last layer's: vanishing. */
const VANISHING_RATIO = 1e-3;
/** Gradients this many times their first epoch's, after growing three epochs in a row: exploding. */
const EXPLODING_GROWTH = 100;
const DEAD_SHARE = 0.5;
const SATURATED_SHARE = 0.9;

const pct = (x: number) => `${Math.round(x * 100)}%`;
const sci = (x: number) => x.toExponential(1);

/** A warning with the key it is raised once under (its kind, and its layer for per-layer kinds). */
export type KeyedWarning = DiagnosticWarning & { key: string };

/**
 * The warnings the series shows at its last epoch, each key once (`raised` are those already
 * given). Output layers' saturation is not warned about: a confident classifier is saturated, and
 * its loss is computed from logits, so its gradient does not vanish.
 */
export function warningsOf(series: EpochDiagnostics[], raised: ReadonlySet<string> = new Set(), outputLayers: ReadonlySet<string> = new Set()): KeyedWarning[] {
  const now = series.at(-1);
  if (!now) return [];
  const found: (DiagnosticWarning & { key: string })[] = [];
  const withGrads = now.layers.filter((l) => l.gradNorm !== undefined && l.gradNorm > 0 && Number.isFinite(l.gradNorm));
  if (withGrads.length >= 3) {
    const last = withGrads.at(-1)!;
    const first = withGrads[0];
    const ratio = first.gradNorm! / last.gradNorm!;
    if (ratio < VANISHING_RATIO) {
      found.push({
        key: "vanishingGradients", kind: "vanishingGradients", epoch: now.epoch,
        message: `vanishing gradients: the first layer '${first.layer}' gets a gradient ${sci(ratio)} times the last layer's '${last.layer}' (norms ${sci(first.gradNorm!)} and ${sci(last.gradNorm!)}), so early layers barely learn; use relu-family activations, batch normalization, residual connections or a He/Glorot initialization suited to the activation`,
      });
    }
  }
  if (series.length >= 4) {
    const recent = series.slice(-4).map((s) => s.gradNorm);
    const growing = recent.every((g, i) => i === 0 || g > recent[i - 1]);
    if (growing && now.gradNorm > EXPLODING_GROWTH * series[0].gradNorm) {
      found.push({
        key: "explodingGradients", kind: "explodingGradients", epoch: now.epoch,
        message: `exploding gradients: the gradient norm grew for three epochs in a row to ${sci(now.gradNorm)}, ${Math.round(now.gradNorm / series[0].gradNorm)} times epoch ${series[0].epoch}'s; lower the learning rate, clip gradients or normalize the inputs`,
      });
    }
  }
  for (const l of now.layers) {
    if (l.deadFraction !== undefined && l.deadFraction > DEAD_SHARE) {
      found.push({
        key: `deadRelu:${l.layer}`, kind: "deadRelu", epoch: now.epoch,
        message: `dead ReLUs: ${pct(l.deadFraction)} of layer '${l.layer}''s units are never active on sampled rows, so they pass no gradient; lower the learning rate, check the bias initialization, or use leakyRelu`,
      });
    }
    if (l.saturatedFraction !== undefined && l.saturatedFraction > SATURATED_SHARE && !outputLayers.has(l.layer)) {
      found.push({
        key: `saturation:${l.layer}`, kind: "saturation", epoch: now.epoch,
        message: `saturated outputs: ${pct(l.saturatedFraction)} of layer '${l.layer}''s activations sit within 1% of a bound, where the gradient all but vanishes; normalize the inputs or lower the learning rate`,
      });
    }
  }
  return found.filter((w) => !raised.has(w.key));
}
