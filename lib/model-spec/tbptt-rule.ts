// Which specs truncated backpropagation through time (lib/engine/train/tbptt.ts) can train, from
// the spec alone. The engine cuts every input into windows along its first (time) axis and runs the
// model on each window with the recurrent layers' state carried over, so the model must compute
// the same on windows as on the whole sequence: up to its recurrent layers, every layer acts on
// each time step alone; a layer that mixes steps (a convolution or pooling over time, attention,
// flatten) or runs backwards (bidirectional) would compute something else.
import { planOf, topologicalOrder } from "./graph-plan.ts";
import { formatShape, type ModelSpec, type NodeSpec } from "./model-spec-schema.ts";

export interface TbpttProblem {
  path: "tbptt" | "tbptt.window";
  message: string;
}

const RECURRENT = new Set(["simpleRNN", "lstm", "gru"]);
/** Element-wise, or over the last (feature) axis only: act on each time step alone. */
const PER_STEP = new Set(["activation", "dropout", "masking", "batchNormalization"]);

/** Undefined when `window` fits the spec; else the field and why. */
export function tbpttProblem(spec: ModelSpec, window: number): TbpttProblem | undefined {
  const plan = planOf(spec, "spec");
  let length: number | undefined;
  for (const input of plan.inputs) {
    const t = input.shape[0];
    if (typeof t !== "number") return { path: "tbptt.window", message: `needs sequence inputs of a known length; input '${input.name}' has shape ${formatShape(input.shape)}, with no known time axis` };
    if (length !== undefined && t !== length) return { path: "tbptt.window", message: `needs every input to be a sequence of the same length; the inputs have ${length} and ${t} steps` };
    length = t;
  }
  // Per tensor: still a sequence over the inputs' time axis (its rank, batch excluded), or not (a recurrent layer's summary).
  const seq = new Map<string, number | undefined>(plan.inputs.map((i) => [i.name, i.shape.length]));
  const byName = new Map(plan.nodes.map((n) => [n.name, n]));
  let recurrent = 0;
  for (const node of topologicalOrder(plan)) {
    const ins = node.inputs.map((n) => seq.get(n));
    const rank = ins.find((r) => r !== undefined);
    if (rank === undefined) {
      seq.set(node.name, undefined);
      continue;
    }
    let layer: NodeSpec = node.spec;
    if (layer.type === "shared") {
      layer = byName.get(layer.of)!.spec;
      if (RECURRENT.has(layer.type)) return { path: "tbptt", message: `${node.path} calls the recurrent layer of '${node.spec.type === "shared" ? node.spec.of : ""}' a second time, so that layer has no single state to carry from one window to the next` };
    }
    const mixes = () => ({ path: "tbptt" as const, message: `${node.path} (${layer.type}) mixes time steps, so run on windows of the sequence it would compute something else; before its recurrent layers a model trained with tbptt may only have layers that act on each step (dense, activation, dropout, masking, normalization, embedding, merges along the features)` });
    if (layer.type === "bidirectional") return { path: "tbptt", message: `${node.path} is bidirectional: its backward direction starts from the end of the sequence, so it has no state to carry from one window to the next` };
    if (RECURRENT.has(layer.type)) {
      recurrent++;
      seq.set(node.name, "returnSequences" in layer && layer.returnSequences ? 2 : undefined);
    } else if (PER_STEP.has(layer.type)) seq.set(node.name, rank);
    else if (layer.type === "dense" || layer.type === "layerNormalization") {
      // On [time] alone, the last axis is time itself.
      if (rank < 2) return mixes();
      seq.set(node.name, rank);
    } else if (layer.type === "embedding") seq.set(node.name, rank + 1);
    else if (layer.type === "add" || layer.type === "multiply" || layer.type === "concatenate") {
      if (ins.some((r) => r === undefined)) return { path: "tbptt", message: `${node.path} (${layer.type}) merges a sequence with a recurrent layer's summary of the whole sequence, which no window has` };
      if (layer.type === "concatenate" && layer.axis !== -1 && layer.axis !== rank) return mixes();
      seq.set(node.name, rank);
    } else return mixes();
  }
  if (recurrent === 0) return { path: "tbptt.window", message: "needs a recurrent layer (simpleRNN, lstm, gru) fed by the sequence input; the model has none" };
  if (window >= length!) return { path: "tbptt.window", message: `is ${window} and the sequences are ${length} steps long: the window must be shorter (a window of the whole sequence is plain backpropagation through time)` };
  return undefined;
}
