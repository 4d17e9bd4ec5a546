// A job's diagnostics (lib/engine/train/diagnostics.ts): one row of per-layer measurements per
// epoch, and the warnings raised so far on the job row. Written in the epoch's transaction, with
// its metrics and checkpoint, so that a resumed job never shows an epoch twice or a gap.
import type { Db, Prisma } from "../db/prisma.ts";
import type { DiagnosticWarning, EpochDiagnostics } from "../engine/train/diagnostics.ts";

export class DiagnosticsStore {
  constructor(private readonly db: Db) {}

  /** Inside the caller's transaction: an epoch's measurements, and any warnings first raised at it appended to the job's. Idempotent per epoch. */
  static async saveEpoch(tx: Prisma.TransactionClient, jobId: string, diagnostics: EpochDiagnostics, warnings: DiagnosticWarning[]): Promise<void> {
    const data = diagnostics as unknown as Prisma.InputJsonValue;
    await tx.epochDiagnostic.upsert({ where: { jobId_epoch: { jobId, epoch: diagnostics.epoch } }, create: { jobId, epoch: diagnostics.epoch, data }, update: { data } });
    if (!warnings.length) return;
    const job = await tx.trainingJob.findUnique({ where: { id: jobId }, select: { warnings: true } });
    const known = (job?.warnings as DiagnosticWarning[] | undefined) ?? [];
    // A resumed epoch raises its warnings again: keep each (kind, message) once.
    const fresh = warnings.filter((w) => !known.some((k) => k.kind === w.kind && k.message === w.message));
    if (fresh.length) await tx.trainingJob.update({ where: { id: jobId }, data: { warnings: [...known, ...fresh] as unknown as Prisma.InputJsonValue } });
  }

  /** Every epoch's measurements, in order, and the job's warnings. */
  async series(jobId: string): Promise<{ epochs: EpochDiagnostics[]; warnings: DiagnosticWarning[] }> {
    const [rows, job] = await Promise.all([
      this.db.epochDiagnostic.findMany({ where: { jobId }, orderBy: { epoch: "asc" }, select: { data: true } }),
      this.db.trainingJob.findUnique({ where: { id: jobId }, select: { warnings: true } }),
    ]);
    return { epochs: rows.map((r) => r.data as unknown as EpochDiagnostics), warnings: (job?.warnings as DiagnosticWarning[] | undefined) ?? [] };
  }
}
