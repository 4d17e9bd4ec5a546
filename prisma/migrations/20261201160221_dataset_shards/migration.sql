-- Datasets move from one bytea value to shards of rows. Every dataset already stored becomes one
-- shard holding all its rows: the one value was laid out input after input for all rows, which is
-- exactly a shard's layout.

-- CreateEnum
CREATE TYPE "DatasetStatus" AS ENUM ('uploading', 'ready');

-- AlterTable
ALTER TABLE "Dataset" ADD COLUMN     "bytes" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "contentHash" TEXT,
ADD COLUMN     "status" "DatasetStatus" NOT NULL DEFAULT 'ready';

-- CreateTable
CREATE TABLE "DatasetShard" (
    "datasetId" UUID NOT NULL,
    "index" INTEGER NOT NULL,
    "rowStart" INTEGER NOT NULL,
    "rowCount" INTEGER NOT NULL,
    "features" BYTEA NOT NULL,
    "targets" BYTEA NOT NULL,

    CONSTRAINT "DatasetShard_pkey" PRIMARY KEY ("datasetId","index")
);

-- AddForeignKey
ALTER TABLE "DatasetShard" ADD CONSTRAINT "DatasetShard_datasetId_fkey" FOREIGN KEY ("datasetId") REFERENCES "Dataset"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Backfill: one shard per stored dataset.
INSERT INTO "DatasetShard" ("datasetId", "index", "rowStart", "rowCount", "features", "targets")
SELECT "id", 0, 0, "rowCount", "features", "targets" FROM "Dataset";
UPDATE "Dataset" SET "bytes" = octet_length("features") + octet_length("targets");

ALTER TABLE "Dataset" DROP COLUMN "features",
DROP COLUMN "targets";
