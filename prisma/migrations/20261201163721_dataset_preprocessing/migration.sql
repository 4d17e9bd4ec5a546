-- AlterTable
ALTER TABLE "Dataset" ADD COLUMN     "preprocessing" JSONB;
