// Runs one insight job, worker side: claims it, loads the version's graph over raw inputs and the
// dataset's rows, computes in chunks (an attack, a layer's activations, then t-SNE), writing its
// progress and watching for a cancel between chunks, and stores the result. One computation with
// no state between attempts: an attempt that dies is run again from the start, and the job fails
// once too many attempts have died.
import * as tf from "@tensorflow/tfjs";
import { setImmediate as turn } from "node:timers/promises";
import { DatasetRepository } from "../data/dataset-repository.ts";
import { unpack, type DatasetTensors, type UnpackedDataset } from "../data/packing.ts";
import type { Db } from "../db/prisma.ts";
import { runProbe, type ProbeResult } from "../engine/probes/probe.ts";
import { tsneAsync, TSNE_LIMITS } from "../engine/probes/tsne.ts";
import { deriveSeed, mulberry32, permutation } from "../engine/seeded-random.ts";
import { DomainError, NotFoundError } from "../errors.ts";
import { stockGraph } from "../registry/export/export-model.ts";
import { ModelVersionRepository } from "../registry/model-version-repository.ts";
import type { Signature } from "../registry/signature.ts";
import { nest } from "../serving/protocols/tensors.ts";
import { splitOf } from "../training/data-preparation.ts";
import { matchInputs, matchOutputs } from "../training/dataset-matching.ts";
import type { Hyperparameters } from "../training/training-job-schema.ts";
import { claimInsightJob, markInsightCancelled, markSucceeded, writeProgress, cancelRequested } from "./insight-job-repository.ts";
import type { AdversarialJobResult, SplitChoice, TopActivationsRequest, TopActivationsResult, TsneRequest, TsneResult } from "./insight-job-schema.ts";
import type { AdversarialRequest } from "./insight-schema.ts";
import { attackRates, classIndex, defaultRange, outputOf, tallyAttack, type AttackTally } from "./insight-service.ts";

/** A failure that another attempt cannot fix (the request does not fit the model or data): fail the job now. */
export class PermanentInsightError extends Error {}

export interface InsightRunContext {
  db: Db;
  log?: (msg: string) => void;
  /** The job fails when its attempt would be this one's successor (default 3): each earlier one died or failed. */
  maxAttempts?: number;
  /** Aborted when the worker shuts down: the attempt stops at its next chunk and the job goes back to the queue. */
  signal?: AbortSignal;
  /** Called after each progress write (tests act on it). */
  onProgress?: (progress: number) => void;
}

export type InsightOutcome = "succeeded" | "cancelled" | "skipped" | "superseded" | "handedBack";

/** Rows per forward pass (activations) and per attacked batch. */
const FORWARD_ROWS = 256;
const ATTACK_ROWS = 64;
/** How often progress is written and a cancel looked for. */
const CHECK_EVERY_MS = 500;

class Stop extends Error {
  constructor(readonly outcome: InsightOutcome) {
    super(outcome);
  }
}

export async function runInsightJob(ctx: InsightRunContext, jobId: string, tenantId: string): Promise<InsightOutcome> {
  const { db } = ctx;
  const job = await db.insightJob.findFirst({ where: { id: jobId, tenantId } });
  // Deleted with its version: nothing to do.
  if (!job) return "skipped";
  const claim = await claimInsightJob(db, jobId);
  if (!claim) {
    if (job.cancelRequested) await markInsightCancelled(db, jobId);
    return "skipped";
  }
  const { attempt } = claim;
  const limit = ctx.maxAttempts ?? 3;
  if (attempt > limit) throw new PermanentInsightError(`the job was attempted ${attempt - 1} times and each attempt died or failed before finishing (a worker killed, out of memory?)`);
  if (attempt > 1) ctx.log?.(`insight job ${jobId}: attempt ${attempt} starts again (the last one stopped before finishing)`);

  let lastCheck = Date.now();
  // Between chunks: the worker's shutdown, a cancel, and progress, written now and then.
  const checkpoint = async (progress: number) => {
    if (ctx.signal?.aborted) throw new Stop("handedBack");
    if (Date.now() - lastCheck < CHECK_EVERY_MS) return turn();
    lastCheck = Date.now();
    if (await cancelRequested(db, jobId)) throw new Stop("cancelled");
    if (!(await writeProgress(db, jobId, attempt, progress))) throw new Stop("superseded");
    ctx.onProgress?.(progress);
  };

  let graph: { model: tf.LayersModel; original: tf.LayersModel } | undefined;
  try {
    const stored = await new ModelVersionRepository(db).load(job.versionId);
    const made = await db.modelVersion.findUnique({ where: { id: job.versionId }, select: { job: { select: { datasetId: true, hyperparameters: true } } } });
    let dataset: DatasetTensors;
    try {
      dataset = await new DatasetRepository(db).loadTensors(tenantId, job.datasetId);
    } catch (err) {
      if (err instanceof NotFoundError) throw new PermanentInsightError(`dataset '${job.datasetId}' is gone (deleted)`);
      throw err;
    }
    const rows = rowsOf(stored.signature, dataset, job.request as { split: SplitChoice; rows?: number; seed: number }, made?.job?.datasetId === job.datasetId ? (made.job.hyperparameters as Hyperparameters) : undefined);
    graph = await stockGraph(stored.model, stored.signature, "tfjs", () => true);
    const model = graph.model;
    const r = job.request as Record<string, unknown>;
    let result: object;
    if (job.kind === "adversarial") result = await attack(model, stored.signature, rows, r as unknown as AdversarialRequest, checkpoint);
    else if (job.kind === "top-activations") result = await topActivations(model, stored.signature, rows, r as unknown as TopActivationsRequest, checkpoint);
    else if (job.kind === "tsne") result = await tsneOf(model, stored.signature, rows, r as unknown as TsneRequest, checkpoint);
    else throw new PermanentInsightError(`unknown kind of insight job '${job.kind}'`);
    if (!(await markSucceeded(db, jobId, attempt, result))) return (await cancelRequested(db, jobId)) ? cancelled(db, jobId) : "superseded";
    return "succeeded";
  } catch (err) {
    if (err instanceof Stop) return err.outcome === "cancelled" ? cancelled(db, jobId) : err.outcome;
    // A request that does not fit (a layer's units, a dataset's classes) fails the job now; anything else is retried.
    if (err instanceof DomainError && err.status < 500) throw new PermanentInsightError(err.message);
    if (err instanceof RangeError) throw new PermanentInsightError(err.message);
    throw err;
  } finally {
    for (const m of [graph?.model, graph?.original]) {
      try {
        m?.dispose();
      } catch {
        // shares its layers with the other; freed already
      }
    }
  }
}

async function cancelled(db: Db, jobId: string): Promise<InsightOutcome> {
  await markInsightCancelled(db, jobId);
  return "cancelled";
}

type Checkpoint = (progress: number) => Promise<unknown>;

/** The chosen rows, raw, and their labels for each of the version's outputs the dataset has. */
interface Rows {
  split: SplitChoice;
  index: Int32Array;
  /** The version's input, one block of `index.length` rows. */
  data: Float32Array;
  shape: number[];
  /** Per version output (by name): the dataset's class names and each chosen row's class id, when it has them. */
  labels: Map<string, { classes: string[]; ids: Int32Array }>;
}

function rowsOf(signature: Signature, dataset: DatasetTensors, req: { split: SplitChoice; rows?: number; seed: number }, trainedOn: Hyperparameters | undefined): Rows {
  const input = signature.inputs[0];
  const [inputName] = matchInputs([{ name: input.name, shape: input.shape }], dataset.inputs);
  let outputNames: string[] = [];
  try {
    // The same labels, in the same order, as the training job unpacked: its split is reproduced exactly.
    outputNames = matchOutputs(signature.outputs.map((o) => o.name), dataset.outputs).map((o) => o.name);
  } catch {
    outputNames = signature.outputs.length === 1 && dataset.outputs.length === 1 ? [dataset.outputs[0].name] : [];
  }
  const raw: UnpackedDataset = unpack(dataset, [inputName], outputNames);
  let pool: Int32Array;
  if (req.split === "all") pool = Int32Array.from({ length: raw.rows }, (_, i) => i);
  else {
    if (!trainedOn) throw new PermanentInsightError(`split '${req.split}' needs the dataset the version was trained on`);
    const split = splitOf(dataset, raw, { validationSplit: trainedOn.validationSplit, testSplit: trainedOn.testSplit, stratify: trainedOn.stratify, seed: trainedOn.seed });
    pool = split[req.split];
  }
  if (!pool.length) throw new PermanentInsightError(`the ${req.split} split has no rows`);
  let index = pool;
  if (req.rows !== undefined && req.rows < pool.length) {
    const order = permutation(pool.length, mulberry32(deriveSeed(req.seed, 0x1a51)));
    index = Int32Array.from(order.subarray(0, req.rows), (i) => pool[i]).sort();
  } else index = Int32Array.from(pool).sort();
  const width = raw.inputs[0].shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(index.length * width);
  index.forEach((r, i) => data.set(raw.inputs[0].data.subarray(r * width, (r + 1) * width), i * width));
  const labels = new Map<string, { classes: string[]; ids: Int32Array }>();
  raw.targets.forEach((t, k) => {
    if (t.task !== "classification" || t.shape.reduce((a, b) => a * b, 1) !== 1) return;
    labels.set(signature.outputs[k]?.name ?? t.name, { classes: t.classes, ids: Int32Array.from(index, (r) => t.data[r]) });
  });
  return { split: req.split, index, data, shape: raw.inputs[0].shape, labels };
}

function chunk(rows: Rows, from: number, to: number): { data: Float32Array; shape: number[] } {
  const width = rows.data.length / rows.index.length;
  return { data: rows.data.slice(from * width, to * width), shape: [to - from, ...rows.shape] };
}

async function attack(model: tf.LayersModel, signature: Signature, rows: Rows, req: AdversarialRequest, checkpoint: Checkpoint): Promise<AdversarialJobResult> {
  const out = outputOf(signature, req.output);
  const given = rows.labels.get(out.name);
  if (!given) throw new PermanentInsightError(`the dataset has no labels for output '${out.name}'`);
  // The dataset's class ids, as the version's.
  const toVersion = given.classes.map((c) => out.classes.indexOf(c));
  const missing = given.classes.filter((_, i) => toVersion[i] < 0);
  if (missing.length) throw new PermanentInsightError(`the dataset has classes the version does not know: ${missing.slice(0, 10).join(", ")}`);
  const labels = Int32Array.from(given.ids, (id) => toVersion[id]);
  const target = req.targetClass === undefined ? undefined : classIndex(out.classes, req.targetClass, "targetClass");
  const epsilons = [req.epsilon].flat();
  const range = req.range ?? defaultRange(signature.inputs[0]);
  const n = rows.index.length;
  let tally: AttackTally | undefined;
  for (let from = 0; from < n; from += ATTACK_ROWS) {
    const to = Math.min(n, from + ATTACK_ROWS);
    const r = runProbe(model, { kind: "attack", input: chunk(rows, from, to), labels: labels.subarray(from, to), output: out.index, method: req.method, epsilons, steps: req.steps, stepSize: req.stepSize, targetClass: target, range }) as Extract<ProbeResult, { kind: "attack" }>;
    tally = tallyAttack(r, labels.subarray(from, to), out.classes.length, target, tally);
    await checkpoint(to / n);
  }
  return {
    rows: n, split: rows.split, output: out.name, method: req.method, targetClass: target === undefined ? null : out.classes[target], range: range ?? null,
    accuracy: tally!.correctBefore / tally!.rows,
    results: epsilons.map((epsilon, e) => ({ epsilon, ...attackRates(tally!, e) })),
  };
}

/** The layer's output for every chosen row, in chunks, as rows × values; `share` of the job's progress. */
async function layerOutputs(model: tf.LayersModel, rows: Rows, layer: string, checkpoint: Checkpoint, share: number): Promise<{ data: Float32Array; shape: number[] }> {
  const n = rows.index.length;
  let data: Float32Array | undefined;
  let shape: number[] = [];
  for (let from = 0; from < n; from += FORWARD_ROWS) {
    const to = Math.min(n, from + FORWARD_ROWS);
    const r = runProbe(model, { kind: "activations", input: chunk(rows, from, to), layer }) as Extract<ProbeResult, { kind: "activations" }>;
    shape = r.shape.slice(1);
    const width = shape.reduce((a, b) => a * b, 1);
    data ??= new Float32Array(n * width);
    data.set(r.data, from * width);
    await checkpoint((share * to) / n);
  }
  for (let i = 0; i < data!.length; i++) {
    if (!Number.isFinite(data![i])) throw new PermanentInsightError(`layer '${layer}' outputs a value that is not finite for row ${rows.index[Math.floor(i / (data!.length / n))]}`);
  }
  return { data: data!, shape };
}

async function topActivations(model: tf.LayersModel, signature: Signature, rows: Rows, req: TopActivationsRequest, checkpoint: Checkpoint): Promise<TopActivationsResult> {
  const n = rows.index.length;
  let units = 0;
  // The best k so far, kept sorted (k ≤ 64).
  let best: { i: number; activation: number }[] = [];
  for (let from = 0; from < n; from += FORWARD_ROWS) {
    const to = Math.min(n, from + FORWARD_ROWS);
    const r = runProbe(model, { kind: "activations", input: chunk(rows, from, to), layer: req.layer }) as Extract<ProbeResult, { kind: "activations" }>;
    units = r.shape[r.shape.length - 1];
    if (req.unit >= units) throw new PermanentInsightError(`unit ${req.unit}: layer '${req.layer}' has ${units} units (channels) along its last axis, 0–${units - 1}`);
    const positions = r.data.length / (to - from) / units;
    for (let b = 0; b < to - from; b++) {
      let sum = 0;
      for (let p = 0; p < positions; p++) sum += r.data[(b * positions + p) * units + req.unit];
      const activation = sum / positions;
      if (!Number.isFinite(activation)) continue;
      if (best.length < req.k || activation > best[best.length - 1].activation) {
        best.push({ i: from + b, activation });
        best.sort((a, c) => c.activation - a.activation);
        best = best.slice(0, req.k);
      }
    }
    await checkpoint(to / n);
  }
  const labels = [...rows.labels.values()][0];
  const width = rows.data.length / n;
  return {
    layer: req.layer, unit: req.unit, units, split: rows.split, rowsSearched: n,
    top: best.map(({ i, activation }) => ({
      row: rows.index[i], activation,
      label: labels ? labels.classes[labels.ids[i]] ?? null : null,
      instance: nest(rows.data.subarray(i * width, (i + 1) * width), rows.shape),
    })),
  };
}

async function tsneOf(model: tf.LayersModel, signature: Signature, rows: Rows, req: TsneRequest, checkpoint: Checkpoint): Promise<TsneResult> {
  const n = rows.index.length;
  if (req.perplexity >= n / 3) throw new PermanentInsightError(`perplexity ${req.perplexity} must be below a third of the ${n} rows`);
  // Activations are the cheap part; the embedding's iterations are the rest of the progress.
  const { data, shape } = await layerOutputs(model, rows, req.layer, checkpoint, 0.1);
  const dims = shape.reduce((a, b) => a * b, 1);
  if (dims > TSNE_LIMITS.maxDims) throw new PermanentInsightError(`layer '${req.layer}' has ${dims} values per row; t-SNE takes at most ${TSNE_LIMITS.maxDims}: choose a later (narrower) layer`);
  let kl = Number.NaN;
  const y = await tsneAsync(data, n, dims, {
    perplexity: req.perplexity, iterations: req.iterations, seed: req.seed, learningRate: req.learningRate,
    onProgress: async (iteration, klDivergence) => {
      kl = klDivergence;
      await checkpoint(0.1 + (0.9 * iteration) / req.iterations);
    },
  });
  const colourBy = req.output ?? signature.outputs.find((o) => o.task === "classification")?.name;
  const labels = colourBy === undefined ? undefined : (rows.labels.get(colourBy) ?? (req.output ? undefined : [...rows.labels.values()][0]));
  return {
    layer: req.layer, dims, split: rows.split, perplexity: req.perplexity, iterations: req.iterations, klDivergence: kl,
    classes: labels?.classes ?? [],
    points: Array.from(rows.index, (row, i) => ({ row, x: y[2 * i], y: y[2 * i + 1], class: labels ? labels.ids[i] : null })),
  };
}
