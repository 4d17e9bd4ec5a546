// A spec's shapes, parameters and FLOPs, worked out before anything is allocated, so that the
// limits are checked first: a dense layer of 1e9 units is refused in microseconds instead of
// allocating gigabytes of weights for minutes. The plan is walked in the order buildModel builds
// it, with the same tfjs layer objects (their constructors allocate nothing) and the same checks;
// shapes come from each layer's computeOutputShape, parameters from the formulas below.
// test/unit/spec-limits.test.ts holds them equal to the built model for every layer type and
// every template.
import type * as tf from "@tensorflow/tfjs";
import { ValidationError, type FieldProblem } from "../../errors.ts";
import { arity, planOf, topologicalOrder, type Plan, type PlanNode, type Shape } from "../../model-spec/graph-plan.ts";
import { formatShape as fmt, MAX_NODES, type LayerSpec, type ModelSpec } from "../../model-spec/model-spec-schema.ts";
import type { LayerSummary, ModelSummary } from "../../model-spec/model-summary-schema.ts";
import { estimateFlops } from "./flops.ts";
import { layersFor, pair } from "./layers-for.ts";

export interface SpecLimits {
  maxParams: number;
  maxLayers: number;
  maxFlopsPerSample: number;
}

/** One plan node as it will be built. Shapes include the batch axis. */
export interface PreflightStep {
  node: PlanNode;
  /** The layer the node applies: its own, or for a shared node the original's. */
  layerSpec: LayerSpec;
  /** The tfjs layers buildModel applies; a shared node holds the very objects of the node it shares. */
  layers: tf.layers.Layer[];
  shared: boolean;
  inShapes: Shape[];
  outShape: Shape;
  /** 0 for a shared node: its weights are the original's. */
  params: number;
  nonTrainableParams: number;
  flops: number;
}

export interface Preflight {
  plan: Plan;
  steps: PreflightStep[];
  /** Without the batch axis, in the model's input and output order. */
  inputShapes: Shape[];
  outputShapes: Shape[];
  summary: ModelSummary;
}

const prod = (s: Shape) => s.reduce<number>((a, d) => a * (d ?? 1), 1);

/** The summary of a walked plan; per-layer entries come from the caller (formulas here, built layers in buildModel). */
export function summarize(plan: Plan, layers: LayerSummary[], totalParams: number, trainableParams: number): ModelSummary {
  return {
    layers,
    totalParams,
    trainableParams,
    flopsPerSample: layers.reduce((a, s) => a + s.flops, 0),
    weightBytes: totalParams * 4,
    activationBytesPerSample: 4 * (layers.reduce((a, s) => a + prod(s.outputShape), 0) + plan.inputs.reduce((a, i) => a + prod(i.shape), 0)),
  };
}

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

/** The rank checks tfjs's Layer.apply makes first (from the layer's inputSpec), in its words. */
function checkRanks(layer: tf.layers.Layer, shapes: Shape[]) {
  const specs = layer.inputSpec ?? [];
  shapes.forEach((shape, i) => {
    const spec = specs[i];
    const ndim = shape.length;
    if (!spec) return;
    if (spec.ndim != null && ndim !== spec.ndim) throw new Error(`Input ${i} is incompatible with layer ${layer.name}: expected ndim=${spec.ndim}, found ndim=${ndim}`);
    if (spec.maxNDim != null && ndim > spec.maxNDim) throw new Error(`Input ${i} is incompatible with layer ${layer.name}: expected max_ndim=${spec.maxNDim}, found ndim=${ndim}`);
    if (spec.minNDim != null && ndim < spec.minNDim) throw new Error(`Input ${i} is incompatible with layer ${layer.name}: expected min_ndim=${spec.minNDim}, found ndim=${ndim}.`);
  });
}

/**
 * Input ranks of the convolutions, which tfjs only checks when it builds their weights (and not at
 * all for dilated ones): without it, a kernel sized from the wrong axis would be counted first.
 */
const CONV_RANK: Partial<Record<LayerSpec["type"], number>> = { conv1d: 3, conv2d: 4, separableConv2d: 4, depthwiseConv2d: 4, conv2dTranspose: 4 };

/** A dimension a weight's size depends on; tfjs refuses to build on a free one, and so does this. */
function known(d: number | null | undefined, what: string): number {
  if (d === null || d === undefined) throw new Error(`the ${what} must be known: it sizes the weights`);
  return d;
}

/** Parameters of one spec layer on its input shapes, as tfjs creates them: [total, of which not trainable]. */
function paramsOf(spec: LayerSpec, inShapes: Shape[]): [number, number] {
  const inS = inShapes[0];
  const channels = () => known(inS[inS.length - 1], "last dimension");
  const bias = (useBias: boolean, n: number) => (useBias ? n : 0);
  // One recurrent cell: input and recurrent kernels and a bias per gate.
  const rnn = (type: "simpleRNN" | "lstm" | "gru", units: number) => (type === "lstm" ? 4 : type === "gru" ? 3 : 1) * (units * (channels() + units) + units);
  switch (spec.type) {
    case "dense":
      return [channels() * spec.units + bias(spec.useBias, spec.units), 0];
    case "conv1d":
      return [spec.kernelSize * channels() * spec.filters + bias(spec.useBias, spec.filters), 0];
    case "conv2d":
    case "conv2dTranspose":
    case "coordConv": {
      const [kh, kw] = pair(spec.kernelSize);
      const inC = channels() + (spec.type === "coordConv" ? (spec.withRadius ? 3 : 2) : 0);
      return [kh * kw * inC * spec.filters + bias(spec.useBias, spec.filters), 0];
    }
    case "separableConv2d": {
      const [kh, kw] = pair(spec.kernelSize);
      const depth = channels() * spec.depthMultiplier;
      return [kh * kw * depth + depth * spec.filters + bias(spec.useBias, spec.filters), 0];
    }
    case "depthwiseConv2d": {
      const [kh, kw] = pair(spec.kernelSize);
      const depth = channels() * spec.depthMultiplier;
      return [kh * kw * depth + bias(spec.useBias, depth), 0];
    }
    case "batchNormalization":
      // gamma and beta train; the moving mean and variance do not.
      return [4 * channels(), 2 * channels()];
    case "layerNormalization":
      return [2 * channels(), 0];
    case "embedding":
      return [spec.inputDim * spec.outputDim, 0];
    case "simpleRNN":
    case "lstm":
    case "gru":
      return [rnn(spec.type, spec.units), 0];
    case "bidirectional":
      return [2 * rnn(spec.layer.type, spec.layer.units), 0];
    case "attention":
      // Additive attention learns its score vector v; dot attention has no weights.
      return [spec.score === "additive" ? channels() : 0, 0];
    case "multiHeadSelfAttention":
    case "transformerEncoder": {
      const d = channels();
      const inner = spec.numHeads * spec.keyDim;
      // Query, key and value projections d → inner, the output projection inner → d, their biases.
      const attention = 4 * d * inner + 3 * inner + d;
      // Then two layer normalizations and the feed-forward network d → ffDim → d.
      return [spec.type === "transformerEncoder" ? attention + 4 * d + 2 * d * spec.ffDim + spec.ffDim + d : attention, 0];
    }
    default:
      return [0, 0];
  }
}

/**
 * Plans the spec and walks it: every node's shapes, parameters and FLOPs, and the model's summary,
 * with no weight allocated. Graph, arity, merge and shape problems are ValidationErrors at the
 * node's path under `path`, as buildModel reports them. More than `maxNodes` nodes is refused
 * before the plan is ordered.
 */
export function preflight(spec: ModelSpec, path = "spec", maxNodes = MAX_NODES): Preflight {
  const plan = planOf(spec, path);
  if (plan.nodes.length > maxNodes) throw ValidationError.at(path, `has ${plan.nodes.length} layers, the limit is ${maxNodes}`);
  const order = topologicalOrder(plan);
  const byName = new Map(plan.nodes.map((n) => [n.name, n]));
  const shapes = new Map<string, Shape>(plan.inputs.map((i) => [i.name, [null, ...i.shape]]));
  const layersOf = new Map<string, tf.layers.Layer[]>();
  const steps: PreflightStep[] = [];
  // tf.model refuses two layers of one name, and a node's extra layers take derived names
  // (`<node>_act`, `<node>_coords`) that another node may already bear.
  const layerNames = new Map<string, string>(plan.inputs.map((i) => [i.name, i.name]));

  for (const node of order) {
    const inShapes = node.inputs.map((n) => shapes.get(n)!);
    const shared = node.spec.type === "shared";
    let layerSpec: LayerSpec;
    let layers: tf.layers.Layer[];
    if (node.spec.type === "shared") {
      const target = byName.get(node.spec.of)!;
      if (target.spec.type === "shared") throw ValidationError.at(`${node.path}.of`, `'${target.name}' is itself shared; name the original node`);
      layerSpec = target.spec;
      layers = layersOf.get(target.name)!;
    } else {
      layerSpec = node.spec;
      layers = layersFor(layerSpec, node.name);
      for (const l of layers) {
        const owner = layerNames.get(l.name);
        if (owner !== undefined) throw ValidationError.at(node.path, `needs a layer named '${l.name}', which '${owner}' already has; rename one of them`);
        layerNames.set(l.name, node.name);
      }
    }
    const [min, max] = arity(layerSpec.type);
    if (inShapes.length < min || inShapes.length > max) {
      const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
      throw ValidationError.at(`${node.path}.inputs`, `${layerSpec.type} takes ${want} input${min === 1 && max === 1 ? "" : "s"}, got ${inShapes.length}`);
    }
    if (inShapes.length > 1) checkMerge(layerSpec, inShapes, node.path);

    let outShape: Shape;
    let params = 0;
    let nonTrainableParams = 0;
    try {
      const rank = CONV_RANK[layerSpec.type];
      if (rank && inShapes[0].length !== rank) throw new Error(`Input 0 is incompatible with layer ${layers[0].name}: expected ndim=${rank}, found ndim=${inShapes[0].length}`);
      let x: Shape | Shape[] = inShapes.length === 1 ? inShapes[0] : inShapes;
      for (const l of layers) {
        checkRanks(l, (Array.isArray(x[0]) ? x : [x]) as Shape[]);
        x = l.computeOutputShape(x) as Shape;
      }
      outShape = x as Shape;
      if (!shared) [params, nonTrainableParams] = paramsOf(layerSpec, inShapes);
      // A shape tfjs accepted but that no tensor can have (a kernel larger than its input, seen
      // by a layer that does not check): refused here rather than wherever it surfaces later.
      if (!outShape.slice(1).every((d) => d === null || (Number.isInteger(d) && d > 0))) throw new Error(`gives the impossible shape ${fmt(outShape)}`);
    } catch (err) {
      if (err instanceof ValidationError) throw err;
      const message = (err as Error).message.replace(/\s+/g, " ").slice(0, 300);
      throw ValidationError.at(node.path, `cannot be applied to input${inShapes.length > 1 ? "s" : ""} of shape ${inShapes.map(fmt).join(" and ")}: ${message}`);
    }
    shapes.set(node.name, outShape);
    layersOf.set(node.name, layers);
    steps.push({ node, layerSpec, layers, shared, inShapes, outShape, params, nonTrainableParams, flops: estimateFlops(layerSpec, inShapes, outShape) });
  }

  const totalParams = steps.reduce((a, s) => a + s.params, 0);
  const summary = summarize(plan, steps.map((s) => layerSummary(s, s.params)), totalParams, totalParams - steps.reduce((a, s) => a + s.nonTrainableParams, 0));
  return {
    plan,
    steps,
    inputShapes: plan.inputs.map((i) => i.shape),
    outputShapes: plan.outputs.map((o) => shapes.get(o)!.slice(1)),
    summary,
  };
}

/** A step's line in the summary, with its parameter count (the formulas', or the built layers' in buildModel). */
export function layerSummary(step: PreflightStep, params: number): LayerSummary {
  return {
    name: step.node.name,
    type: step.shared ? `shared(${step.layerSpec.type})` : step.layerSpec.type,
    path: step.node.path,
    outputShape: step.outShape.slice(1),
    params,
    flops: step.flops,
  };
}

/**
 * The limits a walked spec exceeds, each at the node that weighs most (parameters, FLOPs) or
 * holds the table: empty when it may be built.
 */
export function limitProblems(pre: Preflight, limits: SpecLimits): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const { totalParams, flopsPerSample, layers } = pre.summary;
  const heaviest = (by: (l: LayerSummary) => number) => layers.reduce((a, l) => (by(l) > by(a) ? l : a));
  // `!(x <= limit)` also refuses NaN.
  if (!(totalParams <= limits.maxParams)) {
    const top = heaviest((l) => l.params);
    problems.push({ path: top.path, message: `the model has ${totalParams} parameters, the limit is ${limits.maxParams}; this ${top.type} layer has ${top.params}` });
  }
  if (!(flopsPerSample <= limits.maxFlopsPerSample)) {
    const top = heaviest((l) => l.flops);
    const e = (n: number) => n.toExponential(2);
    problems.push({ path: top.path, message: `the model needs about ${e(flopsPerSample)} FLOPs per sample, the limit is ${e(limits.maxFlopsPerSample)}; this ${top.type} layer needs ${e(top.flops)}` });
  }
  return problems;
}
