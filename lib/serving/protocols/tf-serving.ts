// TensorFlow Serving's REST API (tensorflow_serving/g3doc/api_rest.md): the predict request in
// the row format (`instances`) and the columnar format (`inputs`), their responses (`predictions`,
// `outputs`), model status (`model_version_status`) and model metadata. Pure: parsing and
// formatting only; PredictService runs the model. TF Serving's predict response has no version
// field: the version is in the `x-trainyard-model-version` header only.
import { z } from "zod";
import { nestedNumbersSchema as nested, type Nested } from "../../data/nested.ts";
import { ValidationError } from "../../errors.ts";
import type { Signature } from "../../registry/signature.ts";
import { instanceOf, nest, type RawInputs, type Tensor } from "./tensors.ts";

// An instance is checked at its outer level only: its values and shape are checked against the
// model's signature (packInputs), which names the exact element (instances[0][2]) where a schema
// union could only say instances[0].
const instanceSchema = z
  .custom<unknown[] | Record<string, unknown>>((v) => typeof v === "object" && v !== null, { error: "expected an array of numbers, or an object of them by input name" })
  .meta({ type: ["array", "object"] });

export const tfPredictRequestSchema = z
  .object({
    signature_name: z.string().optional().describe("Accepted and ignored: a Trainyard version has one signature (serving_default)."),
    instances: z
      .array(instanceSchema)
      .min(1, "must hold at least one instance")
      .optional()
      .describe("Row format: one entry per instance: nested arrays shaped like the model's input, or, for a model with several inputs, an object of them by input name ({\"left\": [...], \"right\": [...]})."),
    inputs: z
      .custom<unknown[] | Record<string, unknown>>((v) => typeof v === "object" && v !== null, { error: "expected a list with one entry per instance, or an object of such lists by input name" })
      .meta({ type: ["array", "object"] })
      .optional()
      .describe("Columnar format: the input's batch (a list with one entry per instance), or for several inputs an object of them by input name; every input has the same batch size."),
  })
  .refine((b) => (b.instances === undefined) !== (b.inputs === undefined), { error: "a request has either 'instances' (row format) or 'inputs' (columnar format), not both and not neither" })
  .meta({ id: "PredictRequest", description: "TensorFlow Serving's predict request, row or columnar format." });
export type TfPredictRequest = z.infer<typeof tfPredictRequestSchema>;

const topKSchema = z.array(z.object({ label: z.string(), probability: z.number() }));
export const topKResponseSchema = z
  .union([z.array(topKSchema), z.record(z.string(), z.array(topKSchema))])
  .describe("With ?topK=k (a Trainyard extension): per instance the k most probable classes of each classification output, best first; an object by output name for several outputs.");

export const tfPredictResponseSchema = z
  .object({
    predictions: z.array(z.union([nested, z.record(z.string(), nested)])).optional().describe("Row format: one prediction per instance, shaped like the model's output; for several outputs an object of them by output name."),
    outputs: z.union([z.array(nested), z.record(z.string(), z.array(nested))]).optional().describe("Columnar format: the output's batch, or for several outputs an object of them by output name."),
    top_k: topKResponseSchema.optional(),
  })
  .meta({
    id: "PredictResponse",
    description: "TensorFlow Serving's predict response: `predictions` for a row-format request, `outputs` for a columnar one. It has no version field; the version is in the x-trainyard-model-version header.",
  });

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The format a request used, which decides the response's. */
export const formatOf = (body: TfPredictRequest): "row" | "columnar" => (body.instances !== undefined ? "row" : "columnar");

/** A predict request's inputs, in the signature's order, as raw per-instance values. */
export function parseTfPredict(signature: Signature, body: TfPredictRequest): RawInputs {
  const inputs = signature.inputs;
  const names = inputs.map((i) => i.name);
  const list = names.join(", ");
  if (body.instances !== undefined) {
    const instances = body.instances;
    const byName = (inst: unknown) => isRecord(inst) && (inputs.length > 1 || Object.keys(inst).every((key) => names.includes(key)));
    if (inputs.length === 1 && !instances.some(byName)) return { batch: instances.length, inputs: [{ kind: "rows", rows: instances, path: (i) => `instances[${i}]` }] };
    instances.forEach((inst, i) => {
      if (!isRecord(inst)) throw ValidationError.at(`instances[${i}]`, `the model has ${inputs.length} inputs (${list}): expected an object of them by name`);
      const unknown = Object.keys(inst).find((k) => !names.includes(k));
      if (unknown !== undefined) throw ValidationError.at(`instances[${i}].${unknown}`, `is not an input of the model (its inputs: ${list})`);
      const missing = names.find((n) => !(n in inst));
      if (missing !== undefined) throw ValidationError.at(`instances[${i}]`, `lacks input '${missing}'`);
    });
    return {
      batch: instances.length,
      inputs: names.map((n) => ({ kind: "rows" as const, rows: instances.map((inst) => (inst as Record<string, unknown>)[n]), path: (i: number) => `instances[${i}].${n}` })),
    };
  }
  const columns = body.inputs!;
  if (Array.isArray(columns)) {
    if (inputs.length !== 1) throw ValidationError.at("inputs", `the model has ${inputs.length} inputs (${list}): expected an object of them by name`);
    if (!columns.length) throw ValidationError.at("inputs", "must hold at least one instance");
    return { batch: columns.length, inputs: [{ kind: "rows", rows: columns, path: (i) => `inputs[${i}]` }] };
  }
  const unknown = Object.keys(columns).find((k) => !names.includes(k));
  if (unknown !== undefined) throw ValidationError.at(`inputs.${unknown}`, `is not an input of the model (its inputs: ${list})`);
  let batch = -1;
  const raw = names.map((n) => {
    const value = columns[n];
    if (value === undefined) throw ValidationError.at("inputs", `lacks input '${n}'`);
    if (!Array.isArray(value) || !value.length) throw ValidationError.at(`inputs.${n}`, "expected a list with one entry per instance");
    if (batch >= 0 && value.length !== batch) throw ValidationError.at(`inputs.${n}`, `has ${value.length} instances, input '${names[0]}' has ${batch}: every input needs the same batch size`);
    batch = value.length;
    return { kind: "rows" as const, rows: value, path: (i: number) => `inputs.${n}[${i}]` };
  });
  return { batch, inputs: raw };
}

/** The predict response in the request's format. */
export function formatTfPredict(format: "row" | "columnar", signature: Signature, outputs: Tensor[]): { predictions: (Nested | Record<string, Nested>)[] } | { outputs: Nested[] | Record<string, Nested[]> } {
  const names = signature.outputs.map((o) => o.name);
  if (format === "columnar") {
    const full = outputs.map((t) => nest(t.data, t.shape) as Nested[]);
    return { outputs: full.length === 1 ? full[0] : Object.fromEntries(names.map((n, k) => [n, full[k]])) };
  }
  const batch = outputs[0].shape[0];
  const predictions: (Nested | Record<string, Nested>)[] = new Array(batch);
  for (let i = 0; i < batch; i++) {
    predictions[i] = outputs.length === 1 ? instanceOf(outputs[0], i) : Object.fromEntries(names.map((n, k) => [n, instanceOf(outputs[k], i)]));
  }
  return { predictions };
}

export const tfModelStatusSchema = z
  .object({
    model_version_status: z
      .array(z.object({ version: z.string(), state: z.enum(["AVAILABLE"]), status: z.object({ error_code: z.string(), error_message: z.string() }) }))
      .describe("TensorFlow Serving's GetModelStatusResponse: every version that can be served (all stored versions), newest first."),
  })
  .meta({ id: "TfModelStatus" });

/** TF Serving's model status: every stored version is loadable on demand, so AVAILABLE. */
export function tfModelStatus(versions: number[]): z.infer<typeof tfModelStatusSchema> {
  return { model_version_status: versions.map((v) => ({ version: String(v), state: "AVAILABLE" as const, status: { error_code: "OK", error_message: "" } })) };
}

const tensorInfoSchema = z.object({
  dtype: z.string(),
  tensor_shape: z.object({ dim: z.array(z.object({ size: z.string(), name: z.string() })), unknown_rank: z.boolean() }),
  name: z.string(),
});
export const tfModelMetadataSchema = z
  .object({
    model_spec: z.object({ name: z.string(), signature_name: z.string(), version: z.string() }),
    metadata: z.object({
      signature_def: z.object({
        signature_def: z.record(z.string(), z.object({ inputs: z.record(z.string(), tensorInfoSchema), outputs: z.record(z.string(), tensorInfoSchema), method_name: z.string() })),
      }),
    }),
  })
  .meta({ id: "TfModelMetadata", description: "TensorFlow Serving's GetModelMetadataResponse: the serving_default signature, shapes with -1 for the batch and free dimensions; input shapes are the raw rows clients send." });

const tensorInfo = (name: string, shape: number[]) => ({
  dtype: "DT_FLOAT",
  tensor_shape: { dim: [-1, ...shape].map((d) => ({ size: String(d), name: "" })), unknown_rank: false },
  name,
});

export function tfModelMetadata(model: string, version: number, signature: Signature, outputShapes: number[][]): z.infer<typeof tfModelMetadataSchema> {
  return {
    model_spec: { name: model, signature_name: "", version: String(version) },
    metadata: {
      signature_def: {
        signature_def: {
          serving_default: {
            inputs: Object.fromEntries(signature.inputs.map((i) => [i.name, tensorInfo(i.name, i.shape)])),
            outputs: Object.fromEntries(signature.outputs.map((o, k) => [o.name, tensorInfo(o.name, outputShapes[k] ?? [])])),
            method_name: "tensorflow/serving/predict",
          },
        },
      },
    },
  };
}
