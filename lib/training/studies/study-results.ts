// A study's results, computed from Postgres on every read (trials are training jobs): the table of
// trials sorted by the objective and the best trial. Finishing a study records its final status
// and best trial; the studies worker does it when the flow's last trial has ended, and a read does
// it when it finds every trial ended (so a study finishes even if Redis lost its parent job).
import type { Db } from "../../db/prisma.ts";
import { monitorMode } from "../../model-spec/schedule-schema.ts";
import { jobStatusSchema } from "../training-job-schema.ts";
import type { StudyRequest, StudySummaryView, StudyTrialView, StudyView } from "./study-schema.ts";

const ENDED = new Set(["succeeded", "failed", "cancelled"]);

export const studyInclude = {
  trials: {
    select: { id: true, trial: true, status: true, trialParams: true, metrics: true, epoch: true, stoppedEarly: true, model: { select: { name: true } }, version: { select: { version: true } } },
    orderBy: { trial: "asc" },
  },
} as const;

type TrialRow = {
  id: string; trial: number | null; status: StudyTrialView["status"]; trialParams: unknown; metrics: unknown; epoch: number; stoppedEarly: string | null;
  model: { name: string }; version: { version: number } | null;
};
type StudyRow = { id: string; status: StudyView["status"]; request: unknown; error: string | null; createdAt: Date; finishedAt: Date | null; trials: TrialRow[] };

export function objectiveOf(request: StudyRequest): { metric: string; mode: "min" | "max" } {
  return { metric: request.objective.metric, mode: monitorMode(request.objective.metric, request.objective.mode) };
}

/**
 * The trials, best first: succeeded trials with an objective by it (ties by number), then the
 * rest (unfinished, failed, cancelled, or without the metric) by number.
 */
export function trialTable(rows: TrialRow[], objective: { metric: string; mode: "min" | "max" }): StudyTrialView[] {
  const table = rows.map((r) => {
    const value = (r.metrics as Record<string, number> | null)?.[objective.metric];
    return {
      trial: r.trial ?? 0, jobId: r.id, status: r.status, params: (r.trialParams as Record<string, unknown> | null) ?? {},
      objective: typeof value === "number" && Number.isFinite(value) ? value : null,
      epochs: r.epoch, stoppedEarly: r.stoppedEarly, model: r.model.name, version: r.version?.version ?? null,
    };
  });
  const ranked = (t: StudyTrialView) => t.status === "succeeded" && t.objective !== null;
  const sign = objective.mode === "min" ? 1 : -1;
  return table.sort((a, b) => {
    if (ranked(a) !== ranked(b)) return ranked(a) ? -1 : 1;
    if (ranked(a) && a.objective !== b.objective) return sign * (a.objective! - b.objective!);
    return a.trial - b.trial;
  });
}

function bestOf(table: StudyTrialView[]): StudyView["best"] {
  const top = table[0];
  if (!top || top.status !== "succeeded" || top.objective === null) return null;
  return { trial: top.trial, jobId: top.jobId, model: top.model, version: top.version, objective: top.objective };
}

export function toStudyView(row: StudyRow): StudyView {
  const request = row.request as StudyRequest;
  const objective = objectiveOf(request);
  const trials = trialTable(row.trials, objective);
  const counts = Object.fromEntries(jobStatusSchema.options.map((s) => [s, 0])) as StudyView["counts"];
  for (const t of trials) counts[t.status]++;
  return {
    id: row.id, status: row.status, objective, trialCount: trials.length, counts, best: bestOf(trials), error: row.error,
    createdAt: row.createdAt.toISOString(), finishedAt: row.finishedAt?.toISOString() ?? null,
    request: request as unknown as Record<string, unknown>, trials,
  };
}

export function toStudySummary(row: StudyRow): StudySummaryView {
  const { request: _request, trials: _trials, ...summary } = toStudyView(row);
  return summary;
}

/**
 * Records a study's end once every trial has ended: succeeded when a trial succeeded, failed when
 * none did, and a cancelled study stays cancelled; the best trial either way. Idempotent. Returns
 * false while a trial has not ended yet.
 */
export async function finishStudy(db: Db, studyId: string): Promise<boolean> {
  const row = await db.study.findUnique({ where: { id: studyId }, include: studyInclude });
  if (!row) return true;
  if (!row.trials.every((t) => ENDED.has(t.status))) return false;
  const view = toStudyView(row);
  const bestJobId = view.best?.jobId ?? null;
  if (row.status === "running") {
    const failed = !view.best;
    await db.study.updateMany({
      where: { id: studyId, status: "running" },
      data: {
        status: failed ? "failed" : "succeeded", bestJobId, finishedAt: new Date(),
        error: failed ? `no trial succeeded with a value of ${view.objective.metric} (${view.counts.failed} failed, ${view.counts.cancelled} cancelled, ${view.counts.succeeded} succeeded)` : null,
      },
    });
  } else if (row.status === "cancelled" && bestJobId) {
    await db.study.updateMany({ where: { id: studyId, status: "cancelled", bestJobId: null }, data: { bestJobId } });
  }
  return true;
}
