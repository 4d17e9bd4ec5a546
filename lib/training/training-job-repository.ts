// Training job rows as the worker writes them. An attempt claims the job and gets a number; every
// later write names that number (a fencing token), so an attempt that another one has superseded
// (its lock expired while it was still alive: a long pause, a network split) cannot write again.
import { Prisma, type Db } from "../db/prisma.ts";

/** Another attempt has claimed the job since this one did: this one must stop writing. */
export class SupersededError extends Error {}

/** Claims the job for a new attempt: its number, or null when the job is not there to run (cancelled, finished). */
export async function claimJob(db: Db, jobId: string, startedAt: Date | null): Promise<number | null> {
  const claimed = await db.trainingJob
    .update({
      where: { id: jobId, status: { in: ["queued", "running"] }, cancelRequested: false },
      data: { status: "running", startedAt: startedAt ?? new Date(), attempts: { increment: 1 }, error: null },
      select: { attempts: true },
    })
    .catch((err) => {
      if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === "P2025") return null;
      throw err;
    });
  return claimed?.attempts ?? null;
}

/**
 * Writes `data` to the job if `attempt` still owns it, locking its row to the end of `tx` (so a
 * claim waits for this transaction); otherwise throws SupersededError.
 */
export async function writeAsOwner(tx: Prisma.TransactionClient, jobId: string, attempt: number, data: Prisma.TrainingJobUpdateManyMutationInput): Promise<void> {
  const { count } = await tx.trainingJob.updateMany({ where: { id: jobId, attempts: attempt }, data });
  if (count === 0) throw new SupersededError(`job ${jobId}: attempt ${attempt} no longer owns it`);
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
