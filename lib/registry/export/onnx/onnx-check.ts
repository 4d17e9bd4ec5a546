// Whether a version may be served by ONNX Runtime: its network (without the preprocessing, which
// serving applies before any forward pass) is exported to ONNX and run by ONNX Runtime and by
// TensorFlow.js on the same seeded inputs; it passes when every output agrees within 1e-4,
// relative. Serving runs exactly the bytes that passed. The rule that picks a runtime from this
// check and TRAINYARD_SERVING_RUNTIME lives here too, for the inference threads and the metadata.
import * as tf from "@tensorflow/tfjs";
import { loadModel, type StoredModel } from "../../../engine/model-io.ts";
import { createSession, loadOrt } from "../../../engine/onnx-runtime.ts";
import { ConflictError } from "../../../errors.ts";
import { seededRandom } from "../../../random/seeded-random.ts";
import type { OnnxStatus } from "../../model-schema.ts";
import type { Signature } from "../../signature.ts";
import { exportedSignature } from "../export-model.ts";
import { exportOnnx, OPSET } from "./export-onnx.ts";

export type { OnnxStatus };

export interface OnnxCheck {
  status: OnnxStatus;
  opset: number;
  /** Largest relative difference seen (see TOLERANCE); null when nothing ran. */
  maxRelativeError: number | null;
  /** Why it did not pass. */
  reason: string | null;
  /** The ONNX bytes that passed; null otherwise. */
  model: Uint8Array | null;
}

/**
 * Each value is compared relative to itself, with a floor of a tenth of its output's largest
 * magnitude: a probability of 1e-9 is compared at the scale of its output, not its own.
 */
export const TOLERANCE = 1e-4;
const FLOOR = 0.1;

/** Rows of the check: 1, then 16 (half standard normal, like standardized features; half uniform in [0, 1), like pixels). */
const BATCHES = [1, 16];

/**
 * Exports the network and compares the runtimes. Null when ONNX Runtime is not installed here
 * (nothing is recorded then, so a process that has it checks later). Never throws for a model:
 * a layer with no ONNX form is `unsupported`, anything else that goes wrong is `failed`.
 */
export async function checkOnnx(stored: StoredModel, signature: Signature, generatedBy = "Trainyard"): Promise<OnnxCheck | null> {
  const ort = await loadOrt();
  if (!ort) return null;
  const result = (status: OnnxStatus, reason: string | null, maxRelativeError: number | null = null, model: Uint8Array | null = null): OnnxCheck => ({ status, opset: OPSET, maxRelativeError, reason, model });
  let bytes: Uint8Array;
  try {
    // Without preprocessing: the inference threads get inputs that serving already preprocessed.
    const network: Signature = { ...exportedSignature(signature), inputs: [] };
    bytes = await exportOnnx(stored, network, generatedBy);
  } catch (err) {
    if (err instanceof ConflictError) return result("unsupported", err.message);
    return result("failed", `export failed: ${(err as Error).message}`);
  }
  let model: tf.LayersModel | undefined;
  let session: Awaited<ReturnType<typeof createSession>> | undefined;
  try {
    model = await loadModel(stored);
    session = await createSession(ort, bytes, 1);
    let worst = 0;
    for (const n of BATCHES) {
      const inputs = parityInputs(model, n, n);
      const want = tf.tidy(() => {
        const xs = inputs.map((x, k) => tf.tensor(x.data, x.shape, model!.inputs[k].dtype));
        const y = model!.predict(xs.length === 1 ? xs[0] : xs, { batchSize: n }) as tf.Tensor | tf.Tensor[];
        return (Array.isArray(y) ? y : [y]).map((t) => t.dataSync() as Float32Array);
      });
      const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
      session.inputNames.forEach((name, k) => (feeds[name] = new ort.Tensor("float32", inputs[k].data, inputs[k].shape)));
      const got = await session.run(feeds);
      for (const [k, name] of session.outputNames.entries()) {
        const a = got[name].data as Float32Array;
        const b = want[k];
        if (a.length !== b.length) return result("failed", `output ${name} has ${a.length} values in ONNX Runtime and ${b.length} in TensorFlow.js`);
        const error = relativeError(a, b);
        if (!(error <= TOLERANCE)) return result("failed", `output ${name} differs by ${error.toPrecision(3)} (relative) at batch ${n}, above ${TOLERANCE}`, Number.isFinite(error) ? error : null);
        worst = Math.max(worst, error);
      }
    }
    return result("passed", null, worst, bytes);
  } catch (err) {
    return result("failed", `ONNX Runtime could not run the export: ${(err as Error).message}`);
  } finally {
    await session?.release().catch(() => {});
    model?.dispose();
  }
}

/** max |a − b| / (|b| + FLOOR · max|b|); NaN anywhere makes it infinite. */
export function relativeError(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < b.length; i++) {
    const e = Math.abs(a[i] - b[i]) / (Math.abs(b[i]) + FLOOR * scale + 1e-12);
    if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
  }
  return worst;
}

/** Seeded inputs of each model input's kind: codes for an integer input (below every embedding's vocabulary), floats otherwise. */
function parityInputs(model: tf.LayersModel, n: number, seed: number): { data: Float32Array; shape: number[] }[] {
  const vocab = Math.min(10, ...model.layers.filter((l) => l.getClassName() === "Embedding").map((l) => Number(l.getConfig().inputDim)));
  return model.inputs.map((input, k) => {
    const shape = [n, ...(input.shape.slice(1) as number[])];
    const random = seededRandom(seed * 100 + k);
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const per = data.length / n;
    for (let i = 0; i < data.length; i++) {
      if (input.dtype === "int32") data[i] = random.int(vocab);
      else data[i] = Math.floor(i / per) % 2 === 0 ? random.gaussian() : random.uniform();
    }
    return { data, shape };
  });
}

/** TRAINYARD_SERVING_RUNTIME (lib/config/env.ts). */
export type ServingRuntimeMode = "auto" | "onnx" | "tfjs";

/** How a replica serves: TRAINYARD_SERVING_RUNTIME, and whether ONNX Runtime loaded there. */
export interface ServingFacts {
  mode: ServingRuntimeMode;
  ortInstalled: boolean;
}
export type Runtime = "onnx" | "tfjs";

/**
 * Which runtime serves a version: `auto` takes ONNX Runtime when the version's check passed and
 * the runtime is installed, else TensorFlow.js; `tfjs` always TensorFlow.js; `onnx` ONNX Runtime or
 * nothing (a version that did not pass is refused, with the reason, rather than served otherwise).
 * `status` undefined: not checked yet.
 */
export function chooseRuntime(mode: ServingRuntimeMode, status: OnnxStatus | undefined, ortInstalled: boolean): { runtime: Runtime } | { runtime: null; reason: string } {
  if (mode === "tfjs") return { runtime: "tfjs" };
  if (status === "passed" && ortInstalled) return { runtime: "onnx" };
  if (mode === "auto") return { runtime: "tfjs" };
  if (!ortInstalled) return { runtime: null, reason: "TRAINYARD_SERVING_RUNTIME is onnx but onnxruntime-node is not installed here" };
  return { runtime: null, reason: status === undefined ? "its ONNX export has not been checked yet" : `its ONNX export ${status === "unsupported" ? "is not possible" : "did not pass the parity check"}` };
}
