// The Open Inference Protocol (KServe V2) over REST (open-inference-protocol,
// specification/protocol/inference_rest.md): typed tensors in (`name`, `shape`, `datatype`,
// `data` flat or nested, row-major), typed tensors out, `id` echoed, `outputs` selecting what is
// returned, and the metadata and readiness bodies. Pure: parsing and formatting only.
import { z } from "zod";
import { ValidationError } from "../../errors.ts";
import type { Signature } from "../../registry/signature.ts";
import { describeInput, type RawInputs, type Tensor } from "./tensors.ts";
import { topKResponseSchema } from "./tf-serving.ts";

export const KSERVE_DATATYPES = ["FP32", "FP64", "INT32", "INT64", "UINT8", "BOOL"] as const;
type Datatype = (typeof KSERVE_DATATYPES)[number];

const parametersSchema = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));
type TensorData = number | boolean | TensorData[];
const tensorDataSchema = z
  .array(z.unknown())
  .describe("The tensor's elements in row-major order, flat or nested in the tensor's shape; numbers, or true/false for BOOL.") as unknown as z.ZodType<TensorData[]>;

export const inferRequestSchema = z
  .object({
    id: z.string().optional().describe("Echoed in the response."),
    parameters: parametersSchema.optional(),
    inputs: z
      .array(
        z.object({
          name: z.string(),
          shape: z.array(z.number().int().nonnegative()),
          datatype: z.string().describe(`One of ${KSERVE_DATATYPES.join(", ")}.`),
          parameters: parametersSchema.optional(),
          data: tensorDataSchema,
        }),
      )
      .min(1, "must hold at least one input"),
    outputs: z.array(z.object({ name: z.string(), parameters: parametersSchema.optional() })).optional().describe("The outputs to return, in this order; all when omitted."),
  })
  .meta({ id: "InferRequest", description: "Open Inference Protocol (KServe V2) inference request." });
export type InferRequest = z.infer<typeof inferRequestSchema>;

export const inferResponseSchema = z
  .object({
    model_name: z.string(),
    model_version: z.string().describe("The version that answered."),
    id: z.string().optional(),
    parameters: parametersSchema.optional(),
    outputs: z.array(z.object({ name: z.string(), shape: z.array(z.number().int()), datatype: z.string(), parameters: parametersSchema.optional(), data: z.array(z.number()) })),
    top_k: topKResponseSchema.optional(),
  })
  .meta({ id: "InferResponse", description: "Open Inference Protocol (KServe V2) inference response; each output is FP32, batch first, its data flat in row-major order." });

export const inferErrorSchema = z.object({ error: z.string() }).meta({ id: "InferError", description: "Open Inference Protocol error body." });

const metadataTensorSchema = z.object({ name: z.string(), datatype: z.string(), shape: z.array(z.number().int()) });
export const modelMetadataSchema = z
  .object({ name: z.string(), versions: z.array(z.string()), platform: z.string(), inputs: z.array(metadataTensorSchema), outputs: z.array(metadataTensorSchema) })
  .meta({ id: "InferModelMetadata", description: "Open Inference Protocol model metadata; -1 is the batch or a free dimension. Input shapes are the raw rows clients send (before preprocessing)." });

export const modelReadySchema = z.object({ name: z.string(), ready: z.boolean() }).meta({ id: "InferModelReady" });
export const serverMetadataSchema = z.object({ name: z.string(), version: z.string(), extensions: z.array(z.string()) }).meta({ id: "InferServerMetadata" });

/** The runtime that serves the version, named as Triton names its backends' platforms. */
export const PLATFORMS = { tfjs: "tensorflowjs_layers", onnx: "onnxruntime_onnx" } as const;

export function modelMetadata(name: string, versions: number[], signature: Signature, outputShapes: number[][], runtime: keyof typeof PLATFORMS): z.infer<typeof modelMetadataSchema> {
  return {
    name,
    versions: versions.map(String),
    platform: PLATFORMS[runtime],
    inputs: signature.inputs.map((i) => ({ name: i.name, datatype: "FP32", shape: [-1, ...i.shape] })),
    outputs: signature.outputs.map((o, k) => ({ name: o.name, datatype: "FP32", shape: [-1, ...(outputShapes[k] ?? [])] })),
  };
}

function checkValue(v: unknown, datatype: Datatype): number | undefined {
  if (datatype === "BOOL") return typeof v === "boolean" ? (v ? 1 : 0) : undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) return undefined;
  if (datatype === "FP32" || datatype === "FP64") return v;
  if (!Number.isInteger(v)) return undefined;
  if (datatype === "UINT8" && (v < 0 || v > 255)) return undefined;
  if (datatype === "INT32" && (v < -(2 ** 31) || v >= 2 ** 31)) return undefined;
  return v;
}

/** Reads `data` (flat, or nested exactly in `shape`) into `out`, row-major. */
function readData(data: unknown[], shape: number[], datatype: Datatype, out: Float32Array, path: string): void {
  const size = out.length;
  if (data.length === size && (shape.length <= 1 || !data.some(Array.isArray))) {
    data.forEach((v, k) => {
      const x = checkValue(v, datatype);
      if (x === undefined) throw ValidationError.at(`${path}[${k}]`, `expected ${datatype === "BOOL" ? "true or false" : `a ${datatype} number`}`);
      out[k] = x;
    });
    return;
  }
  let at = 0;
  const walk = (v: unknown, d: number, p: string) => {
    if (d === shape.length) {
      const x = checkValue(v, datatype);
      if (x === undefined) throw ValidationError.at(p, `expected ${datatype === "BOOL" ? "true or false" : `a ${datatype} number`}`);
      out[at++] = x;
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[d]) {
      throw ValidationError.at(p, `expected ${shape[d]} values along axis ${d} (data is flat with ${size} values, or nested in shape [${shape.join(", ")}])`);
    }
    v.forEach((x, i) => walk(x, d + 1, `${p}[${i}]`));
  };
  walk(data, 0, path);
}

/**
 * An inference request's inputs in the signature's order: each named once, typed, shaped
 * [batch, ...the input's raw shape], all with one batch size.
 */
export function parseInfer(signature: Signature, body: InferRequest): RawInputs {
  const names = signature.inputs.map((i) => i.name);
  const list = signature.inputs.map((i) => `'${i.name}' [-1, ${i.shape.join(", ")}]`).join(", ");
  const at = new Map<string, number>();
  body.inputs.forEach((input, j) => {
    if (!names.includes(input.name)) throw ValidationError.at(`inputs[${j}].name`, `'${input.name}' is not an input of the model (its inputs: ${list})`);
    if (at.has(input.name)) throw ValidationError.at(`inputs[${j}].name`, `input '${input.name}' is given twice`);
    at.set(input.name, j);
  });
  const missing = names.find((n) => !at.has(n));
  if (missing !== undefined) throw ValidationError.at("inputs", `lacks input '${missing}' (the model's inputs: ${list})`);
  let batch = -1;
  const inputs = signature.inputs.map((sig) => {
    const j = at.get(sig.name)!;
    const input = body.inputs[j];
    const path = `inputs[${j}]`;
    const expected = `[batch, ${sig.shape.join(", ")}]`;
    if (!(KSERVE_DATATYPES as readonly string[]).includes(input.datatype)) {
      throw ValidationError.at(`${path}.datatype`, `'${input.datatype}' is not supported for input '${sig.name}'; send one of ${KSERVE_DATATYPES.join(", ")}`);
    }
    const shape = input.shape;
    if (shape.length !== sig.shape.length + 1 || sig.shape.some((d, k) => d !== shape[k + 1])) {
      throw ValidationError.at(`${path}.shape`, `[${shape.join(", ")}] does not fit input '${sig.name}': expected ${expected}`);
    }
    if (shape[0] < 1) throw ValidationError.at(`${path}.shape`, `the batch (axis 0) of input '${sig.name}' must be at least 1`);
    if (batch >= 0 && shape[0] !== batch) throw ValidationError.at(`${path}.shape`, `input '${sig.name}' has a batch of ${shape[0]}, the others ${batch}: every input needs the same batch size`);
    batch = shape[0];
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    try {
      readData(input.data, shape, input.datatype as Datatype, data, `${path}.data`);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      throw new ValidationError(err.problems.map((p) => ({ path: p.path, message: `${p.message}; ${describeInput(sig)}, shape ${expected}` })));
    }
    return { kind: "flat" as const, data, path: `${path}.data` };
  });
  return { batch, inputs };
}

/** Which outputs to return, by index into the signature's outputs, in the request's order. */
export function selectOutputs(signature: Signature, body: InferRequest): number[] {
  const names = signature.outputs.map((o) => o.name);
  if (!body.outputs) return names.map((_, k) => k);
  return body.outputs.map((o, j) => {
    const k = names.indexOf(o.name);
    if (k < 0) throw ValidationError.at(`outputs[${j}].name`, `'${o.name}' is not an output of the model (its outputs: ${names.join(", ")})`);
    return k;
  });
}

export function formatInfer(model: string, version: number, signature: Signature, outputs: Tensor[], selected: number[], id?: string) {
  return {
    model_name: model,
    model_version: String(version),
    ...(id !== undefined ? { id } : {}),
    outputs: selected.map((k) => ({ name: signature.outputs[k].name, shape: outputs[k].shape, datatype: "FP32", data: Array.from(outputs[k].data) })),
  };
}
