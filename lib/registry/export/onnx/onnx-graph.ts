// Writing an ONNX model: a small builder over the ONNX protobuf definitions of the npm package
// onnx-proto (generated from the ONNX repository's onnx.proto by protobufjs), so the bytes are the
// format's own encoding, not a hand-rolled one. Values flow by name; every name is made unique here.
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;

/** The operator set the exporter targets: ONNX 1.12's, served by every ONNX Runtime since 1.12. */
export const OPSET = 17;
/** IR version 8 (ONNX 1.10+), the newest the bundled onnx.proto describes. */
export const IR_VERSION = 8;

/** An attribute: a plain number is an INT (axes, sizes); a float attribute says so, as `{ float: v }`, since 1.0 is 1 in JavaScript. */
export type Attr = number | string | number[] | string[] | { float: number } | { floats: number[] };

export const float = (v: number) => ({ float: v });

export class OnnxGraph {
  private readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  private readonly initializers: InstanceType<typeof onnx.TensorProto>[] = [];
  private readonly used = new Set<string>();

  /** A name no other value or node has yet, as close to `wanted` as possible. */
  name(wanted: string): string {
    let name = wanted.replace(/[^A-Za-z0-9_./:-]/g, "_") || "v";
    for (let i = 1; this.used.has(name); i++) name = `${wanted}_${i}`;
    this.used.add(name);
    return name;
  }

  /** A float32 constant. */
  floats(wanted: string, data: Float32Array | number[], dims: number[]): string {
    const name = this.name(wanted);
    const values = data instanceof Float32Array ? data : Float32Array.from(data);
    const bytes = new Uint8Array(values.byteLength);
    new Float32Array(bytes.buffer).set(values);
    this.initializers.push(onnx.TensorProto.create({ name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: bytes }));
    return name;
  }

  /** An int64 constant (shapes, axes). */
  ints(wanted: string, data: number[]): string {
    const name = this.name(wanted);
    const bytes = new Uint8Array(data.length * 8);
    const view = new DataView(bytes.buffer);
    data.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
    this.initializers.push(onnx.TensorProto.create({ name, dims: [data.length], dataType: onnx.TensorProto.DataType.INT64, rawData: bytes }));
    return name;
  }

  /** Adds a node; returns its output names (one unless `outputs` > 1). */
  node(op: string, inputs: string[], wanted: string, attrs: Record<string, Attr> = {}, outputs = 1): string[] {
    const outs = Array.from({ length: outputs }, (_, i) => this.name(outputs === 1 ? wanted : `${wanted}_${i}`));
    const attribute = Object.entries(attrs).map(([name, v]) => {
      const A = onnx.AttributeProto.AttributeType;
      if (typeof v === "number") {
        if (!Number.isInteger(v)) throw new TypeError(`attribute ${name}: ${v} is not an integer; pass { float: ${v} }`);
        return { name, type: A.INT, i: v };
      }
      if (typeof v === "string") return { name, type: A.STRING, s: new TextEncoder().encode(v) };
      if (Array.isArray(v) && v.every((e) => typeof e === "string")) return { name, type: A.STRINGS, strings: (v as string[]).map((e) => new TextEncoder().encode(e)) };
      if (Array.isArray(v)) return { name, type: A.INTS, ints: v as number[] };
      if ("float" in v) return { name, type: A.FLOAT, f: v.float };
      return { name, type: A.FLOATS, floats: v.floats };
    });
    this.nodes.push(onnx.NodeProto.create({ opType: op, input: inputs, output: outs, name: this.name(`${wanted}_node`), attribute }));
    return outs;
  }

  /** The model's bytes. Dims that are null (the batch) become a named dimension. */
  encode(inputs: { name: string; shape: (number | null)[] }[], outputs: { name: string; shape: (number | null)[] }[], meta: { producer: string; docString: string; graphName: string; properties: Record<string, string> }): Uint8Array {
    const info = (v: { name: string; shape: (number | null)[] }) => ({
      name: v.name,
      type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: v.shape.map((d) => (d === null ? { dimParam: "batch" } : { dimValue: d })) } } },
    });
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      opsetImport: [{ domain: "", version: OPSET }],
      producerName: meta.producer,
      docString: meta.docString,
      graph: { name: meta.graphName, node: this.nodes, initializer: this.initializers, input: inputs.map(info), output: outputs.map(info) },
      metadataProps: Object.entries(meta.properties).map(([key, value]) => ({ key, value })),
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
