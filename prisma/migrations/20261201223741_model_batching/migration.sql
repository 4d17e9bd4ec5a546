-- AlterTable
ALTER TABLE "Model" ADD COLUMN     "batching" JSONB;
