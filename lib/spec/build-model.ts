// Turns a ModelSpec into a TensorFlow.js model, checking it on the way: names that resolve,
// no cycles, the right number of inputs per node, shapes that fit (with the shapes on both sides
// in the error), and a loss that matches the output. Every error points at the node and field.
//
// Layer names come from spec positions and node names, not from tfjs's global counters, so the
// same spec builds the same weight names in any process — which is what lets a checkpoint written
// by one worker resume in another.
import * as tf from "@tensorflow/tfjs";
import { ValidationError, type FieldProblem } from "../errors.ts";
import { AdaptivePooling2D, AddCoords2D, Attention, DilatedConv2D, Distance, MultiHeadSelfAttention, PositionalEncoding, SpatialDropout2D, StepActivation, TransformerEncoder } from "./layers/index.ts";
import { DEFAULT_INPUT, isGraph, modelOutputNames, outputLoss, type Activation, type GraphSpec, type LayerOf, type LayerSpec, type ModelSpec, type NodeSpec } from "./model-spec.ts";

type Shape = (number | null)[];
type Sym = tf.SymbolicTensor;

export interface LayerSummary {
  /** Node name (graph) or `layers[i]` (sequential). */
  name: string;
  type: string;
  /** Where the node is in the spec, e.g. `spec.layers[3]` or `spec.nodes.res2_add`. */
  path: string;
  outputShape: Shape;
  params: number;
  flops: number;
}

export interface ModelSummary {
  layers: LayerSummary[];
  totalParams: number;
  trainableParams: number;
  /** Estimated floating-point operations for one sample's forward pass (a multiply-add counts 2). */
  flopsPerSample: number;
  /** Bytes of float32 weights. */
  weightBytes: number;
  /** Bytes of float32 activations for one sample's forward pass (free dimensions counted as 1). */
  activationBytesPerSample: number;
}

export interface BuiltModel {
  model: tf.LayersModel;
  paramCount: number;
  /** Output shape without the batch dimension (the first output's, for several outputs). */
  outputShape: number[];
  outputShapes: Shape[];
  inputShapes: Shape[];
  summary: ModelSummary;
}

const LEAKY_RELU_ALPHA = 0.2;
const TFJS_ACTIVATIONS = new Set(["sigmoid", "tanh", "relu", "elu", "selu", "gelu", "swish", "softmax", "linear"]);
const MERGE_TYPES = new Set(["concatenate", "add", "multiply"]);

const fmt = (s: Shape) => `[${s.map((d) => (d === null ? "null" : d)).join(",")}]`;
const pair = (v: number | number[]): [number, number] => (Array.isArray(v) ? [v[0], v[1]] : [v, v]);
const prod = (s: Shape) => s.reduce<number>((a, d) => a * (d ?? 1), 1);

/** A graph form of any spec, with where each node came from, so errors can point into the spec as written. */
interface Plan {
  inputs: { name: string; shape: Shape; dtype: "float32" | "int32" }[];
  nodes: { name: string; spec: NodeSpec; inputs: string[]; path: string }[];
  outputs: string[];
  outputsPath: string;
}

function planOf(spec: ModelSpec, path: string): Plan {
  if (isGraph(spec)) {
    const g = spec as GraphSpec;
    return {
      inputs: Object.entries(g.inputs).map(([name, i]) => ({ name, shape: i.shape, dtype: i.dtype })),
      nodes: Object.entries(g.nodes).map(([name, n]) => ({ name, spec: n, inputs: n.inputs ?? [], path: `${path}.nodes.${name}` })),
      outputs: g.outputs,
      outputsPath: `${path}.outputs`,
    };
  }
  const layers = spec.layers!;
  let prev = DEFAULT_INPUT;
  const nodes = layers.map((l, i) => {
    const p = `${path}.layers[${i}]`;
    if (l.inputs) throw ValidationError.at(`${p}.inputs`, "only graph specs (inputs, nodes, outputs) name inputs; a sequential layer takes the previous layer's output");
    if (MERGE_TYPES.has(l.type) || l.type === "attention" || l.type === "distance") {
      throw ValidationError.at(`${p}.type`, `${l.type} merges several inputs: use a graph spec (inputs, nodes, outputs)`);
    }
    const name = `l${i}_${l.type}`;
    const node = { name, spec: l, inputs: [prev], path: p };
    prev = name;
    return node;
  });
  return { inputs: [{ name: DEFAULT_INPUT, shape: spec.input!.shape, dtype: spec.input!.dtype }], nodes, outputs: [prev], outputsPath: `${path}.layers` };
}

/** Orders nodes so each comes after its inputs; names a missing input or a cycle precisely. */
function topologicalOrder(plan: Plan): Plan["nodes"] {
  const byName = new Map(plan.nodes.map((n) => [n.name, n]));
  const inputNames = new Set(plan.inputs.map((i) => i.name));
  for (const n of plan.nodes) {
    if (inputNames.has(n.name)) throw ValidationError.at(n.path, `has the same name as an input`);
    if (n.spec.type === "shared" && !byName.has(n.spec.of)) throw ValidationError.at(`${n.path}.of`, `no node named '${n.spec.of}'`);
    if (isGraphNodeWithoutInputs(n)) throw ValidationError.at(`${n.path}.inputs`, "is required in a graph spec");
    n.inputs.forEach((ref, i) => {
      if (!byName.has(ref) && !inputNames.has(ref)) throw ValidationError.at(`${n.path}.inputs[${i}]`, `no input or node named '${ref}'`);
    });
  }
  plan.outputs.forEach((o, i) => {
    if (!byName.has(o) && !inputNames.has(o)) throw ValidationError.at(`${plan.outputsPath}[${i}]`, `no node named '${o}'`);
  });
  const order: Plan["nodes"] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (name: string, trail: string[]) => {
    if (inputNames.has(name)) return;
    const s = state.get(name);
    if (s === "done") return;
    const node = byName.get(name)!;
    if (s === "visiting") {
      const cycle = [...trail.slice(trail.indexOf(name)), name];
      throw ValidationError.at(node.path, `is part of a cycle: ${cycle.join(" → ")}`);
    }
    state.set(name, "visiting");
    for (const dep of node.inputs) visit(dep, [...trail, name]);
    // A shared node needs the node it shares to exist first.
    if (node.spec.type === "shared") visit(node.spec.of, [...trail, name]);
    state.set(name, "done");
    order.push(node);
  };
  for (const o of plan.outputs) visit(o, []);
  for (const n of plan.nodes) {
    if (!state.has(n.name)) throw ValidationError.at(n.path, "is not connected to any output");
  }
  return order;
}
const isGraphNodeWithoutInputs = (n: Plan["nodes"][number]) => n.inputs.length === 0;

function activationLayers(activation: Activation, name: string, alpha?: number): tf.layers.Layer[] {
  if (activation === "linear") return [];
  if (activation === "leakyRelu") return [tf.layers.leakyReLU({ alpha: alpha ?? LEAKY_RELU_ALPHA, name })];
  if (activation === "step") return [new StepActivation({ name })];
  return [tf.layers.activation({ activation: activation as "relu", name })];
}

/** Splits an activation field into what tfjs can fuse into the layer and what needs a layer of its own. */
function fused(activation: Activation): { inner: string; separate: boolean } {
  return TFJS_ACTIVATIONS.has(activation) ? { inner: activation, separate: false } : { inner: "linear", separate: true };
}

function weightArgs(l: { useBias?: boolean; kernelInitializer?: string; biasInitializer?: string; kernelRegularizer?: { l1: number; l2: number }; biasRegularizer?: { l1: number; l2: number } }) {
  const reg = (r?: { l1: number; l2: number }) => (r && (r.l1 || r.l2) ? tf.regularizers.l1l2({ l1: r.l1, l2: r.l2 }) : undefined);
  return {
    useBias: l.useBias ?? true,
    // The spec's initializer names are tfjs's own identifiers.
    ...(l.kernelInitializer ? { kernelInitializer: l.kernelInitializer as "glorotUniform" } : {}),
    ...(l.biasInitializer ? { biasInitializer: l.biasInitializer as "zeros" } : {}),
    ...(reg(l.kernelRegularizer) ? { kernelRegularizer: reg(l.kernelRegularizer) } : {}),
    ...(reg(l.biasRegularizer) ? { biasRegularizer: reg(l.biasRegularizer) } : {}),
  };
}

/**
 * A dilated convolution that can be trained (tfjs cannot differentiate its own): a conv2d, or a
 * conv1d viewed as [time, 1, channels], followed by its activation.
 */
function dilatedConv(spec: LayerOf<"conv2d"> | LayerOf<"conv1d">, name: string): tf.layers.Layer[] {
  const oneD = spec.type === "conv1d";
  const conv = new DilatedConv2D({
    filters: spec.filters,
    kernelSize: oneD ? [spec.kernelSize, 1] : pair(spec.kernelSize),
    dilationRate: oneD ? [spec.dilationRate, 1] : pair(spec.dilationRate),
    strides: oneD ? [spec.strides, 1] : pair(spec.strides),
    padding: spec.padding,
    useBias: spec.useBias,
    kernelInitializer: spec.kernelInitializer ?? "glorotUniform",
    biasInitializer: spec.biasInitializer ?? "zeros",
    kernelRegularizer: spec.kernelRegularizer ?? null,
    name,
  });
  return [conv, ...activationLayers(spec.activation, `${name}_act`, spec.alpha)];
}

/** The tfjs layers for one spec layer, applied in sequence (one for most; two for coordConv or a separate activation). */
function layersFor(spec: LayerSpec, name: string): tf.layers.Layer[] {
  const withActivation = (main: tf.layers.Layer, activation: Activation, alpha?: number) =>
    fused(activation).separate ? [main, ...activationLayers(activation, `${name}_act`, alpha)] : [main];
  switch (spec.type) {
    case "dense":
      return withActivation(tf.layers.dense({ units: spec.units, activation: fused(spec.activation).inner as "linear", ...weightArgs(spec), name }), spec.activation, spec.alpha);
    case "activation": {
      const layers = activationLayers(spec.activation, name, spec.alpha);
      return layers.length ? layers : [tf.layers.activation({ activation: "linear", name })];
    }
    case "dropout":
      return [tf.layers.dropout({ rate: spec.rate, name })];
    case "spatialDropout":
      return [new SpatialDropout2D({ rate: spec.rate, name })];
    case "batchNormalization":
      return [tf.layers.batchNormalization({ momentum: spec.momentum, epsilon: spec.epsilon, name })];
    case "layerNormalization":
      return [tf.layers.layerNormalization({ epsilon: spec.epsilon, name })];
    case "conv1d":
      if (spec.dilationRate > 1) return dilatedConv(spec, name);
      return withActivation(
        tf.layers.conv1d({ filters: spec.filters, kernelSize: spec.kernelSize, strides: spec.strides, padding: spec.padding, dilationRate: spec.dilationRate, activation: fused(spec.activation).inner as "linear", ...weightArgs(spec), name }),
        spec.activation, spec.alpha,
      );
    case "conv2d":
      if (pair(spec.dilationRate).some((d) => d > 1)) return dilatedConv(spec, name);
      return withActivation(
        tf.layers.conv2d({ filters: spec.filters, kernelSize: spec.kernelSize, strides: spec.strides, padding: spec.padding, dilationRate: pair(spec.dilationRate), activation: fused(spec.activation).inner as "linear", ...weightArgs(spec), name }),
        spec.activation, spec.alpha,
      );
    case "coordConv":
      return [
        new AddCoords2D({ withRadius: spec.withRadius, name: `${name}_coords` }),
        ...withActivation(
          tf.layers.conv2d({ filters: spec.filters, kernelSize: spec.kernelSize, strides: spec.strides, padding: spec.padding, activation: fused(spec.activation).inner as "linear", ...weightArgs(spec), name }),
          spec.activation, spec.alpha,
        ),
      ];
    case "separableConv2d":
      return withActivation(
        tf.layers.separableConv2d({ filters: spec.filters, kernelSize: spec.kernelSize, strides: spec.strides, padding: spec.padding, depthMultiplier: spec.depthMultiplier, useBias: spec.useBias, activation: fused(spec.activation).inner as "linear", name }),
        spec.activation, spec.alpha,
      );
    case "depthwiseConv2d":
      return withActivation(
        tf.layers.depthwiseConv2d({ kernelSize: pair(spec.kernelSize), strides: spec.strides, padding: spec.padding, depthMultiplier: spec.depthMultiplier, useBias: spec.useBias, activation: fused(spec.activation).inner as "linear", name }),
        spec.activation, spec.alpha,
      );
    case "conv2dTranspose":
      return withActivation(
        tf.layers.conv2dTranspose({ filters: spec.filters, kernelSize: spec.kernelSize, strides: spec.strides, padding: spec.padding, activation: fused(spec.activation).inner as "linear", ...weightArgs(spec), name }),
        spec.activation, spec.alpha,
      );
    case "upSampling2d":
      return [tf.layers.upSampling2d({ size: pair(spec.size), interpolation: spec.interpolation, name })];
    case "maxPooling1d":
      return [tf.layers.maxPooling1d({ poolSize: spec.poolSize, strides: spec.strides ?? spec.poolSize, padding: spec.padding, name })];
    case "averagePooling1d":
      return [tf.layers.averagePooling1d({ poolSize: spec.poolSize, strides: spec.strides ?? spec.poolSize, padding: spec.padding, name })];
    case "maxPooling2d":
      return [tf.layers.maxPooling2d({ poolSize: pair(spec.poolSize), strides: pair(spec.strides ?? spec.poolSize), padding: spec.padding, name })];
    case "averagePooling2d":
      return [tf.layers.averagePooling2d({ poolSize: pair(spec.poolSize), strides: pair(spec.strides ?? spec.poolSize), padding: spec.padding, name })];
    case "globalMaxPooling1d":
      return [tf.layers.globalMaxPooling1d({ name })];
    case "globalAveragePooling1d":
      return [tf.layers.globalAveragePooling1d({ name })];
    case "globalMaxPooling2d":
      return [tf.layers.globalMaxPooling2d({ name })];
    case "globalAveragePooling2d":
      return [tf.layers.globalAveragePooling2d({ name })];
    case "adaptiveAveragePooling2d":
      return [new AdaptivePooling2D({ outputSize: pair(spec.outputSize), mode: "avg", name })];
    case "adaptiveMaxPooling2d":
      return [new AdaptivePooling2D({ outputSize: pair(spec.outputSize), mode: "max", name })];
    case "flatten":
      return [tf.layers.flatten({ name })];
    case "reshape":
      return [tf.layers.reshape({ targetShape: spec.targetShape, name })];
    case "permute":
      return [tf.layers.permute({ dims: spec.dims, name })];
    case "cropping2d":
      return [tf.layers.cropping2D({ cropping: spec.cropping as number, name })];
    case "zeroPadding2d":
      return [tf.layers.zeroPadding2d({ padding: spec.padding as [number, number], name })];
    case "concatenate":
      return [tf.layers.concatenate({ axis: spec.axis, name })];
    case "add":
      return [tf.layers.add({ name })];
    case "multiply":
      return [tf.layers.multiply({ name })];
    case "distance":
      return [new Distance({ metric: spec.metric, name })];
    case "embedding":
      return [tf.layers.embedding({ inputDim: spec.inputDim, outputDim: spec.outputDim, maskZero: spec.maskZero, name })];
    case "masking":
      return [tf.layers.masking({ maskValue: spec.maskValue, name })];
    case "simpleRNN":
      return [tf.layers.simpleRNN({ units: spec.units, activation: fused(spec.activation).inner as "tanh", returnSequences: spec.returnSequences, dropout: spec.dropout, recurrentDropout: spec.recurrentDropout, name })];
    case "lstm":
      return [tf.layers.lstm({ units: spec.units, returnSequences: spec.returnSequences, dropout: spec.dropout, recurrentDropout: spec.recurrentDropout, name })];
    case "gru":
      return [tf.layers.gru({ units: spec.units, returnSequences: spec.returnSequences, dropout: spec.dropout, recurrentDropout: spec.recurrentDropout, name })];
    case "bidirectional": {
      const inner = spec.layer;
      const args = { units: inner.units, returnSequences: inner.returnSequences, name: `${name}_inner` };
      const rnn = inner.type === "lstm" ? tf.layers.lstm(args) : inner.type === "gru" ? tf.layers.gru(args) : tf.layers.simpleRNN(args);
      return [tf.layers.bidirectional({ layer: rnn as tf.RNN, mergeMode: spec.mergeMode, name })];
    }
    case "positionalEncoding":
      return [new PositionalEncoding({ maxLength: spec.maxLength, name })];
    case "attention":
      return [new Attention({ score: spec.score, causal: spec.causal, name })];
    case "multiHeadSelfAttention":
      return [new MultiHeadSelfAttention({ numHeads: spec.numHeads, keyDim: spec.keyDim, causal: spec.causal, dropout: spec.dropout, name })];
    case "transformerEncoder":
      return [new TransformerEncoder({ numHeads: spec.numHeads, keyDim: spec.keyDim, ffDim: spec.ffDim, dropout: spec.dropout, causal: spec.causal, name })];
  }
}

/** How many inputs a layer type takes: [min, max]. */
function arity(type: LayerSpec["type"]): [number, number] {
  if (MERGE_TYPES.has(type)) return [2, Infinity];
  if (type === "distance") return [2, 2];
  if (type === "attention") return [2, 3];
  return [1, 1];
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

/** Estimated forward FLOPs per sample of one spec layer, from its input and output shapes. */
function estimateFlops(spec: LayerSpec, inShapes: Shape[], out: Shape): number {
  const inS = inShapes[0] ?? [];
  const outSize = prod(out.slice(1));
  const inC = (inS[inS.length - 1] ?? 1) as number;
  switch (spec.type) {
    case "dense":
      return 2 * outSize * inC;
    case "conv1d":
      return 2 * outSize * spec.kernelSize * inC;
    case "conv2d":
    case "coordConv": {
      const [kh, kw] = pair(spec.kernelSize);
      return 2 * outSize * kh * kw * (inC + (spec.type === "coordConv" ? (spec.withRadius ? 3 : 2) : 0));
    }
    case "depthwiseConv2d": {
      const [kh, kw] = pair(spec.kernelSize);
      return 2 * outSize * kh * kw;
    }
    case "separableConv2d": {
      const [kh, kw] = pair(spec.kernelSize);
      const positions = prod(out.slice(1, -1));
      return 2 * positions * inC * spec.depthMultiplier * (kh * kw + spec.filters);
    }
    case "conv2dTranspose": {
      const [kh, kw] = pair(spec.kernelSize);
      return 2 * prod(inS.slice(1)) * kh * kw * spec.filters;
    }
    case "simpleRNN":
    case "lstm":
    case "gru": {
      const gates = spec.type === "lstm" ? 4 : spec.type === "gru" ? 3 : 1;
      const t = (inS[1] ?? 1) as number;
      return 2 * gates * t * (inC * spec.units + spec.units * spec.units);
    }
    case "bidirectional": {
      const gates = spec.layer.type === "lstm" ? 4 : spec.layer.type === "gru" ? 3 : 1;
      const t = (inS[1] ?? 1) as number;
      return 2 * 2 * gates * t * (inC * spec.layer.units + spec.layer.units ** 2);
    }
    case "attention": {
      const tq = (inS[1] ?? 1) as number;
      const tv = ((inShapes[1] ?? inS)[1] ?? 1) as number;
      return 4 * tq * tv * inC;
    }
    case "multiHeadSelfAttention":
    case "transformerEncoder": {
      const t = (inS[1] ?? 1) as number;
      const hk = spec.numHeads * spec.keyDim;
      const attention = 2 * t * inC * hk * 4 + 4 * t * t * hk;
      return spec.type === "transformerEncoder" ? attention + 4 * t * inC * spec.ffDim : attention;
    }
    default:
      // Element-wise, pooling, shape and merge layers: about one operation per value they touch.
      return Math.max(outSize, prod(inS.slice(1)));
  }
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

/** The activation a node ends in, for checking it against the loss. */
export function finalActivation(spec: ModelSpec, output?: string): { activation: Activation | "none"; path: string } {
  const pick = (l: NodeSpec | LayerSpec, path: string): { activation: Activation | "none"; path: string } => {
    if ("activation" in l && typeof l.activation === "string") return { activation: l.activation, path: `${path}.activation` };
    return { activation: "none", path };
  };
  if (isGraph(spec)) {
    const g = spec as GraphSpec;
    const name = output ?? g.outputs[0];
    let node = g.nodes[name];
    if (node?.type === "shared") node = g.nodes[node.of];
    return node ? pick(node, `spec.nodes.${name}`) : { activation: "none", path: `spec.outputs` };
  }
  const layers = spec.layers!;
  return pick(layers[layers.length - 1], `spec.layers[${layers.length - 1}]`);
}

/** Problems with a spec that are not about shapes: step activations under backprop, loss vs output, perceptron mode. */
export function checkTraining(spec: ModelSpec): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const entries: [string, NodeSpec | LayerSpec][] = isGraph(spec)
    ? Object.entries((spec as GraphSpec).nodes).map(([n, l]) => [`spec.nodes.${n}`, l])
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
  const needs: Record<string, Activation> = { categoricalCrossentropy: "softmax", sparseCategoricalCrossentropy: "softmax", binaryCrossentropy: "sigmoid" };
  for (const output of modelOutputNames(spec)) {
    const { loss, path: lossPath } = outputLoss(spec, output);
    const want = loss && needs[loss];
    if (!want) continue;
    const { activation, path } = finalActivation(spec, isGraph(spec) ? output : undefined);
    if (activation !== want) {
      problems.push({ path: lossPath, message: `${loss} needs a ${want} output; the output (${path}) ends in ${activation === "none" ? "no activation" : activation}` });
    }
  }
  return problems;
}
