// Model insight, the API side: checks a request against the version's signature, turns raw
// instances and class names into a probe (lib/engine/probes), has an inference thread run it on
// the version's raw-input graph, and answers numbers, or the same as a picture (pictures.ts).
import type { Db } from "../db/prisma.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import type { TrainingJobView } from "../training/training-job-schema.ts";
import type { Probe, ProbeResult, RawBatch } from "../engine/probes/probe.ts";
import { gridOf } from "../engine/probes/attribution.ts";
import { ModelVersionRepository, type ResolvedVersion } from "../registry/model-version-repository.ts";
import type { Signature } from "../registry/signature.ts";
import { nest, packInputs } from "../serving/protocols/tensors.ts";
import { parseTfPredict, type TfPredictRequest } from "../serving/protocols/tf-serving.ts";
import { gridPng, heatmapPng, type ImageData, lineChartPng } from "./pictures.ts";
import {
  type ActivationsRequest, type AdversarialRequest, MAX_PROBE_ROWS, type OcclusionRequest, type SaliencyRequest,
} from "./insight-schema.ts";

export type RunProbe = (versionId: string, probe: Probe) => Promise<ProbeResult>;
/** A training job as the API shows it (lib/training's TrainingJobService.get). */
export type GetJob = (tenantId: string, id: string) => Promise<TrainingJobView>;

interface Target {
  version: ResolvedVersion;
  input: Signature["inputs"][number];
}

/** At most this many cells in a picture of feature maps or filters. */
const MAX_CELLS = 64;

export class InsightService {
  private readonly versions: ModelVersionRepository;

  constructor(db: Db, private readonly run: RunProbe, private readonly job?: GetJob) {
    this.versions = new ModelVersionRepository(db);
  }

  /** A pruning job's curve: a validation metric against sparsity, a line per criterion; 404 for a job that pruned nothing (yet). */
  async pruningPicture(tenantId: string, id: string): Promise<Buffer> {
    if (!this.job) throw new NotFoundError("pruning measurements of training job", id);
    const j = await this.job(tenantId, id);
    const report = j.pruning;
    if (!report) throw new NotFoundError("pruning measurements of training job", id);
    const metric = report.curve.some((p) => p.metrics.val_accuracy !== undefined) ? "val_accuracy" : "val_loss";
    const series = (["obd", "magnitude"] as const).map((criterion) => {
      const points = report.curve.filter((p) => p.criterion === criterion);
      return { name: criterion === "obd" ? "optimal brain damage" : "magnitude", x: points.map((p) => p.sparsity), y: points.map((p) => p.metrics[metric] ?? Number.NaN) };
    });
    return lineChartPng({
      title: `${j.model}: pruned by each criterion, before fine-tuning`,
      subtitle: `${metric} against the share of kernel weights at zero (${report.scope}); this job: ${report.criterion}, ${(report.achieved * 100).toFixed(1)}%`,
      xLabel: "sparsity", yLabel: metric, ...(metric === "val_accuracy" ? { yRange: [0, 1] as [number, number] } : {}), series,
    });
  }

  async adversarial(tenantId: string, name: string, version: number, req: AdversarialRequest) {
    // A dataset's attack is a job (insight-job-service.ts); the schema lets one of the two through.
    if (!req.instances || !req.labels) throw ValidationError.at("instances", "are required (with labels) unless a dataset is given");
    const t = await this.target(tenantId, name, version);
    const out = outputOf(t.version.signature, req.output);
    const batch = rawBatch(t, req.instances);
    const n = batch.shape[0];
    if (req.labels.length !== n) throw ValidationError.at("labels", `has ${req.labels.length} labels for ${n} instances`);
    const labels = Int32Array.from(req.labels, (l, i) => classIndex(out.classes, l, `labels[${i}]`));
    const target = req.targetClass === undefined ? undefined : classIndex(out.classes, req.targetClass, "targetClass");
    const epsilons = [req.epsilon].flat();
    const steps = req.method === "pgd" ? req.steps : 1;
    if (n * epsilons.length * steps > MAX_PROBE_ROWS) throw ValidationError.at("epsilon", `instances × ε values × steps is ${n * epsilons.length * steps}; at most ${MAX_PROBE_ROWS} per request`);
    const range = req.range ?? defaultRange(t.input);
    const r = (await this.run(t.version.id, { kind: "attack", input: batch, labels, output: out.index, method: req.method, epsilons, steps: req.steps, stepSize: req.stepSize, targetClass: target, range })) as Extract<ProbeResult, { kind: "attack" }>;
    finite(r.before, ...r.runs.flatMap((x) => [x.after, x.adversarial]));
    const k = out.classes.length;
    const best = (p: Float32Array, i: number) => argmax(p.subarray(i * k, (i + 1) * k));
    const tally = tallyAttack(r, labels, k, target);
    const results = r.runs.map((run, e) => ({ epsilon: run.epsilon, ...attackRates(tally, e) }));
    const rowShape = batch.shape.slice(1);
    const width = rowShape.reduce((a, b) => a * b, 1);
    const prediction = (p: Float32Array, i: number) => {
      const c = best(p, i);
      return { class: out.classes[c], probability: p[i * k + c] };
    };
    const body = {
      version: t.version.version, output: out.name, method: req.method, targetClass: target === undefined ? null : out.classes[target], range: range ?? null, results,
      instances: Array.from(labels, (l, i) => ({
        label: out.classes[l],
        before: prediction(r.before, i),
        after: r.runs.map((run) => ({ epsilon: run.epsilon, ...prediction(run.after, i), adversarial: nest(run.adversarial.subarray(i * width, (i + 1) * width), rowShape) })),
      })),
    };
    const picture = () =>
      attackCurvePng({
        title: `${name} v${t.version.version}: ${req.method.toUpperCase()}${target === undefined ? "" : ` towards '${out.classes[target]}'`}`,
        subtitle: `${n} instances; ε in the raw input's units${range ? `, kept in [${range[0]}, ${range[1]}]` : ""}`,
        results,
      });
    return { body, picture };
  }

  async saliency(tenantId: string, name: string, version: number, req: SaliencyRequest) {
    const t = await this.target(tenantId, name, version);
    const out = outputOf(t.version.signature, req.output);
    const batch = rawBatch(t, req.instances);
    const r = (await this.run(t.version.id, { kind: "saliency", input: batch, classes: classesOf(out, batch, req.class), output: out.index })) as Extract<ProbeResult, { kind: "saliency" }>;
    finite(r.maps, r.probabilities);
    const grid = gridOf(batch.shape.slice(1));
    const maps = mapsOf(r.maps, grid.height, grid.width, r.classes, out, (i, c) => r.probabilities[i * out.classes.length + c]);
    const picture = () => this.heatmaps(`${name} v${t.version.version}: saliency`, "|∂ score / ∂ input|", maps, batch, t.input);
    return { body: { version: t.version.version, output: out.name, maps }, picture };
  }

  async occlusion(tenantId: string, name: string, version: number, req: OcclusionRequest) {
    const t = await this.target(tenantId, name, version);
    const out = outputOf(t.version.signature, req.output);
    const batch = rawBatch(t, req.instances);
    const grid = gridOf(batch.shape.slice(1));
    // The patch is square where the input is an image; along a row (a table, one step) it is as wide as asked, one cell high.
    const patch = Math.min(req.patch ?? Math.max(1, Math.round(Math.min(grid.height, grid.width) / 7)), Math.max(grid.height, grid.width));
    const stride = req.stride ?? Math.max(1, Math.floor(patch / 2));
    const positions = (Math.floor((grid.height - Math.min(patch, grid.height)) / stride) + 1) * (Math.floor((grid.width - Math.min(patch, grid.width)) / stride) + 1);
    if (batch.shape[0] * positions > MAX_PROBE_ROWS) throw ValidationError.at("stride", `instances × patch positions is ${batch.shape[0] * positions}; at most ${MAX_PROBE_ROWS} per request: a larger stride or patch, or fewer instances`);
    const range = defaultRange(t.input);
    const fill = req.fill ?? (range ? (range[0] + range[1]) / 2 : 0);
    const r = (await this.run(t.version.id, { kind: "occlusion", input: batch, classes: classesOf(out, batch, req.class), output: out.index, patch, stride, fill })) as Extract<ProbeResult, { kind: "occlusion" }>;
    finite(r.maps, r.baseline);
    const maps = mapsOf(r.maps, r.rows, r.cols, r.classes, out, (i) => r.baseline[i]);
    const picture = () => this.heatmaps(`${name} v${t.version.version}: occlusion`, "drop in probability", maps, batch, t.input, `patch ${patch}, stride ${stride}, fill ${fill}`);
    return { body: { version: t.version.version, output: out.name, patch, stride, fill, maps }, picture };
  }

  async activations(tenantId: string, name: string, version: number, req: ActivationsRequest) {
    const t = await this.target(tenantId, name, version);
    const batch = rawBatch(t, req.instances);
    const r = (await this.run(t.version.id, { kind: "activations", input: batch, layer: req.layer })) as Extract<ProbeResult, { kind: "activations" }>;
    finite(r.data);
    const picture = () => {
      // The first instance's feature maps: one cell per channel of a [h, w, c] (or [steps, c]) output.
      const shape = r.shape.slice(1);
      const g = gridOf(shape);
      const per = g.height * g.width * g.channels;
      const first = r.data.subarray(0, per);
      const count = Math.min(g.channels, MAX_CELLS);
      const cells = Array.from({ length: count }, (_, c) => ({ label: `${c}`, data: Float32Array.from({ length: g.height * g.width }, (_, p) => first[p * g.channels + c]), width: g.width, height: g.height, channels: 1 as const }));
      return gridPng({ title: `${name} v${t.version.version}: ${req.layer}`, subtitle: `output ${JSON.stringify(shape)} of the first instance${g.channels > count ? `; the first ${count} of ${g.channels} channels` : ""}`, cells, normalize: "cell" });
    };
    return { body: { version: t.version.version, layer: req.layer, shape: r.shape, values: nest(r.data, r.shape) }, picture };
  }

  async filters(tenantId: string, name: string, version: number, layer: string) {
    const t = await this.target(tenantId, name, version, false);
    const r = (await this.run(t.version.id, { kind: "filters", layer })) as Extract<ProbeResult, { kind: "filters" }>;
    const picture = () => {
      const [kh, kw, cin, cout] = r.shape;
      const count = Math.min(cout, MAX_CELLS);
      // Three input channels (a first layer on colour images) draw as colour; otherwise the mean over inputs, signed.
      const rgb = cin === 3;
      const cells = Array.from({ length: count }, (_, f) => {
        const data = new Float32Array(kh * kw * (rgb ? 3 : 1));
        for (let p = 0; p < kh * kw; p++) {
          if (rgb) for (let c = 0; c < 3; c++) data[p * 3 + c] = r.data[(p * cin + c) * cout + f];
          else {
            let sum = 0;
            for (let c = 0; c < cin; c++) sum += r.data[(p * cin + c) * cout + f];
            data[p] = sum / cin;
          }
        }
        return { label: `${f}`, data, width: kw, height: kh, channels: (rgb ? 3 : 1) as 1 | 3 };
      });
      return gridPng({ title: `${name} v${t.version.version}: ${layer} filters`, subtitle: `${kh}×${kw}, ${cin} input channel${cin === 1 ? "" : "s"}${rgb ? " (as colour)" : cin > 1 ? " (mean over them)" : ""}, ${cout} filters${cout > count ? `; the first ${count}` : ""}`, cells, normalize: rgb ? "cell" : "shared", diverging: !rgb, scaleLabel: "weight" });
    };
    return { body: { version: t.version.version, layer, shape: r.shape, values: nest(r.data, r.shape) }, picture };
  }

  private async target(tenantId: string, name: string, version: number, needsOneInput = true): Promise<Target> {
    const v = await this.versions.resolve(tenantId, name, { kind: "version", version });
    const inputs = v.signature.inputs;
    if (needsOneInput && inputs.length !== 1) throw ValidationError.at("instances", `model '${name}' has ${inputs.length} inputs; probes take models with one input`);
    const input = inputs[0];
    if (input.preprocessing?.kind === "tabular" && input.preprocessing.columns.some((c) => c.type === "categorical")) {
      throw ValidationError.at("instances", `input '${input.name}' has categorical columns; a gradient with respect to a category does not exist`);
    }
    return { version: v, input };
  }

  /** One heat map over its image for one instance; a grid of maps for several. */
  private heatmaps(title: string, scaleLabel: string, maps: MapView[], batch: RawBatch, input: Signature["inputs"][number], detail?: string): Promise<Buffer> {
    const first = maps[0];
    const values = Float32Array.from(first.values.flat());
    if (maps.length === 1) {
      return heatmapPng({ title, subtitle: `class '${first.class}' (p = ${first.probability.toFixed(3)})${detail ? `; ${detail}` : ""}`, values, width: first.width, height: first.height, base: baseImage(batch, input, first.height, first.width), scaleLabel });
    }
    const cells = maps.slice(0, MAX_CELLS).map((m, i) => ({ label: `${i}: ${m.class}`, data: Float32Array.from(m.values.flat()), width: m.width, height: m.height, channels: 1 as const }));
    return gridPng({ title, subtitle: `${maps.length} instances${maps.length > MAX_CELLS ? `; the first ${MAX_CELLS}` : ""}${detail ? `; ${detail}` : ""}`, cells, normalize: "shared", scaleLabel });
  }
}

/** An attack's counts over some rows, per ε: summed over a dataset's chunks, then turned into rates. */
export interface AttackTally {
  rows: number;
  correctBefore: number;
  runs: { correct: number; succeeded: number; eligible: number }[];
}

/**
 * Counts for one attacked batch. Success: untargeted, a row classified correctly before and not
 * after (of those correct before); targeted, a row classified as the target (of all).
 */
export function tallyAttack(r: Extract<ProbeResult, { kind: "attack" }>, labels: Int32Array, k: number, target: number | undefined, into?: AttackTally): AttackTally {
  const n = labels.length;
  const best = (p: Float32Array, i: number) => argmax(p.subarray(i * k, (i + 1) * k));
  const tally = into ?? { rows: 0, correctBefore: 0, runs: r.runs.map(() => ({ correct: 0, succeeded: 0, eligible: 0 })) };
  const correctBefore = Array.from(labels, (l, i) => best(r.before, i) === l);
  tally.rows += n;
  tally.correctBefore += correctBefore.filter(Boolean).length;
  r.runs.forEach((run, e) => {
    const t = tally.runs[e];
    for (let i = 0; i < n; i++) {
      const after = best(run.after, i);
      if (after === labels[i]) t.correct++;
      if (target !== undefined) {
        t.eligible++;
        if (after === target) t.succeeded++;
      } else if (correctBefore[i]) {
        t.eligible++;
        if (after !== labels[i]) t.succeeded++;
      }
    }
  });
  return tally;
}

export function attackRates(tally: AttackTally, e: number): { accuracy: number; successRate: number } {
  const t = tally.runs[e];
  return { accuracy: tally.rows ? t.correct / tally.rows : 0, successRate: t.eligible ? t.succeeded / t.eligible : 0 };
}

/** The accuracy-against-ε picture of an attack, on given instances or a dataset's rows. */
export function attackCurvePng(o: { title: string; subtitle: string; results: { epsilon: number; accuracy: number; successRate: number }[] }): Promise<Buffer> {
  return lineChartPng({
    title: o.title, subtitle: o.subtitle, xLabel: "ε", yLabel: "rate", yRange: [0, 1],
    series: [
      { name: "accuracy", x: o.results.map((x) => x.epsilon), y: o.results.map((x) => x.accuracy) },
      { name: "attack success", x: o.results.map((x) => x.epsilon), y: o.results.map((x) => x.successRate) },
    ],
  });
}

export interface OutputRef {
  index: number;
  name: string;
  classes: string[];
}

type MapView = { class: string; probability: number; height: number; width: number; values: number[][] };

function mapsOf(data: Float32Array, height: number, width: number, classes: Int32Array, out: OutputRef, probability: (i: number, c: number) => number): MapView[] {
  return Array.from(classes, (c, i) => ({
    class: out.classes[c], probability: probability(i, c), height, width,
    values: Array.from({ length: height }, (_, r) => Array.from(data.subarray(i * height * width + r * width, i * height * width + (r + 1) * width))),
  }));
}

/** A classification output by name (default the first), or a 400 at `output`. */
export function outputOf(signature: Signature, name: string | undefined): OutputRef {
  const outputs = signature.outputs.map((o, index) => ({ ...o, index }));
  const o = name === undefined ? outputs.find((x) => x.task === "classification") : outputs.find((x) => x.name === name);
  if (!o) throw ValidationError.at("output", name === undefined ? "the model has no classification output: probes explain class scores" : `no output '${name}'; the outputs are ${outputs.map((x) => x.name).join(", ")}`);
  if (o.task !== "classification" || o.classes.length < 2) throw ValidationError.at("output", `output '${o.name}' is not a classification output: probes explain class scores`);
  return { index: o.index, name: o.name, classes: o.classes };
}

/** The class asked for, for every row; undefined lets the probe explain each row's predicted class. */
function classesOf(out: OutputRef, batch: RawBatch, ref: SaliencyRequest["class"]): Int32Array | undefined {
  return ref === undefined ? undefined : new Int32Array(batch.shape[0]).fill(classIndex(out.classes, ref, "class"));
}

export function classIndex(classes: string[], ref: string | number, path: string): number {
  const i = typeof ref === "number" ? ref : classes.indexOf(ref);
  if (i < 0 || i >= classes.length) throw ValidationError.at(path, `no class ${JSON.stringify(ref)}; the classes are ${classes.slice(0, 20).map((c) => JSON.stringify(c)).join(", ")}${classes.length > 20 ? ", …" : ""} (or their indices 0–${classes.length - 1})`);
  return i;
}

/** Raw instances checked against the input's raw shape (a 400 names the instance and place), unpreprocessed. */
function rawBatch(t: Target, instances: unknown[]): RawBatch {
  const raw = parseTfPredict(t.version.signature, { instances: instances as TfPredictRequest["instances"] });
  const [packed] = packInputs([{ name: t.input.name, shape: t.input.shape }], raw);
  // JSON numbers beyond float32's range arrive as ±Infinity, and a gradient of them is NaN.
  const width = packed.data.length / packed.shape[0];
  const bad = packed.data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw ValidationError.at(`instances[${Math.floor(bad / width)}]`, "holds a value beyond float32's range (about ±3.4e38)");
  return { data: packed.data, shape: packed.shape };
}

/** A probe's numbers must be finite to mean anything (and to be JSON); inputs that overflow the network are the request's problem. */
export function finite(...arrays: Float32Array[]): void {
  for (const a of arrays) {
    if (a.some((v) => !Number.isFinite(v))) throw ValidationError.at("instances", "the network's values overflow for these instances (not finite): they are far outside the data it was trained on");
  }
}

/** Pixels' range from the fitted scaling (x · scale: 1/255 means 0–255); none for other inputs. */
export function defaultRange(input: Signature["inputs"][number]): [number, number] | undefined {
  const p = input.preprocessing;
  if (p?.kind !== "image") return undefined;
  return [0, Math.round((1 / p.scale) * 1e6) / 1e6];
}

/** The instance as a picture under its map, when it is an image the map covers cell for cell. */
function baseImage(batch: RawBatch, input: Signature["inputs"][number], height: number, width: number): ImageData | undefined {
  const shape = batch.shape.slice(1);
  if (shape.length !== 3 || shape[0] !== height || shape[1] !== width) return undefined;
  const channels = shape[2];
  const pixels = batch.data.subarray(0, height * width * channels);
  const range = defaultRange(input);
  let [lo, hi] = range ?? [Infinity, -Infinity];
  if (!range) for (const v of pixels) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  const span = hi - lo || 1;
  const shown = channels === 3 ? 3 : 1;
  const data = new Float32Array(height * width * shown);
  for (let p = 0; p < height * width; p++) {
    if (shown === 3) for (let c = 0; c < 3; c++) data[p * 3 + c] = (pixels[p * 3 + c] - lo) / span;
    else {
      let sum = 0;
      for (let c = 0; c < channels; c++) sum += pixels[p * channels + c];
      data[p] = (sum / channels - lo) / span;
    }
  }
  return { data, width, height, channels: shown };
}

function argmax(p: Float32Array): number {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
  return best;
}
