// A training job's events, as Server-Sent Events carry them: a Redis Stream per job, written by
// the worker (running, progress, epochs, the end) and the API (queued, cancel requested), read by
// whichever API replica a client reaches. The stream entry id is the SSE id, so a client that
// reconnects with Last-Event-ID reads on from where it was. Live progress is also kept in one key
// per job for GET to read. Postgres stays the record: an event Redis loses is only an event.
import { Readable } from "node:stream";
import type { Redis } from "ioredis";
import { z } from "zod";
import { metricsSchema, progressSchema, type Progress } from "./training-job-schema.ts";

/** The job's event stream; the key sits under the queue prefix, so a deployment's keys stay together. */
export const eventStreamKey = (prefix: string, jobId: string) => `${prefix}:events:${jobId}`;
/** The job's latest progress snapshot (see ProgressSnapshot). */
export const progressKey = (prefix: string, jobId: string) => `${prefix}:progress:${jobId}`;

/** Entries kept per stream (approximately: trimmed with MAXLEN ~). Progress comes at most once a second, so this is over an hour of it. */
export const STREAM_MAX_ENTRIES = 5000;
/** A stream lives this long after its last event (every event renews it)... */
export const STREAM_TTL_SECONDS = 7 * 24 * 3600;
/** ...and this long after the job's final event. */
export const ENDED_STREAM_TTL_SECONDS = 24 * 3600;
/** The progress snapshot expires unless renewed: a worker that died leaves none behind for long. */
export const PROGRESS_TTL_SECONDS = 120;
/** The progress key is written at most this often... */
export const PROGRESS_KEY_INTERVAL_MS = 500;
/** ...and a progress event added to the stream at most this often. */
export const PROGRESS_EVENT_INTERVAL_MS = 1000;
/** A quiet stream gets a `: ping` comment this often (proxies close idle connections). */
export const HEARTBEAT_MS = 15_000;
/** A job Postgres has seen finished this long ago without a final event in its stream gets one written from Postgres. */
export const FINAL_GRACE_MS = 3000;

const finalStatuses = ["succeeded", "failed", "cancelled"] as const;

export const statusEventSchema = z
  .object({
    status: z.enum(["queued", "running", "paused", ...finalStatuses]),
    reason: z.string().optional().describe("Why a job waits (queued behind its tenant's limit) or paused."),
    attempt: z.number().int().optional().describe("The attempt that started running."),
    cancelRequested: z.boolean().optional(),
    error: z.string().optional(),
    stoppedEarly: z.string().optional(),
    metrics: metricsSchema.optional().describe("The final metrics, with a succeeded job."),
  })
  .meta({ id: "TrainingStatusEvent" });
export const epochEventSchema = z
  .object({ epoch: z.number().int(), epochs: z.number().int(), metrics: metricsSchema, bestEpoch: z.number().int().optional() })
  .meta({ id: "TrainingEpochEvent" });
export const warningEventSchema = z.object({ code: z.string(), message: z.string() }).meta({ id: "TrainingWarningEvent" });

/** Every event a job's stream holds; `end` is not stored: the server sends it after the final status, then closes. */
export const jobEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("status"), data: statusEventSchema }),
  z.object({ type: z.literal("progress"), data: progressSchema }),
  z.object({ type: z.literal("epoch"), data: epochEventSchema }),
  z.object({ type: z.literal("warning"), data: warningEventSchema }),
]);
export type JobEvent = z.infer<typeof jobEventSchema>;
export type StatusEvent = z.infer<typeof statusEventSchema>;

export const isFinal = (e: JobEvent) => e.type === "status" && (finalStatuses as readonly string[]).includes(e.data.status);

/** What the progress key holds: the live part of `progress`, and when it was measured. */
export interface ProgressSnapshot {
  /** Epochs finished when it was taken (the batch belongs to the next). */
  epoch: number;
  batch: number;
  batches: number;
  samplesPerSecond: number;
  remainingSeconds: number;
  /** ms since the epoch, when taken. */
  at: number;
}

/**
 * Writes a job's events and progress. Never throws and never waits long: a Redis that is down
 * loses events, it does not fail or slow a training job.
 */
export class JobEventPublisher {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  /** Adds an event to the job's stream; resolves to its id, or null if Redis did not take it. */
  async publish(jobId: string, event: JobEvent): Promise<string | null> {
    const key = eventStreamKey(this.prefix, jobId);
    try {
      const res = await this.redis
        .multi()
        .xadd(key, "MAXLEN", "~", STREAM_MAX_ENTRIES, "*", "type", event.type, "data", JSON.stringify(event.data))
        .expire(key, isFinal(event) ? ENDED_STREAM_TTL_SECONDS : STREAM_TTL_SECONDS)
        .exec();
      const [err, id] = res?.[0] ?? [new Error("no reply"), null];
      return err ? null : (id as string);
    } catch {
      return null;
    }
  }

  /** Like publish, but gives up waiting after `ms` (the event may still be written). */
  async publishWithin(jobId: string, event: JobEvent, ms: number): Promise<string | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
    return Promise.race([this.publish(jobId, event), timeout]).finally(() => clearTimeout(timer));
  }

  async setProgress(jobId: string, snapshot: ProgressSnapshot): Promise<void> {
    await this.redis.set(progressKey(this.prefix, jobId), JSON.stringify(snapshot), "EX", PROGRESS_TTL_SECONDS).catch(() => {});
  }

  async clearProgress(jobId: string): Promise<void> {
    await this.redis.del(progressKey(this.prefix, jobId)).catch(() => 0);
  }

  /** The jobs' progress snapshots (undefined where there is none, or Redis does not answer). */
  async readProgress(jobIds: string[]): Promise<(ProgressSnapshot | undefined)[]> {
    if (!jobIds.length) return [];
    try {
      const values = await this.redis.mget(...jobIds.map((id) => progressKey(this.prefix, id)));
      return values.map((v) => (v ? (JSON.parse(v) as ProgressSnapshot) : undefined));
    } catch {
      return jobIds.map(() => undefined);
    }
  }
}

/**
 * Measures a running attempt's pace and reports it: the progress key at most every
 * PROGRESS_KEY_INTERVAL_MS, a progress event at most every PROGRESS_EVENT_INTERVAL_MS. Writes are
 * not awaited, and one at a time: a slow Redis skips reports, it never holds up a batch.
 */
export class ProgressReporter {
  private rate = 0;
  private lastBatchAt: number;
  private epochStartedAt: number;
  private rowsThisEpoch = 0;
  /** Wall time of the epochs this attempt finished, validation and checkpoint included. */
  private epochSeconds: number[] = [];
  private lastKeyAt = 0;
  private lastEventAt = 0;
  private writing = false;

  constructor(
    private readonly events: JobEventPublisher,
    private readonly jobId: string,
    private readonly plan: { epochs: number; trainRows: number; startedAt: number },
    private readonly now: () => number = Date.now,
  ) {
    this.lastBatchAt = this.epochStartedAt = now();
  }

  batch(epoch: number, batch: number, batches: number, rows: number): void {
    const t = this.now();
    const seconds = Math.max((t - this.lastBatchAt) / 1000, 1e-6);
    // Smoothed over a few seconds of batches, however long a batch is.
    const weight = 1 - Math.exp(-seconds / 3);
    this.rate = this.rate === 0 ? rows / seconds : this.rate + weight * (rows / seconds - this.rate);
    this.lastBatchAt = t;
    this.rowsThisEpoch += rows;
    if (this.writing || t - this.lastKeyAt < PROGRESS_KEY_INTERVAL_MS) return;
    const progress = this.progress(epoch, batch, batches, t);
    const withEvent = t - this.lastEventAt >= PROGRESS_EVENT_INTERVAL_MS;
    this.lastKeyAt = t;
    if (withEvent) this.lastEventAt = t;
    this.writing = true;
    const snapshot: ProgressSnapshot = { epoch: progress.epoch, batch, batches, samplesPerSecond: progress.samplesPerSecond!, remainingSeconds: progress.remainingSeconds!, at: t };
    void Promise.all([this.events.setProgress(this.jobId, snapshot), withEvent ? this.events.publish(this.jobId, { type: "progress", data: progress }) : null]).finally(() => (this.writing = false));
  }

  /** An epoch ended (its metrics and checkpoint stored): its wall time paces the rest. */
  epochEnd(): void {
    const t = this.now();
    this.epochSeconds.push((t - this.epochStartedAt) / 1000);
    this.epochStartedAt = this.lastBatchAt = t;
    this.rowsThisEpoch = 0;
  }

  /** Progress in the epoch under way (`epoch`, 1-based) after `batch` of `batches`. */
  progress(epoch: number, batch: number, batches: number, t = this.now()): Progress {
    const { epochs, trainRows, startedAt } = this.plan;
    const rate = this.rate || 1e-9;
    // Time beyond the batches themselves (validation, checkpoint), as the finished epochs measured it.
    const recent = this.epochSeconds.slice(-3);
    const perEpoch = recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : trainRows / rate;
    const overhead = Math.max(0, perEpoch - trainRows / rate);
    const thisEpoch = Math.max(0, trainRows - this.rowsThisEpoch) / rate + overhead;
    return {
      epoch: epoch - 1,
      epochs,
      batch,
      batches,
      samplesPerSecond: round(this.rate),
      elapsedSeconds: round((t - startedAt) / 1000),
      remainingSeconds: round(thisEpoch + Math.max(0, epochs - epoch) * perEpoch),
    };
  }
}

const round = (x: number) => Math.round(x * 100) / 100;

const STREAM_ID = /^\d{1,20}-\d{1,20}$/;

const EVENT_TYPES = new Set<string>(jobEventSchema.options.map((o) => o.shape.type.value));

/**
 * Stream entry fields [k1, v1, k2, v2, ...] as an event, or undefined if they are not one
 * (skipped). The data passes as written (publishers are typed by the schemas): fields a newer
 * worker adds reach clients, and one unexpected value never hides a job's final event.
 */
export function decodeEntry(fields: string[]): JobEvent | undefined {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
  if (!EVENT_TYPES.has(f.type)) return undefined;
  try {
    const data: unknown = JSON.parse(f.data ?? "null");
    if (typeof data !== "object" || data === null || Array.isArray(data)) return undefined;
    return { type: f.type, data } as JobEvent;
  } catch {
    return undefined;
  }
}

/** One SSE frame. JSON has no raw newlines, so the data is one line. */
export const sseFrame = (event: string, data: unknown, id?: string) => `${id ? `id: ${id}\n` : ""}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

/** What the reader asks Postgres: whether the job has ended, and how (its final status event, and when it finished). */
export type SettledLookup = () => Promise<{ event: StatusEvent; finishedAt: number } | null>;

/**
 * Serves job event streams to SSE clients. Each client gets its own Redis connection, because it
 * blocks in XREAD and a blocked connection can do nothing else; it is closed when the client goes.
 */
export class JobEventReader {
  private readonly streams = new Set<{ stop(): void }>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly publisher: JobEventPublisher,
    private readonly opts: { heartbeatMs?: number; graceMs?: number } = {},
  ) {}

  /**
   * The job's events after `lastEventId` (all of them without one) as SSE text, ending after the
   * final status; or null when the job has ended and the client has already seen its final event
   * (answer 204, which tells EventSource to stop reconnecting). Throws when Redis does not answer.
   */
  async open(jobId: string, lastEventId: string | undefined, settled: SettledLookup): Promise<Readable | null> {
    const key = eventStreamKey(this.prefix, jobId);
    const conn = this.redis.duplicate({ connectionName: `${this.prefix}:sse:${jobId}`, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 5000 });
    conn.on("error", () => {});
    try {
      await conn.connect();
    } catch (err) {
      conn.disconnect();
      throw err;
    }
    let cursor = lastEventId && STREAM_ID.test(lastEventId) ? lastEventId : "0-0";
    try {
      if (cursor !== "0-0" && (await settled()) && !(await conn.xrange(key, `(${cursor}`, "+", "COUNT", 1)).length && (await this.finalAtOrBefore(conn, key, cursor))) {
        conn.disconnect();
        return null;
      }
    } catch (err) {
      conn.disconnect();
      throw err;
    }

    const heartbeatMs = this.opts.heartbeatMs ?? HEARTBEAT_MS;
    const graceMs = this.opts.graceMs ?? FINAL_GRACE_MS;
    let stopped = false;
    const handle = {
      stop: () => {
        stopped = true;
        // Interrupts a blocked XREAD: it rejects, and the stream ends.
        conn.disconnect();
      },
    };
    this.streams.add(handle);
    const publisher = this.publisher;
    const self = this;

    async function* frames(): AsyncGenerator<string> {
      // Sent at once, so that the headers go out; and how long EventSource waits to reconnect.
      yield "retry: 2000\n\n";
      // The first read does not wait: a job that has ended and whose events are gone (expired, lost)
      // gets its end from Postgres at once.
      let block = 0;
      try {
        while (!stopped) {
          const res = block > 0 ? await conn.xread("COUNT", 100, "BLOCK", block, "STREAMS", key, cursor) : await conn.xread("COUNT", 100, "STREAMS", key, cursor);
          if (res?.length) {
            for (const [id, fields] of res[0][1]) {
              cursor = id;
              const event = decodeEntry(fields);
              if (!event) continue;
              yield sseFrame(event.type, event.data, id);
              if (isFinal(event)) {
                yield sseFrame("end", { status: (event.data as StatusEvent).status });
                return;
              }
            }
            continue;
          }
          // Quiet: keep the connection, and see whether the job ended without its final event
          // reaching the stream (an outage lost it, or the worker's host recorded a failure).
          if (block > 0) yield ": ping\n\n";
          const ended = await settled();
          if (!ended) {
            block = heartbeatMs;
          } else if (await self.finalAtOrBefore(conn, key, cursor)) {
            yield sseFrame("end", { status: ended.event.status });
            return;
          } else if (Date.now() - ended.finishedAt >= graceMs) {
            // Written to the stream, so that every replica and every reconnect sees the same id.
            if (!(await publisher.publish(jobId, { type: "status", data: ended.event }))) return;
            block = 1;
          } else {
            block = Math.max(1, Math.min(heartbeatMs, graceMs - (Date.now() - ended.finishedAt)));
          }
        }
      } catch {
        // Redis went away or the client did: end the response; a client reconnects with its last id.
      } finally {
        self.streams.delete(handle);
        conn.disconnect();
      }
    }

    const stream = Readable.from(frames(), { objectMode: false });
    stream.on("close", handle.stop);
    return stream;
  }

  /** Whether the stream holds a final status at or before `cursor` (the client has seen the end). */
  private async finalAtOrBefore(conn: Redis, key: string, cursor: string): Promise<boolean> {
    if (cursor === "0-0") return false;
    // The final status is among the last entries: nothing but a late duplicate follows it.
    const last = (await conn.xrevrange(key, cursor, "-", "COUNT", 20)) as [string, string[]][];
    return last.some(([, fields]) => {
      const e = decodeEntry(fields);
      return e !== undefined && isFinal(e);
    });
  }

  /** Ends every open stream (the app is closing): each response ends, and its clients reconnect elsewhere. */
  closeAll(): void {
    for (const h of this.streams) h.stop();
  }
}
