-- CreateTable
CREATE TABLE "ModelVersionOnnx" (
    "versionId" UUID NOT NULL,
    "status" TEXT NOT NULL,
    "opset" INTEGER NOT NULL,
    "maxRelativeError" DOUBLE PRECISION,
    "reason" TEXT,
    "model" BYTEA,
    "checkedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ModelVersionOnnx_pkey" PRIMARY KEY ("versionId")
);

-- AddForeignKey
ALTER TABLE "ModelVersionOnnx" ADD CONSTRAINT "ModelVersionOnnx_versionId_fkey" FOREIGN KEY ("versionId") REFERENCES "ModelVersion"("id") ON DELETE CASCADE ON UPDATE CASCADE;
