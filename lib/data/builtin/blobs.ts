// Gaussian blobs, as scikit-learn's make_blobs draws them: k centres uniform in a box, and
// isotropic Gaussian points around each.
import { classificationDataset, defineBuiltin, idClasses, rowsParam, seedParam } from "./builtin-def.ts";
import { seededRandom } from "../../random/seeded-random.ts";

const BOX = 10;

export const blobs = defineBuiltin({
  name: "blobs",
  title: "Gaussian blobs",
  description:
    `k classes of points in d dimensions. Each class has a centre drawn uniformly in [−${BOX}, ${BOX}]^d, and its points are that centre plus Gaussian noise of standard deviation \`spread\` in every dimension. ` +
    "Row i belongs to class i mod k. Nearly linearly separable at the default spread; raise it to make the blobs overlap.",
  type: "generator",
  source: "synthetic: isotropic Gaussian blobs, as scikit-learn's make_blobs",
  licence: "none needed (generated)",
  task: "classification",
  kind: "tabular",
  params: {
    rows: rowsParam(2, 100_000, 300),
    classes: { type: "integer", min: 2, max: 20, default: 3, description: "Blobs, one class each." },
    dimensions: { type: "integer", min: 1, max: 100, default: 2, description: "Features per row." },
    spread: { type: "number", min: 0, max: 10, default: 1, description: "Standard deviation of each blob." },
    seed: seedParam,
  },
  shape: ({ rows, classes, dimensions }) => ({ rows, inputShape: [dimensions], targetShape: [1], classes: idClasses(classes) }),
  build(name, { rows, classes, dimensions, spread, seed }) {
    const random = seededRandom(seed);
    const centres = Float64Array.from({ length: classes * dimensions }, () => random.between(-BOX, BOX));
    const features = new Float32Array(rows * dimensions);
    const targets = new Float32Array(rows);
    for (let i = 0; i < rows; i++) {
      const c = i % classes;
      for (let j = 0; j < dimensions; j++) features[i * dimensions + j] = centres[c * dimensions + j] + spread * random.gaussian();
      targets[i] = c;
    }
    const featureNames = Array.from({ length: dimensions }, (_, j) => `x${j + 1}`);
    return classificationDataset({ name, rows, inputShape: [dimensions], kind: "tabular", featureNames, classes: idClasses(classes), features, targets });
  },
});
