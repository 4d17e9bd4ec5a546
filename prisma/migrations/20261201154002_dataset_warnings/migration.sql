-- AlterTable
ALTER TABLE "Dataset" ADD COLUMN     "warnings" TEXT[] DEFAULT ARRAY[]::TEXT[];
