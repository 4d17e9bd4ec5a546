-- AlterTable
ALTER TABLE "TrainingJob" ADD COLUMN     "pruning" JSONB;
