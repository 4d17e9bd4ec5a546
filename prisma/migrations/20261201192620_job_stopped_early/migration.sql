-- AlterTable
ALTER TABLE "TrainingJob" ADD COLUMN     "stoppedEarly" TEXT;
