// Loaded first in every sandboxed training child (training-worker.ts passes it with --import), so
// that it holds from the child's first moment, before BullMQ hands it the processor file: a child
// whose worker died while it was still starting had no handler yet and idled on as an orphan.
// If the worker process dies (SIGKILL, OOM), BullMQ leaves this child running. Stop at once: the
// job's lock will expire and another worker resumes it from its last checkpoint, and two
// processes must never train the same job.
process.on("disconnect", () => process.exit(1));
// The same when something fails after the parent is gone. BullMQ's own uncaughtException handler
// (main-base.js) awaits a message to the parent before it exits; with no parent that send rejects,
// the rejection is unhandled again, and the loop never yields to the 'disconnect' above (seen: an
// orphaned child spinning at full CPU, its memory growing, 16 minutes after its test ended).
// While the parent is there, an unhandled rejection goes on to BullMQ's handler as before.
process.on("unhandledRejection", (reason) => {
  if (!process.connected) process.exit(1);
  throw reason;
});
process.on("uncaughtException", () => {
  if (!process.connected) process.exit(1);
});
process.stdout.on("error", () => {});
process.stderr.on("error", () => {});
// A terminal's Ctrl-C (SIGINT) reaches the whole process group, this child included, and an
// operator's SIGTERM may too: the worker decides how its jobs stop (a checkpoint at the next batch,
// then back to the queue), so the child does not die of them; it exits with its parent.
process.on("SIGINT", () => {});
process.on("SIGTERM", () => {});
