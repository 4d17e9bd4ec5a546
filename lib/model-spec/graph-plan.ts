// A spec as a graph, whatever form it was written in: named inputs, nodes that list their inputs,
// and outputs, each node remembering where it stands in the spec so that every message can point
// at it. Planning checks what needs no shapes (names that resolve, no cycles, how many inputs a
// layer takes); the engine then builds the plan in the order given here.
import { ValidationError } from "../errors.ts";
import { DEFAULT_INPUT, isGraph, type LayerSpec, type ModelSpec, type NodeSpec } from "./model-spec-schema.ts";

export type Shape = (number | null)[];

export interface PlanNode {
  name: string;
  spec: NodeSpec;
  inputs: string[];
  /** Where the node is in the spec, e.g. `spec.layers[3]` or `spec.nodes.res2_add`. */
  path: string;
}

export interface Plan {
  inputs: { name: string; shape: Shape; dtype: "float32" | "int32" }[];
  nodes: PlanNode[];
  outputs: string[];
  outputsPath: string;
}

/** Layers that merge several inputs: graph specs only. */
export const MERGE_TYPES = new Set(["concatenate", "add", "multiply"]);

/** The graph form of a spec; `path` prefixes every location (`spec` for a request's spec). */
export function planOf(spec: ModelSpec, path: string): Plan {
  if (isGraph(spec)) {
    return {
      inputs: Object.entries(spec.inputs).map(([name, i]) => ({ name, shape: i.shape, dtype: i.dtype })),
      nodes: Object.entries(spec.nodes).map(([name, n]) => ({ name, spec: n, inputs: n.inputs ?? [], path: `${path}.nodes.${name}` })),
      outputs: spec.outputs,
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
    // Names from positions, not tfjs's global counters: the same spec builds the same weight
    // names in any process, which is what lets a checkpoint written by one worker resume in another.
    const name = `l${i}_${l.type}`;
    const node = { name, spec: l, inputs: [prev], path: p };
    prev = name;
    return node;
  });
  return { inputs: [{ name: DEFAULT_INPUT, shape: spec.input!.shape, dtype: spec.input!.dtype }], nodes, outputs: [prev], outputsPath: `${path}.layers` };
}

/** Orders nodes so each comes after its inputs; names a missing input or a cycle precisely. */
export function topologicalOrder(plan: Plan): PlanNode[] {
  const byName = new Map(plan.nodes.map((n) => [n.name, n]));
  const inputNames = new Set(plan.inputs.map((i) => i.name));
  for (const n of plan.nodes) {
    if (inputNames.has(n.name)) throw ValidationError.at(n.path, `has the same name as an input`);
    if (n.spec.type === "shared" && !byName.has(n.spec.of)) throw ValidationError.at(`${n.path}.of`, `no node named '${n.spec.of}'`);
    if (n.inputs.length === 0) throw ValidationError.at(`${n.path}.inputs`, "is required in a graph spec");
    n.inputs.forEach((ref, i) => {
      if (!byName.has(ref) && !inputNames.has(ref)) throw ValidationError.at(`${n.path}.inputs[${i}]`, `no input or node named '${ref}'`);
    });
  }
  plan.outputs.forEach((o, i) => {
    if (!byName.has(o) && !inputNames.has(o)) throw ValidationError.at(`${plan.outputsPath}[${i}]`, `no node named '${o}'`);
  });
  // Depth first from each output, on an explicit stack rather than by recursion: a chain as long
  // as a spec may be must not exhaust the call stack. The stack is the trail a cycle is named along.
  const order: PlanNode[] = [];
  const state = new Map<string, "visiting" | "done">();
  // A shared node needs the node it shares to exist first.
  const depsOf = (n: PlanNode) => (n.spec.type === "shared" ? [...n.inputs, n.spec.of] : n.inputs);
  const stack: { node: PlanNode; deps: string[]; next: number }[] = [];
  const depth = new Map<string, number>();
  const enter = (node: PlanNode) => {
    state.set(node.name, "visiting");
    depth.set(node.name, stack.length);
    stack.push({ node, deps: depsOf(node), next: 0 });
  };
  for (const o of plan.outputs) {
    if (inputNames.has(o) || state.has(o)) continue;
    enter(byName.get(o)!);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      if (top.next === top.deps.length) {
        stack.pop();
        state.set(top.node.name, "done");
        order.push(top.node);
        continue;
      }
      const dep = top.deps[top.next++];
      if (inputNames.has(dep) || state.get(dep) === "done") continue;
      const node = byName.get(dep)!;
      if (state.get(dep) === "visiting") {
        const cycle = [...stack.slice(depth.get(dep)).map((f) => f.node.name), dep];
        throw ValidationError.at(node.path, `is part of a cycle: ${cycle.join(" → ")}`);
      }
      enter(node);
    }
  }
  for (const n of plan.nodes) {
    if (!state.has(n.name)) throw ValidationError.at(n.path, "is not connected to any output");
  }
  return order;
}

/** How many inputs a layer type takes: [min, max]. */
export function arity(type: LayerSpec["type"]): [number, number] {
  if (MERGE_TYPES.has(type)) return [2, Infinity];
  if (type === "distance") return [2, 2];
  if (type === "attention") return [2, 3];
  return [1, 1];
}
