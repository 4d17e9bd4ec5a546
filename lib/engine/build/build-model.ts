// Turns a ModelSpec into a TensorFlow.js model, checking it on the way: the plan's names and
// order (lib/model-spec/graph-plan), the right number of inputs per node, and shapes that fit
// (with the shapes on both sides in the error). Every error is a ValidationError at the node's
// path under the prefix the caller gives (`spec` for a request's spec).
import * as tf from "@tensorflow/tfjs";
import { ValidationError } from "../../errors.ts";
import { arity, planOf, topologicalOrder, type Shape } from "../../model-spec/graph-plan.ts";
import { formatShape as fmt, type LayerSpec, type ModelSpec } from "../../model-spec/model-spec-schema.ts";
import type { LayerSummary, ModelSummary } from "../../model-spec/model-summary-schema.ts";
import { estimateFlops } from "./flops.ts";
import { layersFor } from "./layers-for.ts";

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

const prod = (s: Shape) => s.reduce<number>((a, d) => a * (d ?? 1), 1);

/** Checks merge inputs here, so the error names both shapes instead of quoting tfjs. */
function checkMerge(spec: LayerSpec, shapes: Shape[], path: string) {
  const shown = shapes.map(fmt).join(" and ");
  if (spec.type === "add" || spec.type === "multiply") {
    const first = shapes[0];
    // Equal, free, or 1 (broadcast, e.g. a squeeze-and-excitation gate [1, 1, C] over [H, W, C]).
    const fits = (d: number | null, e: number | null) => d === null || e === null || d === e || d === 1 || e === 1;
    const same = shapes.every((s) => s.length === first.length && s.every((d, i) => fits(d, first[i])));
    if (!same) throw ValidationError.at(path, `inputs have shapes ${shown}; ${spec.type} needs equal shapes (or 1 to broadcast)`);
  }
  if (spec.type === "concatenate") {
    const rank = shapes[0].length;
    const axis = spec.axis < 0 ? rank + spec.axis : spec.axis;
    const ok = shapes.every((s) => s.length === rank && s.every((d, i) => i === axis || d === null || shapes[0][i] === null || d === shapes[0][i]));
    if (!ok) throw ValidationError.at(path, `inputs have shapes ${shown}; concatenate on axis ${spec.axis} needs all other dimensions equal`);
  }
  if (spec.type === "distance" && fmt(shapes[0]) !== fmt(shapes[1])) throw ValidationError.at(path, `inputs have shapes ${shown}; distance needs equal shapes`);
}

/** Builds the network; every problem is a ValidationError at its path. */
export function buildModel(spec: ModelSpec, path = "spec"): BuiltModel {
  const plan = planOf(spec, path);
  const order = topologicalOrder(plan);
  const tensors = new Map<string, Sym>();
  const nodeLayers = new Map<string, tf.layers.Layer[]>();
  for (const i of plan.inputs) tensors.set(i.name, tf.input({ shape: i.shape, dtype: i.dtype, name: i.name }));
  const summaries: LayerSummary[] = [];

  const created: tf.layers.Layer[] = [];
  try {
    for (const node of order) {
      const inputs = node.inputs.map((n) => tensors.get(n)!);
      const inShapes = inputs.map((t) => t.shape as Shape);
      let layerSpec: LayerSpec;
      let layers: tf.layers.Layer[];
      if (node.spec.type === "shared") {
        const target = plan.nodes.find((n) => n.name === (node.spec as { of: string }).of)!;
        if (target.spec.type === "shared") throw ValidationError.at(`${node.path}.of`, `'${target.name}' is itself shared; name the original node`);
        layerSpec = target.spec;
        layers = nodeLayers.get(target.name)!;
      } else {
        layerSpec = node.spec;
        layers = layersFor(layerSpec, node.name);
        created.push(...layers);
      }
      const [min, max] = arity(layerSpec.type);
      if (inputs.length < min || inputs.length > max) {
        const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
        throw ValidationError.at(`${node.path}.inputs`, `${layerSpec.type} takes ${want} input${min === 1 && max === 1 ? "" : "s"}, got ${inputs.length}`);
      }
      if (inputs.length > 1) checkMerge(layerSpec, inShapes, node.path);
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
      nodeLayers.set(node.name, layers);
      const params = node.spec.type === "shared" ? 0 : layers.reduce((a, l) => a + l.countParams(), 0);
      summaries.push({ name: node.name, type: node.spec.type === "shared" ? `shared(${layerSpec.type})` : layerSpec.type, path: node.path, outputShape: (out.shape as Shape).slice(1), params, flops: estimateFlops(layerSpec, inShapes, out.shape as Shape) });
    }
    const inputs = plan.inputs.map((i) => tensors.get(i.name)!);
    const outputs = plan.outputs.map((o) => tensors.get(o)!);
    const model = tf.model({ inputs, outputs, name: "trainyard" });
    const trainableParams = model.trainableWeights.reduce((a, w) => a + prod(w.shape), 0);
    const totalParams = model.countParams();
    const summary: ModelSummary = {
      layers: summaries,
      totalParams,
      trainableParams,
      flopsPerSample: summaries.reduce((a, s) => a + s.flops, 0),
      weightBytes: totalParams * 4,
      activationBytesPerSample: 4 * (summaries.reduce((a, s) => a + prod(s.outputShape), 0) + plan.inputs.reduce((a, i) => a + prod(i.shape), 0)),
    };
    const outputShapes = outputs.map((o) => (o.shape as Shape).slice(1));
    return { model, paramCount: totalParams, outputShape: outputShapes[0] as number[], outputShapes, inputShapes: plan.inputs.map((i) => i.shape), summary };
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
