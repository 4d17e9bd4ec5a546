// Postgres is the source of truth; the queue only delivers job ids. When the two disagree — Redis
// restarted empty, an enqueue or a final failure got lost while a dependency was down — the
// reconciler makes the queue match Postgres: every job that Postgres says is queued or running,
// but that the queue does not hold as waiting, delayed or active, is enqueued again (it resumes
// from its checkpoint), and one whose cancel was asked while nothing ran it is marked cancelled.
// Workers run it at start-up and periodically; a Redis lock lets one replica at a time do a round,
// and enqueueing is idempotent (the BullMQ job id is the job's id), so replicas cannot double a job.
import { randomUUID } from "node:crypto";
import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Db } from "../db/prisma.ts";
import { enqueueTraining, type TrainJobPayload } from "../queue/queues.ts";
import { markCancelled } from "./training-job-repository.ts";

/** BullMQ states in which the queue still holds a job for a worker to run (or running). */
const HELD = new Set(["waiting", "active", "delayed", "prioritized", "waiting-children"]);
/** Jobs per round: enough for any backlog, bounded so that a round stays short. */
const ROUND_LIMIT = 1000;

export interface ReconcileResult {
  requeued: string[];
  cancelled: string[];
}

/** One kind of job the reconciler keeps on its queue: training jobs here; insight jobs are wired by the worker. */
export interface ReconciledJobs {
  /** Jobs Postgres says are queued or running, oldest first. */
  pending(take: number): Promise<{ id: string; tenantId: string; priority?: number }[]>;
  /** Read again: the job may have finished between the list and the queue's answer. */
  state(id: string): Promise<{ pending: boolean; cancelRequested: boolean }>;
  cancel(id: string): Promise<void>;
  queue: Queue;
  enqueue(id: string, tenantId: string, priority?: number): Promise<void>;
}

/** Training jobs, as the reconciler sees them. */
export function trainingJobsOf(db: Db, queue: Queue<TrainJobPayload>): ReconciledJobs {
  return {
    async pending(take) {
      const rows = await db.trainingJob.findMany({ where: { status: { in: ["queued", "running"] } }, select: { id: true, tenantId: true, hyperparameters: true }, orderBy: { createdAt: "asc" }, take });
      return rows.map((r) => ({ id: r.id, tenantId: r.tenantId, priority: (r.hyperparameters as { priority?: number } | null)?.priority }));
    },
    async state(id) {
      const now = await db.trainingJob.findUnique({ where: { id }, select: { status: true, cancelRequested: true } });
      return { pending: !!now && (now.status === "queued" || now.status === "running"), cancelRequested: !!now?.cancelRequested };
    },
    cancel: (id) => markCancelled(db, id),
    queue,
    enqueue: (id, tenantId, priority) => enqueueTraining(queue, id, tenantId, priority),
  };
}

export class JobReconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private readonly kinds: ReconciledJobs[];

  constructor(
    db: Db,
    queue: Queue<TrainJobPayload>,
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly log: (msg: string) => void = () => {},
    others: ReconciledJobs[] = [],
  ) {
    this.kinds = [trainingJobsOf(db, queue), ...others];
  }

  /** One round; null when another replica holds the round's lock. */
  async reconcile(): Promise<ReconcileResult | null> {
    const lockKey = `${this.prefix}:reconciler-lock`;
    const token = randomUUID();
    if ((await this.redis.set(lockKey, token, "PX", 60_000, "NX")) !== "OK") return null;
    try {
      const result: ReconcileResult = { requeued: [], cancelled: [] };
      for (const kind of this.kinds) await this.round(kind, result);
      if (result.requeued.length || result.cancelled.length) {
        this.log(`reconciled the queue with Postgres: re-enqueued ${result.requeued.length} job(s), marked ${result.cancelled.length} cancelled`);
      }
      return result;
    } finally {
      // Release only our own lock (a round longer than the lock's life must not free another's).
      await this.redis.eval("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0", 1, lockKey, token).catch(() => 0);
    }
  }

  private async round(kind: ReconciledJobs, result: ReconcileResult): Promise<void> {
    for (const job of await kind.pending(ROUND_LIMIT)) {
      const held = await kind.queue.getJob(job.id);
      const state = held ? await held.getState() : "missing";
      if (HELD.has(state)) continue;
      const now = await kind.state(job.id);
      if (!now.pending) continue;
      if (now.cancelRequested) {
        // Asked to stop while nothing runs it: nothing else will ever mark it.
        await kind.cancel(job.id);
        result.cancelled.push(job.id);
        continue;
      }
      await kind.enqueue(job.id, job.tenantId, job.priority);
      result.requeued.push(job.id);
    }
  }

  /** Reconciles now and then every `intervalMs`; errors (a dependency down) wait for the next round. */
  start(intervalMs: number): void {
    const tick = () => {
      this.running = this.reconcile().catch((err: Error) => this.log(`reconcile: ${err.message.split("\n")[0]}`));
    };
    tick();
    this.timer = setInterval(tick, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
