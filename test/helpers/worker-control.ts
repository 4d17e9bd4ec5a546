// A real worker process (workers/worker.ts) whose training child can be found and killed, for
// tests of deaths at any moment. Children are found by their parent's pid, never by name: other
// tests run workers of their own at the same time.
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { WorkerConfig } from "../../lib/config/env.ts";
import { startProcess, type Proc } from "./processes.ts";

/** Pids of a process's direct children (from /proc, as `ps --ppid` would list them). */
export function childrenOf(pid: number): number[] {
  try {
    const tasks = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
    return tasks ? tasks.split(/\s+/).map(Number) : [];
  } catch {
    return [];
  }
}

export const envOf = (config: WorkerConfig, extra: Record<string, string> = {}) => ({
  ...Object.fromEntries(Object.entries(config).map(([k, v]) => [k, String(v)])),
  ...extra,
});

export class WorkerProcess {
  proc!: Proc;

  constructor(private readonly env: Record<string, string>) {}

  async start(): Promise<this> {
    this.proc = startProcess("workers/worker.ts", this.env);
    await this.proc.waitFor(/consuming 'training'/);
    return this;
  }

  get pid(): number {
    return this.proc.child.pid!;
  }

  /** Waits for a training child that is not in `known` (a fresh fork), up to `timeoutMs`. */
  async nextChild(known: Set<number>, timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const fresh = childrenOf(this.pid).find((c) => !known.has(c));
      if (fresh) return fresh;
      await sleep(10);
    }
    throw new Error(`no new training child of worker ${this.pid} within ${timeoutMs} ms; output:\n${this.proc.output().slice(-2000)}`);
  }

  async kill(): Promise<void> {
    await this.proc.stop("SIGKILL");
    // Its children notice the parent's death (IPC disconnect) and exit; wait so none trains on.
    await sleep(200);
  }

  stop(): Promise<number | null> {
    return this.proc.stop("SIGKILL");
  }
}

export function killPid(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* already gone */
  }
}
