-- AlterTable
ALTER TABLE "Model" ADD COLUMN     "defaultAlias" TEXT;

-- AlterTable
-- Existing versions get their size from their stored weights before the column becomes NOT NULL.
ALTER TABLE "ModelVersion" ADD COLUMN     "sizeBytes" INTEGER,
ALTER COLUMN "jobId" DROP NOT NULL;
UPDATE "ModelVersion" SET "sizeBytes" = octet_length("weights");
ALTER TABLE "ModelVersion" ALTER COLUMN "sizeBytes" SET NOT NULL;

-- CreateTable
CREATE TABLE "ModelAlias" (
    "modelId" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "versionId" UUID NOT NULL,
    "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ModelAlias_pkey" PRIMARY KEY ("modelId","name")
);

-- CreateIndex
CREATE INDEX "ModelAlias_versionId_idx" ON "ModelAlias"("versionId");

-- AddForeignKey
ALTER TABLE "ModelAlias" ADD CONSTRAINT "ModelAlias_modelId_fkey" FOREIGN KEY ("modelId") REFERENCES "Model"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ModelAlias" ADD CONSTRAINT "ModelAlias_versionId_fkey" FOREIGN KEY ("versionId") REFERENCES "ModelVersion"("id") ON DELETE NO ACTION ON UPDATE CASCADE;
