-- AlterTable
ALTER TABLE "TrainingJob" ADD COLUMN     "warnings" JSONB NOT NULL DEFAULT '[]';

-- CreateTable
CREATE TABLE "EpochDiagnostic" (
    "jobId" UUID NOT NULL,
    "epoch" INTEGER NOT NULL,
    "data" JSONB NOT NULL,

    CONSTRAINT "EpochDiagnostic_pkey" PRIMARY KEY ("jobId","epoch")
);

-- AddForeignKey
ALTER TABLE "EpochDiagnostic" ADD CONSTRAINT "EpochDiagnostic_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "TrainingJob"("id") ON DELETE CASCADE ON UPDATE CASCADE;
