// ONNX Runtime, the second inference engine beside TensorFlow.js. `onnxruntime-node` is an
// optional dependency (its install script downloads GPU binaries, which some networks forbid),
// so it is imported on demand: a process without it serves everything with TensorFlow.js.
import type * as Ort from "onnxruntime-node";

export type OrtModule = typeof Ort;

let loading: Promise<OrtModule | null> | undefined;
let loaded: OrtModule | null = null;
let loadError: string | undefined;

/** The onnxruntime-node module, or null (once, with the reason kept for ortUnavailableReason) when it is not installed or its binary does not load. */
export function loadOrt(): Promise<OrtModule | null> {
  loading ??= import("onnxruntime-node").then(
    // A CommonJS package: its exports arrive as the namespace, or under default, by loader.
    (m) => (loaded = (m as unknown as { default?: OrtModule }).default?.InferenceSession ? (m as unknown as { default: OrtModule }).default : (m as unknown as OrtModule)),
    (err: Error) => {
      loadError = err.message;
      return null;
    },
  );
  return loading;
}

/** The loaded ONNX Runtime's version; null before loadOrt() has answered, or when it is not installed. */
export function ortVersion(): string | null {
  return loaded?.env.versions.common ?? null;
}

export function ortUnavailableReason(): string | undefined {
  return loadError;
}

/**
 * A session for an ONNX model. `threads`: ONNX Runtime's intra-op threads for this session. The
 * graph runs sequentially (one operator at a time, each over `threads`): the models served here
 * are chains, and inter-op parallelism would only add threads competing for the same cores.
 */
export async function createSession(ort: OrtModule, model: Uint8Array, threads: number): Promise<Ort.InferenceSession> {
  return ort.InferenceSession.create(model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  });
}
