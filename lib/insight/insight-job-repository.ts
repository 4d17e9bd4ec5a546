// The one writer of InsightJob rows after their creation: the claim that numbers an attempt, the
// progress it writes, and its end. Every write of an attempt names its number, so an attempt that
// another has taken over (its worker seemed dead and was not) changes nothing.
import type { Db } from "../db/prisma.ts";

export interface Claim {
  attempt: number;
}

/** The job for a new attempt (queued or running, not asked to cancel), or null: nothing to do. */
export async function claimInsightJob(db: Db, id: string): Promise<Claim | null> {
  const rows = await db.$queryRaw<{ attempts: number }[]>`
    UPDATE "InsightJob"
       SET status = 'running', attempts = attempts + 1, progress = 0, "startedAt" = COALESCE("startedAt", now()), "updatedAt" = now()
     WHERE id = ${id}::uuid AND status IN ('queued', 'running') AND NOT "cancelRequested"
     RETURNING attempts`;
  return rows[0] ? { attempt: rows[0].attempts } : null;
}

/** An attempt whose process never started (so never claimed the job) counts too; the attempts so far. */
export async function recordUnstartedAttempt(db: Db, id: string): Promise<number> {
  const rows = await db.$queryRaw<{ attempts: number }[]>`
    UPDATE "InsightJob" SET attempts = attempts + 1, "updatedAt" = now() WHERE id = ${id}::uuid AND status IN ('queued', 'running') RETURNING attempts`;
  return rows[0]?.attempts ?? 0;
}

/** False when the attempt no longer owns the job (superseded, cancelled, finished). */
export async function writeProgress(db: Db, id: string, attempt: number, progress: number): Promise<boolean> {
  const n = await db.insightJob.updateMany({ where: { id, attempts: attempt, status: "running" }, data: { progress: Math.min(1, Math.max(0, progress)) } });
  return n.count === 1;
}

export async function markSucceeded(db: Db, id: string, attempt: number, result: object): Promise<boolean> {
  const n = await db.insightJob.updateMany({ where: { id, attempts: attempt, status: "running" }, data: { status: "succeeded", progress: 1, result, finishedAt: new Date() } });
  return n.count === 1;
}

/** Ends a job that is queued or running as cancelled (the worker saw the request, or nothing runs it). */
export async function markInsightCancelled(db: Db, id: string): Promise<void> {
  await db.insightJob.updateMany({ where: { id, status: { in: ["queued", "running"] } }, data: { status: "cancelled", cancelRequested: true, finishedAt: new Date() } });
}

export async function markInsightFailed(db: Db, id: string, error: string): Promise<void> {
  await db.insightJob.updateMany({ where: { id, status: { in: ["queued", "running"] } }, data: { status: "failed", error: error.slice(0, 2000), finishedAt: new Date() } });
}

export async function cancelRequested(db: Db, id: string): Promise<boolean> {
  const row = await db.insightJob.findUnique({ where: { id }, select: { cancelRequested: true } });
  return !row || row.cancelRequested;
}

/** Jobs Postgres says should be on the queue (for the reconciler), oldest first. */
export async function pendingInsightJobs(db: Db, take: number): Promise<{ id: string; tenantId: string }[]> {
  return db.insightJob.findMany({ where: { status: { in: ["queued", "running"] } }, select: { id: true, tenantId: true }, orderBy: { createdAt: "asc" }, take });
}

/** A pending job read again: whether it still is, and whether its cancel was asked. */
export async function insightJobState(db: Db, id: string): Promise<{ pending: boolean; cancelRequested: boolean }> {
  const row = await db.insightJob.findUnique({ where: { id }, select: { status: true, cancelRequested: true } });
  return { pending: !!row && (row.status === "queued" || row.status === "running"), cancelRequested: !!row?.cancelRequested };
}
