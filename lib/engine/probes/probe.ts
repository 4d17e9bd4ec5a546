// The probes as messages: what the API asks an inference thread to compute on a version's
// raw-input graph, and what comes back (plain arrays, copied back: small beside a forward pass's
// batch, and a typed array from tfjs may view memory the backend still owns). One dispatcher.
import * as tf from "@tensorflow/tfjs";
import { attack } from "./attacks.ts";
import { occlusion, saliency } from "./attribution.ts";
import { activations, filters } from "./internals.ts";

export interface RawBatch {
  data: Float32Array;
  /** Batch axis first. */
  shape: number[];
}

export type Probe =
  | { kind: "attack"; input: RawBatch; labels: Int32Array; output: number; method: "fgsm" | "pgd"; epsilons: number[]; steps: number; stepSize?: number; targetClass?: number; range?: [number, number] }
  /** `classes`: per row, the class to explain; absent, each row's predicted class. */
  | { kind: "saliency"; input: RawBatch; classes?: Int32Array; output: number }
  | { kind: "occlusion"; input: RawBatch; classes?: Int32Array; output: number; patch: number; stride: number; fill: number }
  | { kind: "activations"; input: RawBatch; layer: string }
  | { kind: "filters"; layer: string };

export type ProbeResult =
  | { kind: "attack"; before: Float32Array; runs: { epsilon: number; adversarial: Float32Array; after: Float32Array }[] }
  | { kind: "saliency"; maps: Float32Array; probabilities: Float32Array; classes: Int32Array }
  | { kind: "occlusion"; maps: Float32Array; rows: number; cols: number; baseline: Float32Array; classes: Int32Array }
  | { kind: "activations"; data: Float32Array; shape: number[] }
  | { kind: "filters"; data: Float32Array; shape: number[] };

/** Runs a probe on `model` (raw inputs in); request paths in errors are the API's field names. */
export function runProbe(model: tf.LayersModel, probe: Probe): ProbeResult {
  if (probe.kind === "filters") return { kind: "filters", ...filters(model, probe.layer, "layer") };
  const x = tf.tensor(probe.input.data, probe.input.shape);
  try {
    switch (probe.kind) {
      case "attack": {
        const before = tf.tidy(() => {
          const out = [model.apply(x, { training: false })].flat()[probe.output] as tf.Tensor;
          const p = out.reshape([out.shape[0], -1]);
          return (p.shape[1] === 1 ? tf.concat([tf.sub(1, p), p], 1) : p).dataSync() as Float32Array;
        });
        const runs = probe.epsilons.map((epsilon) => {
          const r = attack(model, x, probe.labels, { method: probe.method, epsilon, steps: probe.steps, stepSize: probe.stepSize, targetClass: probe.targetClass, range: probe.range, output: probe.output });
          return { epsilon, adversarial: r.adversarial, after: r.after };
        });
        return { kind: "attack", before, runs };
      }
      case "saliency":
        return { kind: "saliency", ...saliency(model, x, probe.classes, probe.output) };
      case "occlusion":
        return { kind: "occlusion", ...occlusion(model, x, probe.classes, probe) };
      case "activations":
        return { kind: "activations", ...activations(model, x, probe.layer, "layer") };
    }
  } finally {
    x.dispose();
  }
}
