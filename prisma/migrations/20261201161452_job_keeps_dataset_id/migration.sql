-- A training job keeps the id of the dataset it trained on as history, without a foreign key:
-- deleting a dataset (refused while a queued or running job uses it) no longer cascades to its
-- jobs and to the model versions they registered, which hold their own weights and preprocessing.

-- DropForeignKey
ALTER TABLE "TrainingJob" DROP CONSTRAINT "TrainingJob_datasetId_fkey";

-- CreateIndex: finding the jobs that use a dataset.
CREATE INDEX "TrainingJob_datasetId_idx" ON "TrainingJob"("datasetId");
