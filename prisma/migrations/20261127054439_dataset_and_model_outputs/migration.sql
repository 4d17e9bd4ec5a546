-- Several outputs: a dataset's sets of labels and a model's output shapes, by output name.
-- Existing datasets have one set of labels, named "output"; existing models keep their first
-- output's shape, under the spec's output name ("output" for a sequential spec).
ALTER TABLE "Dataset" ADD COLUMN     "outputs" JSONB NOT NULL DEFAULT '[]';
UPDATE "Dataset"
SET "outputs" = jsonb_build_array(jsonb_build_object(
  'name', 'output', 'task', "task"::text, 'classes', to_jsonb(COALESCE("classes", ARRAY[]::TEXT[])),
  'shape', to_jsonb(COALESCE("targetShape", ARRAY["targetSize"]))));
ALTER TABLE "Dataset" ALTER COLUMN "outputs" DROP DEFAULT;

ALTER TABLE "Model" ADD COLUMN     "outputs" JSONB NOT NULL DEFAULT '[]';
UPDATE "Model"
SET "outputs" = jsonb_build_array(jsonb_build_object(
  'name', COALESCE("spec"->'outputs'->>0, 'output'),
  'shape', (SELECT jsonb_agg(CASE WHEN d < 0 THEN NULL ELSE d END ORDER BY i) FROM unnest("outputShape") WITH ORDINALITY AS u(d, i))));
ALTER TABLE "Model" ALTER COLUMN "outputs" DROP DEFAULT;
