// Works around a BullMQ bug (seen in 6.7.0): a sandboxed child that dies while it is starting
// leaves its job's processor waiting forever. The job stays active, its lock keeps being renewed,
// no child exists, and the worker's concurrency slot is taken for good (issue 7 item 7).
//
// The sequence, in node_modules/bullmq/dist/cjs/classes:
//  1. sandbox.js `process()` calls `childPool.retain(file)`; with no free child, child-pool.js
//     `retain()` creates a `Child`, registers `child.on('exit', this.remove.bind(this, child))` and
//     awaits `child.init()`. sandbox.js attaches its own 'exit' handler (which fails the job) only
//     after retain resolves, so nothing of the job watches the child while it starts.
//  2. child.js `init()` forks main.js and forwards the ChildProcess's 'exit', 'message' and 'close'
//     to the Child; `initChild()` sends Init and waits for InitCompleted / InitFailed ('message')
//     or for 'close' (onCloseHandler) — the only way it learns that the child died.
//  3. The child dies while it is still importing the processor file. Node emits 'exit' before
//     'close' (close waits for the stdio pipes). The Child's 'exit' forwarder, after emitting
//     'exit', calls `parent.removeAllListeners()` and `this.removeAllListeners()`: the ChildProcess's
//     'close' is no longer forwarded and initChild's onCloseHandler is gone.
//  4. So `initChild()`, `init()`, `retain()` and the processor promise never settle.
//
// The guard: when the pool's exit listener (`remove`, step 1) runs for a child that has exited, it
// emits the 'close' that init waits for, before the listeners are dropped. BullMQ's own start-up
// failure path then runs: init rejects ("Error initializing child: ... signal SIGKILL"), retain
// kills and forgets the child, the job fails this attempt and is retried (from its checkpoint) by
// its `attempts`, and the worker's slot is free again. A child that already started has no 'close'
// listener, so nothing changes for it (its death still fails the job through sandbox.js).
import type { EventEmitter } from "node:events";
import type { Worker } from "bullmq";

/** The parts of BullMQ's `Child` and `ChildPool` (both private to the Worker) the guard relies on. */
interface SandboxChild extends EventEmitter {
  readonly pid: number;
  readonly exitCode: number | null;
  readonly signalCode: string | null;
}
interface SandboxChildPool {
  remove(child: SandboxChild): void;
}

let guardInstalled = false;

/**
 * Installs the guard on a Worker built with a processor file. Call it right after `new Worker`,
 * before the first job forks a child. Returns false (and logs) if BullMQ no longer has the shape
 * the guard expects.
 */
export function guardSandboxStartup(worker: Worker<any>, log: (msg: string) => void): boolean {
  const pool = (worker as unknown as { childPool?: SandboxChildPool }).childPool;
  if (!pool || typeof pool.remove !== "function") {
    log("warning: BullMQ's child pool is not where expected; a child dying while it starts may wedge a job");
    return false;
  }
  // When the child dies so early that sending it Init already failed (EPIPE), initChild() has
  // rejected with that error and no one awaits its Init promise any more; the 'close' emitted below
  // then rejects that orphaned promise, and an unhandled rejection would end this worker (seen in
  // the chaos test, seed 868412031). That one rejection is expected and harmless: the attempt has
  // failed already and is retried. Anything else still ends the process, as by default.
  if (!guardInstalled) {
    guardInstalled = true;
    process.on("unhandledRejection", (reason) => {
      if (reason instanceof Error && /^Error initializing child: /.test(reason.message)) {
        log(`a sandboxed child's start failed twice over (${reason.message}); its attempt was already failed and is retried`);
        return;
      }
      throw reason;
    });
  }
  const remove = pool.remove;
  pool.remove = function guardedRemove(this: SandboxChildPool, child: SandboxChild) {
    remove.call(this, child);
    // remove() also runs when the pool is about to kill a live child: only an exit ends a start-up.
    const exited = child.exitCode !== null || child.signalCode !== null;
    if (!exited || child.listenerCount("close") === 0) return;
    log(`sandboxed child ${child.pid} died while starting (exit code ${child.exitCode}, signal ${child.signalCode}); failing its start so the job is retried`);
    child.emit("close", child.exitCode, child.signalCode);
  };
  return true;
}
