// Turns a ModelSpec into a TensorFlow.js model. preflight.ts checks it first without allocating
// (the plan's names and order, the right number of inputs per node, shapes that fit, with the
// shapes on both sides in the error); this builds the walked plan, and reports what tfjs alone
// finds the same way. Every error is a ValidationError at the node's path under the prefix the
// caller gives (`spec` for a request's spec).
import * as tf from "@tensorflow/tfjs";
import { ValidationError } from "../../errors.ts";
import type { Shape } from "../../model-spec/graph-plan.ts";
import { formatShape as fmt, type ModelSpec } from "../../model-spec/model-spec-schema.ts";
import type { LayerSummary, ModelSummary } from "../../model-spec/model-summary-schema.ts";
import { estimateFlops } from "./flops.ts";
import { layerSummary, preflight, summarize, type Preflight } from "./preflight.ts";

export type { LayerSummary, ModelSummary };
type Sym = tf.SymbolicTensor;

export interface BuiltModel {
  model: tf.LayersModel;
  paramCount: number;
  /** Output shape without the batch dimension (the first output's, for several outputs). */
  outputShape: number[];
  outputShapes: Shape[];
  inputShapes: Shape[];
  summary: ModelSummary;
}

export interface BuildOptions {
  /**
   * Initialise every weight to zero instead of running its initializer: for a model built only to
   * be checked and disposed. Random and orthogonal initializers run in JavaScript on the caller's
   * thread (an LSTM of 500 units spends about 19 s in its orthogonal one); zeros cost nothing.
   */
  zeroWeights?: boolean;
  /** The spec's preflight, when the caller already has it; its layer objects become the model's. */
  preflight?: Preflight;
}

/** The layer and the layers it builds inside it (a recurrent layer's cell, a bidirectional's two directions). */
function withInner(layer: tf.layers.Layer): tf.layers.Layer[] {
  const { cell, forwardLayer, backwardLayer } = layer as unknown as Record<string, tf.layers.Layer | undefined>;
  return [layer, ...[cell, forwardLayer, backwardLayer].flatMap((l) => (l ? withInner(l) : []))];
}

/** Builds the network; every problem is a ValidationError at its path. */
export function buildModel(spec: ModelSpec, path = "spec", options: BuildOptions = {}): BuiltModel {
  const pre = options.preflight ?? preflight(spec, path);
  const { plan, steps } = pre;
  const tensors = new Map<string, Sym>();
  for (const i of plan.inputs) tensors.set(i.name, tf.input({ shape: i.shape, dtype: i.dtype, name: i.name }));
  const summaries: LayerSummary[] = [];

  const created: tf.layers.Layer[] = [];
  try {
    for (const step of steps) {
      const { node, layers, inShapes } = step;
      if (!step.shared) {
        created.push(...layers);
        // tfjs's own switch for builds whose weights are overwritten at once; zeros, whatever the initializer.
        if (options.zeroWeights) for (const l of layers.flatMap(withInner)) l.setFastWeightInitDuringBuild(true);
      }
      const inputs = node.inputs.map((n) => tensors.get(n)!);
      let out: Sym;
      try {
        let x: Sym | Sym[] = inputs.length === 1 ? inputs[0] : inputs;
        for (const l of layers) x = l.apply(x) as Sym;
        out = x as Sym;
      } catch (err) {
        if (err instanceof ValidationError) throw err;
        const message = (err as Error).message.replace(/\s+/g, " ").slice(0, 300);
        throw ValidationError.at(node.path, `cannot be applied to input${inShapes.length > 1 ? "s" : ""} of shape ${inShapes.map(fmt).join(" and ")}: ${message}`);
      }
      tensors.set(node.name, out);
      // The built layers' own counts and shapes: what the preflight's are tested against.
      const built = out.shape as Shape;
      const params = step.shared ? 0 : layers.reduce((a, l) => a + l.countParams(), 0);
      summaries.push({ ...layerSummary(step, params), outputShape: built.slice(1), flops: estimateFlops(step.layerSpec, inputs.map((t) => t.shape as Shape), built) });
    }
    const inputs = plan.inputs.map((i) => tensors.get(i.name)!);
    const outputs = plan.outputs.map((o) => tensors.get(o)!);
    const model = tf.model({ inputs, outputs, name: "trainyard" });
    const trainableParams = model.trainableWeights.reduce((a, w) => a + w.shape.reduce<number>((p, d) => p * (d ?? 1), 1), 0);
    const totalParams = model.countParams();
    const outputShapes = outputs.map((o) => (o.shape as Shape).slice(1));
    return {
      model, paramCount: totalParams, outputShape: outputShapes[0] as number[], outputShapes, inputShapes: pre.inputShapes,
      summary: summarize(plan, summaries, totalParams, trainableParams),
    };
  } catch (err) {
    // Layers hold no weights until built; dispose what was built before the failure.
    for (const l of created) {
      try {
        if (l.built) l.dispose();
      } catch {
        /* a layer that was never applied has nothing to free */
      }
    }
    throw err;
  }
}
