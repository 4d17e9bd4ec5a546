-- CreateEnum
CREATE TYPE "StudyStatus" AS ENUM ('running', 'succeeded', 'failed', 'cancelled');

-- AlterEnum
ALTER TYPE "JobStatus" ADD VALUE 'paused';

-- AlterTable
ALTER TABLE "TrainingJob" ADD COLUMN     "continuedFromId" UUID,
ADD COLUMN     "pauseRequested" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "studyId" UUID,
ADD COLUMN     "trial" INTEGER,
ADD COLUMN     "trialParams" JSONB,
ADD COLUMN     "waitingReason" TEXT;

-- AlterTable
ALTER TABLE "Checkpoint" ADD COLUMN     "partial" JSONB;

-- CreateTable
CREATE TABLE "Study" (
    "id" UUID NOT NULL,
    "tenantId" UUID NOT NULL,
    "request" JSONB NOT NULL,
    "status" "StudyStatus" NOT NULL DEFAULT 'running',
    "bestJobId" UUID,
    "error" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "Study_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Study_tenantId_createdAt_idx" ON "Study"("tenantId", "createdAt");

-- CreateIndex
CREATE INDEX "TrainingJob_studyId_idx" ON "TrainingJob"("studyId");

-- AddForeignKey
ALTER TABLE "TrainingJob" ADD CONSTRAINT "TrainingJob_studyId_fkey" FOREIGN KEY ("studyId") REFERENCES "Study"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Study" ADD CONSTRAINT "Study_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;
