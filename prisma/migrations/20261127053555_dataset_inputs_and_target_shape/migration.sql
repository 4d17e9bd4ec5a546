-- Datasets with several named inputs (siamese pairs) and shaped targets (per-pixel masks).
-- Existing datasets have one input, named "input", and one target value per row.
ALTER TABLE "Dataset" ADD COLUMN     "inputs" JSONB NOT NULL DEFAULT '[]',
ADD COLUMN     "targetShape" INTEGER[];

UPDATE "Dataset"
SET "inputs" = jsonb_build_array(jsonb_build_object('name', 'input', 'shape', to_jsonb("inputShape"))),
    "targetShape" = ARRAY["targetSize"];

ALTER TABLE "Dataset" ALTER COLUMN "inputs" DROP DEFAULT;
