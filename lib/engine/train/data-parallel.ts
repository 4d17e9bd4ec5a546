// Data-parallel training steps over worker threads: each batch is cut into one share per thread;
// this thread and `threads − 1` helper threads (data-parallel-thread.ts, each with its own wasm
// backend and a replica of the model) compute the gradients of their shares at once, and this
// thread averages them (weighted by share size, so the result is the whole batch's mean-loss
// gradient) and takes the optimizer step. The helpers hold no state of their own: before each step
// they receive the weights as they are, so pruning masks, weight decay, clipping and schedules act
// once, here, and the replicas never drift.
//
// Everything per step goes through SharedArrayBuffers (the weights, each helper's rows, its
// gradients and its loss figures) and Atomics: no message is posted after the start.
//
// What differs from one thread, for the same seed (the same seed and thread count give the same
// run): batch normalization normalizes each share by its own statistics (as PyTorch's
// DataParallel does without SyncBatchNorm) and only this thread's share moves the moving
// averages; dropout draws its masks per share; and the sums are rounded in another order.
import { Worker } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs";
import { currentBackend } from "../backend.ts";
import { saveModel, type StoredModel } from "../model-io.ts";
import type { LossShaping } from "./losses.ts";
import type { RowBatches, RowValues } from "./batches.ts";
import type { OutputObjective, TrainData } from "./train-types.ts";

/** What a helper thread starts with (workerData). */
export interface ThreadInit {
  backend: string;
  model: StoredModel;
  objectives: OutputObjective[];
  shaping: LossShaping[];
  inputs: { shape: number[]; dtype: "float32" | "int32"; width: number }[];
  targets: { name: string; task: TrainData["targets"][number]["task"]; classes: string[]; shape: number[]; width: number; loss: OutputObjective["loss"]; outputShape: number[] }[];
  /** The trainable variables' sizes, in model.trainableWeights order. */
  sizes: number[];
  buffers: HelperBuffers;
}

/** One helper's shared memory. */
export interface HelperBuffers {
  /** [0] step number (this thread raises it; −1: stop), [1] step done (the helper), [2] rows, [3] seed, [4] failed. */
  control: SharedArrayBuffer;
  /** The weights before the step, all variables end to end (shared by every helper). */
  weights: SharedArrayBuffer;
  /** Per input, then per target: rows of values. */
  rows: SharedArrayBuffer[];
  /** The gradients of the helper's share, all variables end to end. */
  grads: SharedArrayBuffer;
  /** [0] loss, then per output its loss term, then per output its correct count. */
  figures: SharedArrayBuffer;
  /** A failure's message (UTF-8, zero-padded). */
  error: SharedArrayBuffer;
}

const THREAD_ENTRY = new URL("./data-parallel-thread.ts", import.meta.url).href;
// Run from source (tsx), a worker needs tsx's loader registered inside it: on Node 20 the hooks of
// an --import in its execArgv do not reach its entry module.
const THREAD_BOOTSTRAP = THREAD_ENTRY.endsWith(".ts")
  ? `import("tsx/esm/api").then(({ register }) => { register(); return import(${JSON.stringify(THREAD_ENTRY)}); })`
  : `import(${JSON.stringify(THREAD_ENTRY)})`;
export const CONTROL = { step: 0, done: 1, rows: 2, seed: 3, failed: 4 } as const;
const ERROR_BYTES = 2048;

/** A helper's part of a step. */
export interface ShareResult {
  rows: number;
  loss: number;
  terms: number[];
  correct: number[];
  /** Per variable, a view of the helper's shared gradient (valid until the next step). */
  grads: Float32Array[];
}

interface Helper {
  worker: Worker;
  control: Int32Array;
  rows: Float32Array[];
  grads: Float32Array;
  figures: Float64Array;
  error: Uint8Array;
}

export class DataParallel {
  private step = 0;
  private dead?: Error;

  private constructor(
    private readonly helpers: Helper[],
    private readonly weights: Float32Array,
    private readonly sizes: number[],
    private readonly outputs: number,
  ) {}

  /** Threads in all, this one included. */
  get threads(): number {
    return this.helpers.length + 1;
  }

  /**
   * Starts `threads − 1` helpers on a replica of `model` (topology and weights as they are now),
   * each ready when this resolves. `batchSize` bounds the rows a share can hold.
   */
  static async start(model: tf.LayersModel, threads: number, batchSize: number, setup: { rows: RowBatches; objectives: OutputObjective[]; shaping: LossShaping[] }): Promise<DataParallel> {
    const backend = currentBackend()?.name ?? tf.getBackend();
    const stored = await saveModel(model, false);
    const sizes = model.trainableWeights.map((w) => w.read().size);
    const total = sizes.reduce((a, b) => a + b, 0);
    const weights = new SharedArrayBuffer(total * 4);
    const maxRows = Math.ceil(batchSize / threads);
    const { data, losses, outputShapes } = setup.rows;
    const inputs = data.inputs.map((t) => ({ shape: t.shape, dtype: t.dtype ?? "float32", width: setup.rows.width(t) }));
    const targets = data.targets.map((t, k) => ({ name: t.name, task: t.task, classes: t.classes, shape: t.shape, width: setup.rows.width(t), loss: losses[k], outputShape: outputShapes[k] }));
    const outputs = setup.objectives.length;
    // Threads run this project's TypeScript as the process does (tsx's loader), without the
    // sandboxed child's orphan guard (it belongs to the process, not to a thread).
    const execArgv = process.execArgv.filter((a, i, all) => !a.includes("orphan-guard") && !(a === "--import" && all[i + 1]?.includes("orphan-guard")));
    const helpers: Helper[] = [];
    try {
      for (let h = 1; h < threads; h++) {
        const buffers: HelperBuffers = {
          control: new SharedArrayBuffer(5 * 4),
          weights,
          rows: [...inputs, ...targets].map((t) => new SharedArrayBuffer(maxRows * t.width * 4)),
          grads: new SharedArrayBuffer(total * 4),
          figures: new SharedArrayBuffer((1 + 2 * outputs) * 8),
          error: new SharedArrayBuffer(ERROR_BYTES),
        };
        const init: ThreadInit = { backend, model: stored, objectives: setup.objectives, shaping: setup.shaping, inputs, targets, sizes, buffers };
        const worker = new Worker(THREAD_BOOTSTRAP, { eval: true, workerData: init, execArgv });
        helpers.push({
          worker,
          control: new Int32Array(buffers.control),
          rows: buffers.rows.map((b) => new Float32Array(b)),
          grads: new Float32Array(buffers.grads),
          figures: new Float64Array(buffers.figures),
          error: new Uint8Array(buffers.error),
        });
        await new Promise<void>((resolve, reject) => {
          worker.once("message", () => resolve());
          worker.once("error", reject);
          worker.once("exit", (code) => reject(new Error(`a training thread exited (code ${code}) while starting`)));
        });
        worker.removeAllListeners();
      }
    } catch (err) {
      await Promise.all(helpers.map((h) => h.worker.terminate()));
      throw err;
    }
    const parallel = new DataParallel(helpers, new Float32Array(weights), sizes, outputs);
    for (const h of helpers) {
      h.worker.on("error", (err) => (parallel.dead ??= err));
      h.worker.on("exit", (code) => (parallel.dead ??= new Error(`a training thread exited (code ${code})`)));
    }
    return parallel;
  }

  /** How many of `n` rows each thread takes, this thread's first (the larger shares first). */
  shares(n: number): number[] {
    const t = Math.min(this.threads, n);
    return Array.from({ length: this.threads }, (_, i) => (i < t ? Math.floor(n / t) + (i < n % t ? 1 : 0) : 0));
  }

  /**
   * Hands the helpers their shares of a batch (`values`: the whole batch's rows, in order) with the
   * weights of `vars` as they are now, and returns at once: the helpers compute while this thread
   * does its own share. `seed`: each helper seeds its dropout from it and its index.
   */
  post(values: RowValues, shares: number[], seed: number, vars: tf.Variable[]): void {
    if (this.dead) throw this.dead;
    let at = 0;
    for (let i = 0; i < vars.length; i++) {
      this.weights.set(vars[i].dataSync() as Float32Array, at);
      at += this.sizes[i];
    }
    this.step++;
    const rows = shares.reduce((a, b) => a + b, 0);
    let row = shares[0];
    this.helpers.forEach((h, j) => {
      const n = shares[j + 1];
      [...values.xs, ...values.ys].forEach((v, k) => {
        const width = v.length / rows;
        h.rows[k].set(v.subarray(row * width, (row + n) * width));
      });
      row += n;
      Atomics.store(h.control, CONTROL.rows, n);
      Atomics.store(h.control, CONTROL.seed, (seed + 0x9e3779b9 * (j + 1)) | 0);
      Atomics.store(h.control, CONTROL.step, this.step);
      Atomics.notify(h.control, CONTROL.step);
    });
  }

  /** The helpers' results for the step last posted, once all are done (without blocking this thread's event loop). */
  async results(): Promise<ShareResult[]> {
    const out: ShareResult[] = [];
    for (const h of this.helpers) {
      while (Atomics.load(h.control, CONTROL.done) !== this.step) {
        if (this.dead) throw this.dead;
        // Woken by the helper's notify; the timeout only lets a dead thread be noticed.
        const wait = (Atomics as unknown as AtomicsWaitAsync).waitAsync(h.control, CONTROL.done, Atomics.load(h.control, CONTROL.done), 1000);
        if (wait.async) await wait.value;
      }
      if (Atomics.load(h.control, CONTROL.failed)) {
        const bytes = h.error.slice();
        throw new Error(`a training thread failed: ${new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0) < 0 ? bytes.length : bytes.indexOf(0)))}`);
      }
      const grads: Float32Array[] = [];
      let at = 0;
      for (const size of this.sizes) {
        grads.push(h.grads.subarray(at, at + size));
        at += size;
      }
      const figures = Array.from(h.figures);
      out.push({ rows: Atomics.load(h.control, CONTROL.rows), loss: figures[0], terms: figures.slice(1, 1 + this.outputs), correct: figures.slice(1 + this.outputs), grads });
    }
    return out;
  }

  /** Stops the helpers. */
  async close(): Promise<void> {
    for (const h of this.helpers) {
      h.worker.removeAllListeners();
      Atomics.store(h.control, CONTROL.step, -1);
      Atomics.notify(h.control, CONTROL.step);
    }
    await Promise.all(this.helpers.map((h) => h.worker.terminate()));
  }
}

// Node has had Atomics.waitAsync since 16; TypeScript's lib declares it from es2024 on.
interface AtomicsWaitAsync {
  waitAsync(array: Int32Array, index: number, value: number, timeoutMs: number): { async: false; value: string } | { async: true; value: Promise<string> };
}

/** Writes a failure's message where DataParallel.results reads it. */
export function writeError(buffer: SharedArrayBuffer, message: string): void {
  const bytes = new TextEncoder().encode(message).subarray(0, ERROR_BYTES - 1);
  const view = new Uint8Array(buffer);
  view.fill(0);
  view.set(bytes);
}
