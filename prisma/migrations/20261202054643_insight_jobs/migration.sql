-- CreateTable
CREATE TABLE "InsightJob" (
    "id" UUID NOT NULL,
    "tenantId" UUID NOT NULL,
    "versionId" UUID NOT NULL,
    "kind" TEXT NOT NULL,
    "datasetId" UUID NOT NULL,
    "request" JSONB NOT NULL,
    "status" "JobStatus" NOT NULL DEFAULT 'queued',
    "progress" DOUBLE PRECISION NOT NULL DEFAULT 0,
    "result" JSONB,
    "error" TEXT,
    "cancelRequested" BOOLEAN NOT NULL DEFAULT false,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "InsightJob_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "InsightJob_tenantId_createdAt_idx" ON "InsightJob"("tenantId", "createdAt");

-- CreateIndex
CREATE INDEX "InsightJob_datasetId_idx" ON "InsightJob"("datasetId");

-- CreateIndex
CREATE INDEX "InsightJob_versionId_idx" ON "InsightJob"("versionId");

-- AddForeignKey
ALTER TABLE "InsightJob" ADD CONSTRAINT "InsightJob_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "InsightJob" ADD CONSTRAINT "InsightJob_versionId_fkey" FOREIGN KEY ("versionId") REFERENCES "ModelVersion"("id") ON DELETE CASCADE ON UPDATE CASCADE;
