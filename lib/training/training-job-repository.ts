// Training job rows as the worker writes them. An attempt claims the job and gets a number; every
// later write names that number (a fencing token), so an attempt that another one has superseded
// (its lock expired while it was still alive: a long pause, a network split) cannot write again.
import type { Db, Prisma } from "../db/prisma.ts";

/** Another attempt has claimed the job since this one did: this one must stop writing. */
export class SupersededError extends Error {}

export interface Claim {
  /** This attempt's number (the fencing token of every later write). */
  attempt: number;
  /** Attempts in a row, before this one, that ended without finishing an epoch. */
  attemptsWithoutProgress: number;
  /** The epoch the job stands at: the last one stored. */
  epoch: number;
}

/**
 * Claims the job for a new attempt: null when it is not there to run (cancelled, paused,
 * finished), `{ waiting }` when its tenant already runs `maxRunning` jobs (0: no limit; the reason
 * is recorded on the job, which stays queued). The update is one statement, so that it reads the
 * row as it is when it takes it: whether the previous attempt made progress is judged from the
 * epoch it started at (`claimEpoch`) and the one the job stands at now, and only an attempt that
 * left the job `running` died (one that paused or handed the job back set it `queued`). An epoch
 * being stored locks the row, so a claim waits for it and counts it.
 */
export async function claimJob(db: Db, jobId: string, maxRunning = 0): Promise<Claim | { waiting: string } | null> {
  return db.$transaction(async (tx) => {
    if (maxRunning > 0) {
      const [job] = await tx.$queryRaw<{ tenantId: string; status: string }[]>`SELECT "tenantId"::text AS "tenantId", "status"::text AS status FROM "TrainingJob" WHERE "id" = ${jobId}::uuid`;
      // A running job is an attempt that died being taken over: it holds its tenant's slot already.
      if (job?.status === "queued") {
        // One claim per tenant at a time, so that two workers cannot both take the last slot.
        await tx.$queryRaw`SELECT 1 AS locked FROM pg_advisory_xact_lock(hashtext(${job.tenantId}))`;
        const [{ n }] = await tx.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n FROM "TrainingJob" WHERE "tenantId" = ${job.tenantId}::uuid AND "status" = 'running' AND "id" <> ${jobId}::uuid`;
        if (n >= maxRunning) {
          const waiting = `waiting for a slot: its tenant has ${n} job(s) running, the limit (TRAINYARD_MAX_RUNNING_JOBS_PER_TENANT) is ${maxRunning}`;
          await tx.trainingJob.updateMany({ where: { id: jobId, status: "queued" }, data: { waitingReason: waiting } });
          return { waiting };
        }
      }
    }
    const rows = await tx.$queryRaw<Claim[]>`
      UPDATE "TrainingJob" SET
        "status" = 'running',
        "startedAt" = COALESCE("startedAt", now()),
        "attempts" = "attempts" + 1,
        "error" = NULL,
        "waitingReason" = NULL,
        "attemptsWithoutProgress" = CASE WHEN "attempts" > 0 AND "status" = 'running' AND "epoch" = "claimEpoch" THEN "attemptsWithoutProgress" + 1 ELSE 0 END,
        "claimEpoch" = "epoch",
        "lastInterruption" = CASE WHEN "attempts" > 0 AND "status" = 'running'
          THEN 'attempt ' || "attempts" || ' stopped before finishing (its worker or its process died, or it failed); attempt ' || ("attempts" + 1) || ' resumed at epoch ' || "epoch"
          ELSE "lastInterruption" END,
        "updatedAt" = now()
      WHERE "id" = ${jobId}::uuid AND "status" IN ('queued', 'running') AND "cancelRequested" = false
      RETURNING "attempts" AS attempt, "attemptsWithoutProgress", "epoch"`;
    return rows[0] ?? null;
    // As long as an epoch's checkpoint may take to store: the claim waits for its lock on the row.
  }, { timeout: 120_000, maxWait: 10_000 });
}

/**
 * Writes `data` to the job if `attempt` still owns it, locking its row to the end of `tx` (so a
 * claim waits for this transaction); otherwise throws SupersededError.
 */
export async function writeAsOwner(tx: Prisma.TransactionClient, jobId: string, attempt: number, data: Prisma.TrainingJobUpdateManyMutationInput): Promise<void> {
  const { count } = await tx.trainingJob.updateMany({ where: { id: jobId, attempts: attempt }, data });
  if (count === 0) throw new SupersededError(`job ${jobId}: attempt ${attempt} no longer owns it`);
}

/**
 * Counts an attempt that failed before it could claim the job (its process died while starting)
 * as an attempt without progress, as a claim would; returns how many there are now in a row.
 */
export async function recordUnclaimedAttempt(db: Db, jobId: string, reason: string): Promise<number> {
  const rows = await db.$queryRaw<{ n: number }[]>`
    UPDATE "TrainingJob" SET
      "attemptsWithoutProgress" = "attemptsWithoutProgress" + 1,
      "lastInterruption" = ${`an attempt failed before it could start: ${reason.slice(0, 500)}`},
      "updatedAt" = now()
    WHERE "id" = ${jobId}::uuid AND "status" IN ('queued', 'running')
    RETURNING "attemptsWithoutProgress" AS n`;
  return rows[0]?.n ?? 0;
}

export async function markCancelled(db: Db, jobId: string): Promise<void> {
  await db.trainingJob.updateMany({ where: { id: jobId, status: { in: ["queued", "running"] } }, data: { status: "cancelled", finishedAt: new Date() } });
}

/** Records a final failure (permanent, or the last retry of a transient one). */
export async function markFailed(db: Db, jobId: string, message: string): Promise<void> {
  await db.trainingJob.updateMany({
    where: { id: jobId, status: { in: ["queued", "running"] } },
    data: { status: "failed", error: message.slice(0, 2000), finishedAt: new Date() },
  });
}
