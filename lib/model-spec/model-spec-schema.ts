// The model spec language: a network described as data. This zod schema is the single source of
// truth for validation, TypeScript types and the OpenAPI description (a union discriminated by
// `type`, so clients see every layer's fields).
//
// A spec is either sequential — `input` + `layers`, applied in order — or a graph — named
// `inputs`, named `nodes` that each list their `inputs`, and `outputs`. Every layer type works in
// both; `inputs` (and `shares`) only mean something in a graph.
import { z } from "zod";

const int = (what = "an integer") => z.number({ error: `expected ${what}` }).int(`expected ${what}`);
const positiveInt = (what = "a positive integer") => int(what).positive(`expected ${what}`);
const rate = z.number({ error: "expected a number" }).min(0, "must be >= 0").lt(1, "must be < 1");
/** A size given once for every spatial dimension, or once per dimension. */
const size = (n: number, what: string) =>
  z.union([positiveInt(what), z.array(positiveInt(what)).length(n, `expected ${n} values`)], { error: `expected ${what} or an array of ${n}` });

export const ACTIVATIONS = ["sigmoid", "step", "tanh", "relu", "leakyRelu", "elu", "selu", "gelu", "swish", "softmax", "linear"] as const;
export const activationSchema = z.enum(ACTIVATIONS, { error: `must be one of ${ACTIVATIONS.join(", ")}` });
export type Activation = z.infer<typeof activationSchema>;

export const INITIALIZERS = ["glorotUniform", "glorotNormal", "heNormal", "heUniform", "leCunNormal", "leCunUniform", "zeros", "ones", "randomNormal", "randomUniform", "orthogonal"] as const;
const initializer = z.enum(INITIALIZERS, { error: `must be one of ${INITIALIZERS.join(", ")}` });
const regularizer = z
  .object({ l1: z.number().min(0).default(0), l2: z.number().min(0).default(0) })
  .meta({ id: "Regularizer", description: "Adds l1·Σ|w| + l2·Σw² of the weights to the loss." });

/** Fields every layer may carry. */
const base = {
  inputs: z.array(z.string().min(1)).min(1).optional().describe("Graph specs: the names of the inputs or nodes this node takes, in order."),
};
/** Fields of layers with a kernel. */
const weighted = {
  useBias: z.boolean().default(true),
  kernelInitializer: initializer.optional(),
  biasInitializer: initializer.optional(),
  kernelRegularizer: regularizer.optional(),
  biasRegularizer: regularizer.optional(),
};
const activationField = { activation: activationSchema.default("linear"), alpha: z.number().min(0).optional().describe("Slope below zero, for leakyRelu (default 0.2).") };
const padding = z.enum(["valid", "same"], { error: "must be valid or same" }).default("valid");

const layer = <K extends string, T extends z.ZodRawShape>(type: K, shape: T, description: string) =>
  z.object({ type: z.literal(type), ...base, ...shape }).strict().meta({ id: `${type[0].toUpperCase()}${type.slice(1)}Layer`, description });

export const LAYER_SCHEMAS = [
  // --- dense and activations
  layer("dense", { units: positiveInt(), ...activationField, ...weighted }, "Fully connected: activation(x·W + b). On a sequence or image it applies to the last axis."),
  layer("activation", { activation: activationSchema, alpha: z.number().min(0).optional() }, "An activation on its own. `step` is the binary step: forward only, for inference and the perceptron training mode."),
  // --- regularization and normalization
  layer("dropout", { rate }, "Inverted dropout: zeroes a `rate` fraction of units while training and scales the rest by 1/(1-rate); identity at inference."),
  layer("spatialDropout", { rate }, "Dropout of whole channels (feature maps) of an image, inverted like dropout."),
  layer("batchNormalization", { momentum: z.number().gt(0).lt(1).default(0.99), epsilon: z.number().positive().default(1e-3) }, "Normalizes each channel over the batch while training; uses moving statistics at inference."),
  layer("layerNormalization", { epsilon: z.number().positive().default(1e-3) }, "Normalizes each example over its last axis."),
  // --- convolution
  layer("conv1d", { filters: positiveInt(), kernelSize: positiveInt(), strides: positiveInt().default(1), padding, dilationRate: positiveInt().default(1), ...activationField, ...weighted }, "1-D convolution over [time, channels]."),
  layer("conv2d", { filters: positiveInt(), kernelSize: size(2, "a positive integer"), strides: size(2, "a positive integer").default(1), padding, dilationRate: size(2, "a positive integer").default(1), ...activationField, ...weighted }, "2-D convolution over [height, width, channels]; kernelSize 1 is a 1×1 (pointwise) convolution."),
  layer("separableConv2d", { filters: positiveInt(), kernelSize: size(2, "a positive integer"), strides: size(2, "a positive integer").default(1), padding, depthMultiplier: positiveInt().default(1), ...activationField, useBias: z.boolean().default(true) }, "Depthwise convolution per channel followed by a 1×1 convolution."),
  layer("depthwiseConv2d", { kernelSize: size(2, "a positive integer"), strides: size(2, "a positive integer").default(1), padding, depthMultiplier: positiveInt().default(1), ...activationField, useBias: z.boolean().default(true) }, "One filter per input channel (times depthMultiplier)."),
  layer("conv2dTranspose", { filters: positiveInt(), kernelSize: size(2, "a positive integer"), strides: size(2, "a positive integer").default(1), padding, ...activationField, ...weighted }, "Transposed (fractionally strided) convolution, often called deconvolution: upsamples by `strides`."),
  layer("coordConv", { filters: positiveInt(), kernelSize: size(2, "a positive integer"), strides: size(2, "a positive integer").default(1), padding, withRadius: z.boolean().default(false), ...activationField, ...weighted }, "CoordConv (Liu et al. 2018): appends i, j coordinate channels in [-1, 1] before a conv2d, breaking translation equivariance."),
  layer("upSampling2d", { size: size(2, "a positive integer").default(2), interpolation: z.enum(["nearest", "bilinear"]).default("nearest") }, "Repeats rows and columns (nearest) or interpolates (bilinear)."),
  // --- pooling
  layer("maxPooling1d", { poolSize: positiveInt().default(2), strides: positiveInt().optional(), padding }, "Max over windows of time; strides default to poolSize."),
  layer("averagePooling1d", { poolSize: positiveInt().default(2), strides: positiveInt().optional(), padding }, "Average over windows of time."),
  layer("maxPooling2d", { poolSize: size(2, "a positive integer").default(2), strides: size(2, "a positive integer").optional(), padding }, "Max over windows; strides default to poolSize."),
  layer("averagePooling2d", { poolSize: size(2, "a positive integer").default(2), strides: size(2, "a positive integer").optional(), padding }, "Average over windows."),
  layer("globalMaxPooling1d", {}, "Max over all time steps."),
  layer("globalAveragePooling1d", {}, "Average over all time steps."),
  layer("globalMaxPooling2d", {}, "Max over all positions of each channel."),
  layer("globalAveragePooling2d", {}, "Average over all positions of each channel."),
  layer("adaptiveAveragePooling2d", { outputSize: size(2, "a positive integer") }, "Averages into a fixed output size whatever the input size (PyTorch's AdaptiveAvgPool2d)."),
  layer("adaptiveMaxPooling2d", { outputSize: size(2, "a positive integer") }, "Max into a fixed output size whatever the input size."),
  // --- shape and merging
  layer("flatten", {}, "Flattens everything but the batch axis."),
  layer("reshape", { targetShape: z.array(z.number().int().refine((n) => n > 0 || n === -1, "expected a positive integer or -1")).min(1) }, "Reshapes (without the batch axis); one dimension may be -1."),
  layer("permute", { dims: z.array(positiveInt()).min(1).describe("1-based axes, without the batch axis, e.g. [2, 1].") }, "Reorders axes."),
  layer("cropping2d", { cropping: z.union([int().min(0), z.array(int().min(0)).length(2), z.array(z.array(int().min(0)).length(2)).length(2)]) }, "Crops rows and columns: n, [rows, cols] or [[top, bottom], [left, right]]."),
  layer("zeroPadding2d", { padding: z.union([int().min(0), z.array(int().min(0)).length(2), z.array(z.array(int().min(0)).length(2)).length(2)]).default(1) }, "Pads rows and columns with zeros."),
  layer("concatenate", { axis: z.number().int().default(-1) }, "Graph only: concatenates its inputs along an axis (DenseNet, U-Net skips, Inception branches)."),
  layer("add", {}, "Graph only: element-wise sum of its inputs (residual connections)."),
  layer("multiply", {}, "Graph only: element-wise product of its inputs (gating)."),
  layer("distance", { metric: z.enum(["euclidean", "manhattan", "cosine"]).default("euclidean") }, "Graph only: distance between two vectors, shape [1] (siamese heads)."),
  // --- sequences
  layer("embedding", { inputDim: positiveInt(), outputDim: positiveInt(), maskZero: z.boolean().default(false) }, "Maps token ids in [0, inputDim) to learned vectors."),
  layer("masking", { maskValue: z.number().default(0) }, "Marks time steps whose features all equal maskValue as padding, skipped by recurrent layers."),
  layer("simpleRNN", { units: positiveInt(), activation: activationSchema.default("tanh"), returnSequences: z.boolean().default(false), dropout: rate.default(0), recurrentDropout: rate.default(0) }, "Elman RNN: h_t = tanh(W·h_{t-1} + W2·x_t + b)."),
  layer("lstm", { units: positiveInt(), returnSequences: z.boolean().default(false), dropout: rate.default(0), recurrentDropout: rate.default(0) }, "Long short-term memory."),
  layer("gru", { units: positiveInt(), returnSequences: z.boolean().default(false), dropout: rate.default(0), recurrentDropout: rate.default(0) }, "Gated recurrent unit."),
  layer("bidirectional", {
    layer: z.object({ type: z.enum(["simpleRNN", "lstm", "gru"]), units: positiveInt(), returnSequences: z.boolean().default(false) }).strict(),
    mergeMode: z.enum(["concat", "sum", "mul", "ave"]).default("concat"),
  }, "Runs a recurrent layer forwards and backwards and merges the two."),
  layer("positionalEncoding", { maxLength: positiveInt().default(512) }, "Adds the sinusoidal position encoding of Vaswani et al. (2017) to [time, features]."),
  layer("attention", { score: z.enum(["dot", "additive"]).default("dot"), causal: z.boolean().default(false) }, "Graph only: attention of a query sequence over a value sequence (inputs [query, value] or [query, value, key]); dot is Luong, additive is Bahdanau."),
  layer("multiHeadSelfAttention", { numHeads: positiveInt(), keyDim: positiveInt(), causal: z.boolean().default(false), dropout: rate.default(0) }, "Multi-head scaled dot-product self-attention; `causal` hides later positions."),
  layer("transformerEncoder", { numHeads: positiveInt(), keyDim: positiveInt(), ffDim: positiveInt(), dropout: rate.default(0.1), causal: z.boolean().default(false) }, "One transformer encoder block: self-attention and a feed-forward network, each with a residual connection and layer normalization."),
] as const;

export const LAYER_TYPES = LAYER_SCHEMAS.map((s) => s.shape.type.value);
export type LayerType = (typeof LAYER_TYPES)[number];

export const layerSpecSchema = z
  .discriminatedUnion("type", LAYER_SCHEMAS, {
    error: (issue) => (issue.code === "invalid_union" ? `unknown layer type; expected one of ${LAYER_TYPES.join(", ")}` : undefined),
  })
  .meta({ id: "LayerSpec" });
export type LayerSpec = z.infer<typeof layerSpecSchema>;
export type LayerOf<T extends LayerType> = Extract<LayerSpec, { type: T }>;

/** A graph node that reuses the weights of another node: the same layer applied again (siamese networks). */
export const sharedNodeSchema = z
  .object({ type: z.literal("shared"), of: z.string().min(1).describe("The node whose layer (and weights) this node applies."), inputs: z.array(z.string().min(1)).min(1) })
  .strict()
  .meta({ id: "SharedNode" });

export const nodeSpecSchema = z
  .discriminatedUnion("type", [...LAYER_SCHEMAS, sharedNodeSchema], {
    error: (issue) => (issue.code === "invalid_union" ? `unknown layer type; expected one of ${LAYER_TYPES.join(", ")}, shared` : undefined),
  })
  .meta({ id: "NodeSpec" });
export type NodeSpec = z.infer<typeof nodeSpecSchema>;

export const LOSSES = ["meanSquaredError", "binaryCrossentropy", "categoricalCrossentropy", "sparseCategoricalCrossentropy", "contrastive"] as const;
export const lossSchema = z.enum(LOSSES, { error: `must be one of ${LOSSES.join(", ")}` });
export type LossName = z.infer<typeof lossSchema>;

const shapeSchema = z
  .array(z.union([positiveInt(), z.null()]), { error: "expected an array of positive integers (null for a free dimension)" })
  .min(1, "must have at least one dimension")
  .max(8);
const inputSchema = z.object({ shape: shapeSchema, dtype: z.enum(["float32", "int32"]).default("float32").describe("int32 for token ids.") }).strict();

const trainingFields = {
  loss: lossSchema.optional().describe("Default: chosen from the dataset and the output layer. With several outputs, the loss of each output not named in `losses`."),
  losses: z.record(z.string(), lossSchema).optional().describe("Graph specs with several outputs: the loss of an output, by output name."),
  lossWeights: z
    .record(z.string(), z.number().nonnegative().max(1e6))
    .optional()
    .describe("Graph specs with several outputs: each output's weight in the total loss, by output name (default 1)."),
  margin: z
    .number()
    .positive("must be > 0")
    .max(1e6)
    .optional()
    .describe("contrastive loss: the distance beyond which a dissimilar pair costs nothing (default 1)."),
  mode: z.enum(["backprop", "perceptron"]).default("backprop").describe("perceptron: Rosenblatt's update rule for a single dense layer with a step activation."),
};

/** Names of a graph's inputs, nodes and outputs (and so of a dataset's named inputs and outputs). */
export const nodeName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,99}$/, "node names are letters, digits, _ . - and start with a letter or _");

/** The most layers (sequential) or nodes (graph) a spec may have: it bounds every walk over them. */
export const MAX_NODES = 1000;

// One object rather than a union of the two forms: a union would report a bad layer as "matches
// neither form" instead of at its path.
export const modelSpecSchema = z
  .object({
    input: inputSchema.optional().describe("Sequential specs: the input shape, batch axis excluded."),
    layers: z.array(layerSpecSchema).min(1, "must have at least one layer").max(MAX_NODES, `at most ${MAX_NODES} layers`).optional().describe("Sequential specs: layers applied in order."),
    inputs: z.record(nodeName, inputSchema).optional().describe("Graph specs: named inputs."),
    nodes: z.record(nodeName, nodeSpecSchema).optional().describe("Graph specs: named nodes, each listing its inputs."),
    outputs: z.array(z.string().min(1)).min(1, "must name at least one output").optional().describe("Graph specs: the nodes whose values the model outputs."),
    ...trainingFields,
  })
  .strict()
  .superRefine((spec, ctx) => {
    const sequential = spec.input !== undefined || spec.layers !== undefined;
    const graph = spec.inputs !== undefined || spec.nodes !== undefined || spec.outputs !== undefined;
    if (sequential && graph) ctx.addIssue({ code: "custom", message: "is either sequential (input, layers) or a graph (inputs, nodes, outputs), not both" });
    else if (sequential) {
      if (!spec.input) ctx.addIssue({ code: "custom", path: ["input"], message: "is required with layers" });
      if (!spec.layers) ctx.addIssue({ code: "custom", path: ["layers"], message: "is required with input" });
    } else if (graph) {
      for (const k of ["inputs", "nodes", "outputs"] as const) {
        if (!spec[k]) ctx.addIssue({ code: "custom", path: [k], message: "is required in a graph spec" });
        else if (k !== "outputs" && Object.keys(spec[k]!).length === 0) ctx.addIssue({ code: "custom", path: [k], message: "must not be empty" });
      }
      // A record has no .max(); here rather than on the field so the OpenAPI document keeps its shape.
      if (spec.nodes && Object.keys(spec.nodes).length > MAX_NODES) ctx.addIssue({ code: "custom", path: ["nodes"], message: `at most ${MAX_NODES} nodes` });
    } else ctx.addIssue({ code: "custom", message: "expected a sequential spec ({input, layers}) or a graph spec ({inputs, nodes, outputs})" });
    for (const k of ["losses", "lossWeights"] as const) {
      for (const name of Object.keys(spec[k] ?? {})) {
        if (!spec.outputs?.includes(name)) {
          ctx.addIssue({ code: "custom", path: [k, name], message: `is not an output of the spec (${spec.outputs ? `outputs: ${spec.outputs.join(", ")}` : "only graph specs name their outputs"})` });
        }
      }
    }
  })
  .meta({
    id: "ModelSpec",
    description: "Sequential: `input` + `layers`, applied in order. Graph: named `inputs`, named `nodes` that each list their `inputs`, and `outputs` — for branches, merges, skip connections and shared layers.",
  });
export type ModelSpec = z.infer<typeof modelSpecSchema>;
type InputSpec = z.infer<typeof inputSchema>;
export type SequentialSpec = ModelSpec & { input: InputSpec; layers: LayerSpec[] };
export type GraphSpec = ModelSpec & { inputs: Record<string, InputSpec>; nodes: Record<string, NodeSpec>; outputs: string[] };

export const isGraph = (spec: ModelSpec): spec is GraphSpec => spec.nodes !== undefined;

/** The name of a sequential spec's one input (and of a dataset's one unnamed input). */
export const DEFAULT_INPUT = "input";
/** The name of a sequential spec's one output (and of a dataset's one unnamed set of labels). */
export const DEFAULT_OUTPUT = "output";

/** The output names of a spec, in the model's output order. */
export function modelOutputNames(spec: ModelSpec): string[] {
  return isGraph(spec) ? spec.outputs : [DEFAULT_OUTPUT];
}

/** The loss the spec asks for at an output (undefined: chosen from the dataset), and its weight in the total. */
export function outputLoss(spec: ModelSpec, output: string): { loss?: LossName; weight: number; margin: number; path: string } {
  const named = spec.losses?.[output];
  return {
    loss: named ?? spec.loss,
    weight: spec.lossWeights?.[output] ?? 1,
    margin: spec.margin ?? 1,
    path: named ? `spec.losses.${output}` : "spec.loss",
  };
}

/** The inputs of a spec (shapes without the batch axis), in the model's input order. */
export function modelInputs(spec: ModelSpec): { name: string; shape: (number | null)[] }[] {
  return isGraph(spec) ? Object.entries(spec.inputs).map(([name, i]) => ({ name, shape: i.shape })) : [{ name: DEFAULT_INPUT, shape: spec.input!.shape }];
}

/** The activation an output ends in (a shared node: the node it shares), for checking it against the loss. */
export function finalActivation(spec: ModelSpec, output?: string): { activation: Activation | "none"; path: string } {
  const pick = (l: NodeSpec | LayerSpec, path: string): { activation: Activation | "none"; path: string } => {
    if ("activation" in l && typeof l.activation === "string") return { activation: l.activation, path: `${path}.activation` };
    return { activation: "none", path };
  };
  if (isGraph(spec)) {
    const name = output ?? spec.outputs[0];
    let node = spec.nodes[name];
    if (node?.type === "shared") node = spec.nodes[node.of];
    return node ? pick(node, `spec.nodes.${name}`) : { activation: "none", path: `spec.outputs` };
  }
  const layers = spec.layers!;
  return pick(layers[layers.length - 1], `spec.layers[${layers.length - 1}]`);
}

/** A shape as messages show it: `[28, 28, 1]`, a free dimension as null. */
export const formatShape = (shape: readonly (number | null)[]) => `[${shape.map((d) => (d === null ? "null" : d)).join(", ")}]`;
