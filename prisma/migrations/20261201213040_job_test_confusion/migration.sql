-- AlterTable
ALTER TABLE "TrainingJob" ADD COLUMN     "testConfusion" JSONB;
