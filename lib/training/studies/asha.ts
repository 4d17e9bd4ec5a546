// Asynchronous successive halving (ASHA; Li et al. 2018, Ray Tune's AsyncHyperBand): a trial is
// judged at rungs, epochs minEpochs·η^k below its last epoch; at a rung it goes on only if its
// objective is among the best 1/η of the values the study's trials have recorded at that epoch so
// far (its own included). Trials are never waited for: the first to reach a rung go on.
import type { Db } from "../../db/prisma.ts";
import { monitorMode } from "../../model-spec/schedule-schema.ts";
import type { StudyRequest } from "./study-schema.ts";

export interface AshaConfig {
  minEpochs: number;
  reductionFactor: number;
}

/** The rung epochs of a trial that trains `epochs` epochs: minEpochs·η^k < epochs. */
export function rungs(asha: AshaConfig, epochs: number): number[] {
  const out: number[] = [];
  for (let r = asha.minEpochs; r < epochs; r *= asha.reductionFactor) out.push(r);
  return out;
}

export interface AshaInput {
  asha: AshaConfig;
  mode: "min" | "max";
  /** The epoch just finished and the epochs the trial trains. */
  epoch: number;
  epochs: number;
  /** The trial's objective at this epoch (undefined when it has none: then it is not judged). */
  value: number | undefined;
  /** The objectives other trials of the study recorded at this epoch. */
  others: number[];
}

export type AshaVerdict = { stop: false } | { stop: true; rank: number; of: number; keep: number };

/**
 * Whether a trial stops at this epoch. Only rung epochs judge; with fewer than η values at the rung
 * the trial goes on; else it goes on when its rank (best first, ties in its favour, NaN worst) is
 * within ⌊n/η⌋.
 */
export function ashaDecision(input: AshaInput): AshaVerdict {
  const { asha, mode, epoch, epochs, value, others } = input;
  if (value === undefined || !rungs(asha, epochs).includes(epoch)) return { stop: false };
  const n = others.length + 1;
  if (n < asha.reductionFactor) return { stop: false };
  const score = (v: number) => (Number.isNaN(v) ? -Infinity : mode === "min" ? -v : v);
  const rank = 1 + others.filter((o) => score(o) > score(value)).length;
  const keep = Math.floor(n / asha.reductionFactor);
  return rank <= keep ? { stop: false } : { stop: true, rank, of: n, keep };
}

/**
 * The verdict for a trial that has just stored `epoch` (its metric points are in Postgres):
 * `{stop: reason}` to end it after this epoch, undefined to go on. Reads the study's request and
 * the other trials' values at this epoch.
 */
export async function ashaVerdict(db: Db, trial: { jobId: string; studyId: string; epoch: number; epochs: number; metrics: Record<string, number> }): Promise<{ stop: string } | undefined> {
  const study = await db.study.findUnique({ where: { id: trial.studyId }, select: { request: true } });
  const request = study?.request as StudyRequest | undefined;
  if (!request?.asha) return undefined;
  const { metric, mode } = request.objective;
  const asha = { minEpochs: request.asha.minEpochs, reductionFactor: request.asha.reductionFactor };
  if (!rungs(asha, trial.epochs).includes(trial.epoch)) return undefined;
  const points = await db.metricPoint.findMany({
    where: { epoch: trial.epoch, name: metric, jobId: { not: trial.jobId }, job: { studyId: trial.studyId } },
    select: { value: true },
  });
  const verdict = ashaDecision({ asha, mode: monitorMode(metric, mode), epoch: trial.epoch, epochs: trial.epochs, value: trial.metrics[metric], others: points.map((p) => p.value) });
  if (!verdict.stop) return undefined;
  return { stop: `ASHA: ${metric} ${round(trial.metrics[metric])} ranked ${verdict.rank} of the ${verdict.of} trials at rung epoch ${trial.epoch}, where the best ${verdict.keep} go on` };
}

const round = (v: number) => (Number.isFinite(v) ? Number(v.toPrecision(4)) : v);
