// Dynamic batching: concurrent requests for one model version (and one row shape) join one batch,
// which becomes ready when it holds maxBatchSize rows, when its oldest request has waited
// maxDelayMs, or when its thread goes idle, whichever comes first; a request never waits longer
// than the delay for company, and never waits at all while its thread has nothing to do. A ready
// batch that still waits for its thread keeps taking requests up to maxBatchSize: they would wait
// for the thread anyway, and join the forward pass it is about to run.
import type { Ran, TensorData } from "./messages.ts";

export interface PendingRequest {
  inputs: TensorData[];
  rows: number;
  resolve: (ran: Ran) => void;
  reject: (err: Error) => void;
}

export class Batch {
  readonly requests: PendingRequest[] = [];
  rows = 0;
  state: "open" | "ready" | "sent" = "open";
  timer?: NodeJS.Timeout;
  /** When it was made: the moment its first request arrived. */
  readonly createdAt = performance.now();

  constructor(
    readonly versionId: string,
    readonly key: string,
    readonly maxRows: number,
  ) {}

  add(req: PendingRequest): void {
    this.requests.push(req);
    this.rows += req.rows;
  }
}

export interface BatchLimits {
  maxBatchSize: number;
  /** 0: no batching, every request is a forward pass of its own. */
  maxDelayMs: number;
}

export class Batcher {
  /** The batch of each key that still takes requests. */
  private readonly open = new Map<string, Batch>();
  /** Every batch not yet sent to a thread (open or ready). */
  private readonly unsent = new Set<Batch>();
  /** Rows in `unsent`, kept as requests come and batches go (checked on every request). */
  private unsentRows = 0;

  constructor(private readonly onReady: (batch: Batch) => void) {}

  /**
   * `idle`: the version's thread has nothing to do. Then a request with no batch to join goes at
   * once: waiting for company would only add the delay to its latency (at low load, every
   * request's). Under load the thread is busy, and requests gather while it works.
   */
  add(versionId: string, req: PendingRequest, limits: BatchLimits, idle = false): void {
    const key = `${versionId}|${req.inputs.map((i) => i.shape.slice(1).join("x")).join(",")}`;
    // A request as large as a batch, or with batching off, is a forward pass of its own: it is
    // already an efficient batch, and splitting it would cost copies for no gain but fairness.
    if (limits.maxDelayMs <= 0 || limits.maxBatchSize <= 1 || req.rows >= limits.maxBatchSize || (idle && !this.open.has(key))) {
      const alone = new Batch(versionId, key, req.rows);
      alone.add(req);
      this.unsent.add(alone);
      this.unsentRows += req.rows;
      this.markReady(alone);
      return;
    }
    let batch = this.open.get(key);
    if (batch && batch.rows + req.rows > batch.maxRows) {
      // It will not take this request: it is as full as it gets.
      this.open.delete(key);
      if (batch.state === "open") this.markReady(batch);
      batch = undefined;
    }
    if (!batch) {
      batch = new Batch(versionId, key, limits.maxBatchSize);
      this.open.set(key, batch);
      this.unsent.add(batch);
      const b = batch;
      b.timer = setTimeout(() => this.markReady(b), limits.maxDelayMs);
    }
    batch.add(req);
    this.unsentRows += req.rows;
    if (batch.rows >= batch.maxRows) {
      this.open.delete(key);
      if (batch.state === "open") this.markReady(batch);
    }
  }

  private markReady(batch: Batch): void {
    if (batch.state !== "open") return;
    clearTimeout(batch.timer);
    batch.state = "ready";
    this.onReady(batch);
  }

  /** Marks ready, at once, the open batches of the versions `which` picks (their thread has gone idle). */
  flush(which: (versionId: string) => boolean): void {
    for (const batch of [...this.open.values()]) {
      if (!which(batch.versionId)) continue;
      this.open.delete(batch.key);
      this.markReady(batch);
    }
  }

  /** The pool sends a batch: from now on it takes no more requests. */
  seal(batch: Batch): void {
    batch.state = "sent";
    clearTimeout(batch.timer);
    if (this.open.get(batch.key) === batch) this.open.delete(batch.key);
    if (this.unsent.delete(batch)) this.unsentRows -= batch.rows;
  }

  /** Rows waiting in batches not yet sent to a thread. */
  waitingRows(): number {
    return this.unsentRows;
  }

  /** Requests and rows waiting in batches not yet sent to a thread. */
  depth(): { requests: number; rows: number } {
    let requests = 0;
    for (const b of this.unsent) requests += b.requests.length;
    return { requests, rows: this.unsentRows };
  }

  /** Fails every request not yet sent (at shutdown). */
  drain(err: Error): void {
    for (const b of this.unsent) {
      this.seal(b);
      for (const r of b.requests) r.reject(err);
    }
    this.unsent.clear();
    this.unsentRows = 0;
    this.open.clear();
  }
}
