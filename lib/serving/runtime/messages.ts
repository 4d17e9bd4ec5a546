// What the API's main thread and its inference threads say to each other. Tensors travel as
// Float32Arrays whose buffers are transferred, never copied; weights never travel at all (a
// thread reads them from Postgres itself).
import type { FieldProblem } from "../../errors.ts";
import type { BackendRequest } from "../../engine/backend.ts";
import type { ModelSpec } from "../../model-spec/model-spec-schema.ts";
import type { Probe, ProbeResult } from "../../engine/probes/probe.ts";
import type { Runtime, ServingRuntimeMode } from "../../registry/export/onnx/onnx-check.ts";
import type { CacheCounters } from "./model-cache.ts";

export interface TensorData {
  data: Float32Array;
  shape: number[];
}

/** One request's outputs, and which runtime computed them. */
export interface Ran {
  outputs: TensorData[];
  runtime: Runtime;
}

export interface ThreadOptions {
  databaseUrl: string;
  backend: BackendRequest;
  cacheBytes: number;
  cacheEntries: number;
  /** TRAINYARD_SERVING_RUNTIME. */
  servingRuntime: ServingRuntimeMode;
  /** ONNX Runtime's intra-op threads per session. */
  onnxThreads: number;
}

export type ToThread =
  /** One forward pass over several requests' rows: `requests[r][k]` is request r's input k. */
  | { type: "run"; id: number; versionId: string; requests: TensorData[][] }
  /** A probe (lib/engine/probes) on the version's raw-input graph: TensorFlow.js, whatever serves the version. */
  | { type: "probe"; id: number; versionId: string; probe: Probe }
  | { type: "inspect"; id: number; spec: ModelSpec; limits: { maxParams: number; maxLayers: number; maxFlopsPerSample: number } }
  | { type: "stats"; id: number }
  | { type: "close"; id: number };

export interface ThreadStats {
  cache: CacheCounters;
  /** tf.memory() of the thread: what the cache holds plus anything in flight. */
  numTensors: number;
  numBytes: number;
}

export type SerializedError = { kind: "validation"; problems: FieldProblem[] } | { kind: "conflict"; message: string } | { kind: "error"; name: string; message: string };

export type FromThread =
  | { type: "ready"; backend: string }
  /** Per request of the batch: its outputs, or why it failed. */
  | { type: "ran"; id: number; runtime: Runtime; results: ({ ok: true; outputs: TensorData[] } | { ok: false; error: SerializedError })[]; stats: ThreadStats; evicted: string[] }
  | { type: "inspected"; id: number; report: unknown; stats: ThreadStats }
  | { type: "probed"; id: number; result: ProbeResult; stats: ThreadStats; evicted: string[] }
  | { type: "failed"; id: number; error: SerializedError; stats: ThreadStats; evicted: string[] }
  | { type: "stats"; id: number; stats: ThreadStats }
  | { type: "closed"; id: number };
