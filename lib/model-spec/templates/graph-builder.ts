// Writes graph specs a node at a time. Templates loop over blocks and stages, so the builder
// refuses a repeated name at once: otherwise a later node would silently replace an earlier one
// and the graph would still parse.
import type { LayerInput, NodeInput, SpecInput } from "./template-def.ts";

type InputDef = { shape: number[]; dtype?: "float32" | "int32" };
/** Omit over each member of a union, so each layer type keeps its own fields. */
type WithoutInputs<T> = T extends unknown ? Omit<T, "inputs"> : never;
/** A layer as a template writes it: the builder adds `inputs`. */
type LayerFields = WithoutInputs<LayerInput>;

export class GraphBuilder {
  private readonly nodes: Record<string, NodeInput> = {};

  constructor(private readonly inputs: Record<string, InputDef>) {}

  /** Adds `layer` as node `name` applied to `from`; returns the name, so calls nest. */
  add(name: string, layer: LayerFields, from: string | string[]): string {
    this.claim(name);
    this.nodes[name] = { ...layer, inputs: typeof from === "string" ? [from] : from } as NodeInput;
    return name;
  }

  /** Applies node `of`'s layer, with the same weights, to `from`. */
  shared(name: string, of: string, from: string | string[]): string {
    this.claim(name);
    if (!(of in this.nodes)) throw new Error(`template bug: shared node ${name} refers to unknown node ${of}`);
    this.nodes[name] = { type: "shared", of, inputs: typeof from === "string" ? [from] : from };
    return name;
  }

  /** conv2d (no bias: the batch normalization that follows has one) → batchNormalization → activation. */
  convBn(name: string, from: string, conv: { filters: number; kernelSize: number; strides?: number; activation?: "relu" | "swish" | "linear" }): string {
    const c = this.add(name, { type: "conv2d", filters: conv.filters, kernelSize: conv.kernelSize, strides: conv.strides ?? 1, padding: "same", useBias: false, kernelInitializer: "heNormal" }, from);
    const bn = this.add(`${name}_bn`, { type: "batchNormalization" }, c);
    const activation = conv.activation ?? "relu";
    return activation === "linear" ? bn : this.add(`${name}_${activation}`, { type: "activation", activation }, bn);
  }

  spec(outputs: string[], extra: Pick<SpecInput, "loss" | "mode" | "margin"> = {}): SpecInput {
    return { inputs: this.inputs, nodes: this.nodes, outputs, ...extra };
  }

  private claim(name: string): void {
    if (name in this.nodes || name in this.inputs) throw new Error(`template bug: node name ${name} used twice`);
  }
}
