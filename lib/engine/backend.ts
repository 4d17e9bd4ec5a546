// Chooses the TensorFlow.js compute backend once per process (API and training worker alike).
// Everything else imports `@tensorflow/tfjs`; the native packages, when present, register their
// "tensorflow" backend on that same engine, so nothing else needs to know which one won.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, sep } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { registerMissingWasmKernels } from "./wasm-kernels.ts";

export type BackendName = "tensorflow-gpu" | "tensorflow" | "wasm" | "cpu";
export type BackendRequest = "auto" | BackendName;

export interface BackendAttempt {
  name: string;
  ok: boolean;
  error?: string;
}

export interface BackendInfo {
  name: BackendName;
  tfjsVersion: string;
  /** Only for wasm: whether the SIMD build loaded (the non-SIMD fallback is much slower). */
  simd?: boolean;
  /** Every backend tried, in order, with why each one that failed did. */
  attempts: BackendAttempt[];
}

const AUTO_ORDER: readonly BackendName[] = ["tensorflow-gpu", "tensorflow", "wasm", "cpu"];

let current: BackendInfo | undefined;
let currentRequest: BackendRequest | undefined;
let pending: Promise<BackendInfo> | undefined;

export function currentBackend(): BackendInfo | undefined {
  return current;
}

/**
 * Selects and initialises the compute backend. `auto` takes the first of tensorflow-gpu,
 * tensorflow, wasm, cpu that loads; a named backend that cannot load throws instead of falling
 * back, so a deployment that asked for the GPU never trains on the CPU unnoticed.
 * Once a backend is chosen, `auto` or that same name returns the same info; asking for another
 * throws, because tensors and variables already made live on the first one.
 */
export async function initBackend(
  requested: BackendRequest,
  log: (msg: string) => void = () => {},
): Promise<BackendInfo> {
  if (current !== undefined) return reuse(requested);
  if (pending !== undefined) {
    // A concurrent caller is already initialising: wait for it rather than race tf.setBackend.
    await pending.catch(() => undefined);
    return initBackend(requested, log);
  }
  pending = select(requested, log);
  try {
    current = await pending;
    currentRequest = requested;
    return current;
  } finally {
    pending = undefined;
  }
}

function reuse(requested: BackendRequest): BackendInfo {
  const info = current as BackendInfo;
  if (requested === "auto" || requested === info.name) return info;
  throw new Error(
    `compute backend already initialised as "${info.name}" (requested "${currentRequest}"); ` +
      `cannot switch to "${requested}" in the same process`,
  );
}

async function select(requested: BackendRequest, log: (msg: string) => void): Promise<BackendInfo> {
  if (requested !== "auto" && !AUTO_ORDER.includes(requested)) {
    throw new Error(`unknown compute backend "${String(requested)}"; expected auto, ${AUTO_ORDER.join(", ")}`);
  }
  const candidates = requested === "auto" ? AUTO_ORDER : [requested];
  const attempts: BackendAttempt[] = [];
  for (const name of candidates) {
    try {
      const loaded = await load(name, requested !== "auto", log);
      attempts.push(...loaded.extraAttempts, { name: loaded.name, ok: true });
      const info: BackendInfo = { name: loaded.name, tfjsVersion: tf.version.tfjs, attempts };
      if (loaded.simd !== undefined) info.simd = loaded.simd;
      log(`compute backend: ${describe(info)}`);
      return info;
    } catch (err) {
      const error = errorMessage(err);
      attempts.push({ name, ok: false, error });
      if (requested !== "auto") {
        throw new Error(`compute backend "${name}" was requested but cannot be used: ${error}`, { cause: err });
      }
      log(`compute backend ${name} unavailable: ${error}`);
    }
  }
  // cpu ships inside @tensorflow/tfjs, so this means the tfjs install itself is broken.
  throw new Error(
    `no compute backend could be initialised: ${attempts.map((a) => `${a.name}: ${a.error}`).join("; ")}`,
  );
}

interface Loaded {
  name: BackendName;
  simd?: boolean;
  /** Attempts decided inside one load, e.g. the GPU package that turned out to have no GPU. */
  extraAttempts: BackendAttempt[];
}

async function load(name: BackendName, forced: boolean, log: (msg: string) => void): Promise<Loaded> {
  switch (name) {
    case "tensorflow-gpu":
      return loadNative("@tensorflow/tfjs-node-gpu", { wantGpu: true, forced });
    case "tensorflow":
      return loadNative("@tensorflow/tfjs-node", { wantGpu: false, forced });
    case "wasm":
      return loadWasm(log);
    case "cpu":
      await setBackendOrThrow("cpu");
      return { name: "cpu", extraAttempts: [] };
  }
}

async function loadNative(pkg: string, { wantGpu, forced }: { wantGpu: boolean; forced: boolean }): Promise<Loaded> {
  // A non-literal specifier: the packages are optional and usually absent, so neither tsc nor a
  // bundler should try to resolve them. Any error counts as "unavailable": a missing package
  // rejects with ERR_MODULE_NOT_FOUND, one installed with --ignore-scripts throws a plain Error
  // about tfjs_binding.node, a GPU build without CUDA throws from the dynamic linker.
  const specifier: string = pkg;
  await import(specifier);
  await setBackendOrThrow("tensorflow", `${pkg} loaded but `);
  if (!wantGpu) return { name: "tensorflow", extraAttempts: [] };
  // The GPU build runs on the CPU when TensorFlow finds no usable device: that is the
  // "tensorflow" backend in all but name, so say so rather than report a GPU.
  const usingGpu = (tf.backend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice;
  if (usingGpu !== false) return { name: "tensorflow-gpu", extraAttempts: [] };
  const why = `${pkg} loaded but TensorFlow sees no GPU device (needs CUDA 11.2 and cuDNN 8.1)`;
  // Forced: refuse. The "tensorflow" backend stays active, but a process that asked for a GPU
  // and got this error is expected to exit, not to carry on.
  if (forced) throw new Error(why);
  return {
    name: "tensorflow",
    extraAttempts: [{ name: "tensorflow-gpu", ok: false, error: `${why}; using its CPU kernels` }],
  };
}

let wasmPathsSet = false;

async function loadWasm(log: (msg: string) => void): Promise<Loaded> {
  // The Emscripten module installs process handlers that rethrow every uncaught exception and
  // unhandled rejection from inside its one-line, 100 kB script (so a crash prints the script).
  // The process's own error handling is ours to decide: take them off again.
  const before = {
    uncaughtException: new Set(process.listeners("uncaughtException")),
    unhandledRejection: new Set(process.listeners("unhandledRejection")),
  };
  try {
    return await initWasm(log);
  } finally {
    for (const l of process.listeners("uncaughtException")) if (!before.uncaughtException.has(l)) process.removeListener("uncaughtException", l);
    for (const l of process.listeners("unhandledRejection")) if (!before.unhandledRejection.has(l)) process.removeListener("unhandledRejection", l);
  }
}

async function initWasm(log: (msg: string) => void): Promise<Loaded> {
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  const dir = wasmBinaryDir();
  if (!wasmPathsSet) {
    // Emscripten looks for the .wasm files beside the script it thinks it runs from, which is
    // wrong once the worker is bundled or started from elsewhere: point it at the package.
    wasm.setWasmPaths(dir + sep);
    wasmPathsSet = true;
  }
  // setBackend resolves false (it does not throw) when the wasm module fails to initialise.
  await setBackendOrThrow("wasm", "", ` (binaries looked up in ${dir})`);
  const patched = registerMissingWasmKernels();
  log(`wasm: added ${patched.length} kernels it lacks (${patched.join(", ")})`);
  const simd = (await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT")) as boolean;
  return { name: "wasm", simd, extraAttempts: [] };
}

function wasmBinaryDir(): string {
  const require = createRequire(import.meta.url);
  const dir = dirname(require.resolve("@tensorflow/tfjs-backend-wasm"));
  if (!existsSync(join(dir, "tfjs-backend-wasm.wasm"))) {
    throw new Error(`tfjs-backend-wasm.wasm not found in ${dir}`);
  }
  return dir;
}

async function setBackendOrThrow(name: string, prefix = "", suffix = ""): Promise<void> {
  const ok = await tf.setBackend(name);
  if (!ok || tf.getBackend() !== name) {
    throw new Error(`${prefix}tf.setBackend("${name}") failed${suffix}`);
  }
}

function errorMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | null)?.code;
  // Native load errors can carry a whole dlopen search path: keep the log line readable.
  const oneLine = message.replace(/\s+/g, " ").trim().slice(0, 500);
  return typeof code === "string" && !oneLine.includes(code) ? `${code}: ${oneLine}` : oneLine;
}

function describe(info: BackendInfo): string {
  const failed = info.attempts.filter((a) => !a.ok).map((a) => a.name);
  const simd = info.simd === undefined ? "" : info.simd ? " (SIMD)" : " (no SIMD)";
  return `${info.name}${simd}, tfjs ${info.tfjsVersion}` + (failed.length ? `; unavailable: ${failed.join(", ")}` : "");
}
