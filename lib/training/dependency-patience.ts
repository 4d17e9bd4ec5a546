// A running job outlives a short Postgres outage: an unreachable database is not the job's fault,
// so the attempt waits (with backoff, up to a bound) and goes on where it was, instead of failing
// and burning its retries while the database is still down. What it waited for is remembered, so
// the job can say so once the database answers again.
import { setTimeout as sleep } from "node:timers/promises";
import { isDependencyDown } from "../errors.ts";

export class DependencyPatience {
  private waitedMs = 0;
  private waits = 0;

  constructor(
    /** How long one call may wait in all before its error is thrown. */
    private readonly maxWaitMs: number,
    private readonly log: (msg: string) => void = () => {},
  ) {}

  /** Runs `fn`, retrying while it fails because a dependency is down, for up to maxWaitMs. */
  async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const started = Date.now();
    let delay = 200;
    let first = true;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        const elapsed = Date.now() - started;
        if (!isDependencyDown(err) || elapsed >= this.maxWaitMs) throw err;
        if (first) {
          first = false;
          this.waits++;
          this.log(`${what}: the database is unreachable (${(err as Error).message.split("\n")[0].slice(0, 200)}); waiting up to ${Math.round(this.maxWaitMs / 1000)} s`);
        }
        const pause = Math.min(delay, this.maxWaitMs - elapsed);
        await sleep(pause);
        this.waitedMs += pause;
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  /** What was waited for since the last call, as a sentence for the job (undefined: nothing). */
  takeReport(epoch: number, attempt: number): string | undefined {
    if (!this.waits) return undefined;
    const report = `attempt ${attempt} waited ${(this.waitedMs / 1000).toFixed(1)} s for an unreachable database (${this.waits} outage${this.waits > 1 ? "s" : ""}) and went on at epoch ${epoch}`;
    this.waitedMs = 0;
    this.waits = 0;
    return report;
  }
}
