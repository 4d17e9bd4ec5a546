// A stored version as an ONNX model that takes the raw inputs :predict takes: the graph is the
// stock TensorFlow.js graph the TensorFlow.js export builds (fitted preprocessing as stock layers
// over each raw input, custom layers in their stock forms, or as they are where ONNX expresses
// them directly: ONNX_CUSTOM; export-model.ts), walked from its
// outputs back to its inputs and written operator by operator (onnx-layers.ts). Inputs are named
// as the signature names them, outputs likewise, both channels-last like the service's.
import * as tf from "@tensorflow/tfjs";
import type { StoredModel } from "../../../engine/model-io.ts";
import type { Signature } from "../../signature.ts";
import { exportedSignature, stockGraph } from "../export-model.ts";
import { ConflictError } from "../../../errors.ts";
import { OnnxGraph, OPSET } from "./onnx-graph.ts";
import { convertLayer, ONNX_CUSTOM } from "./onnx-layers.ts";

type Sym = tf.SymbolicTensor;

interface LayerInternals {
  inboundNodes: { inputTensors: Sym[]; outputTensors: Sym[] }[];
}

export { OPSET };

const RECURRENT = new Set(["SimpleRNN", "LSTM", "GRU", "Bidirectional"]);

export async function exportOnnx(stored: StoredModel, signature: Signature, generatedBy: string): Promise<Uint8Array> {
  const { model, original } = await stockGraph(stored, signature, "onnx", (cls) => ONNX_CUSTOM.has(cls));
  try {
    const g = new OnnxGraph();
    const names = new Map<number, string>();
    const inputs = model.inputs.map((t) => {
      const name = g.name(t.sourceLayer.name);
      names.set(t.id, name);
      return { name, shape: t.shape };
    });
    // Values downstream of a mask (Masking, an Embedding with maskZero): TensorFlow.js's recurrent
    // layers skip masked steps, which ONNX's (sequence lengths, not masks) cannot express.
    const masked = new Set<number>();
    // Depth first from the outputs: each node of the exported graph once, after its inputs (the
    // stock graph reuses the stored model's layer objects, whose other nodes are not part of it).
    const visit = (t: Sym): string => {
      const known = names.get(t.id);
      if (known !== undefined) return known;
      const layer = t.sourceLayer as unknown as tf.layers.Layer & LayerInternals;
      const node = layer.inboundNodes[t.nodeIndex];
      const ins = node.inputTensors.map(visit);
      const cls = layer.getClassName();
      const maskIn = node.inputTensors.some((x) => masked.has(x.id));
      if (maskIn && RECURRENT.has(cls)) {
        throw new ConflictError(`layer '${layer.name}' (${cls}) cannot be exported to ONNX: it skips the steps a mask hides (from a masking layer or an embedding with maskZero), and ONNX's recurrent operators take sequence lengths, not masks`);
      }
      const outs = convertLayer(g, layer, ins, node.inputTensors.map((x) => x.shape));
      const makesMask = cls === "Masking" || (cls === "Embedding" && (layer.getConfig() as { maskZero?: boolean }).maskZero === true);
      node.outputTensors.forEach((o, i) => {
        names.set(o.id, outs[i]);
        if (maskIn || makesMask) masked.add(o.id);
      });
      return names.get(t.id)!;
    };
    const sig = exportedSignature(signature);
    const outputs = model.outputs.map((t, k) => {
      const inner = visit(t);
      // Outputs carry the signature's names, as :predict's answers do.
      const name = g.node("Identity", [inner], sig.outputs[k]?.name ?? t.sourceLayer.name)[0];
      return { name, shape: t.shape };
    });
    return g.encode(inputs, outputs, {
      producer: generatedBy,
      graphName: model.name,
      docString: `Exported by ${generatedBy} (ONNX opset ${OPSET}). Inputs take raw values, as the service's :predict does: the fitted preprocessing is part of the graph.`,
      properties: { "trainyard.signature": JSON.stringify(sig) },
    });
  } finally {
    for (const m of [model, original]) {
      try {
        m.dispose();
      } catch {
        // already released through the other
      }
    }
  }
}
