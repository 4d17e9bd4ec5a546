-- AlterTable
ALTER TABLE "TrainingJob" ADD COLUMN     "attemptsWithoutProgress" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "claimEpoch" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "lastInterruption" TEXT;
