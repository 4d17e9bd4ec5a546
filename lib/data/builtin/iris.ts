// Fisher's Iris, from data/iris.csv (see data/README.md for its source), read the way a CSV upload
// is: the same parser, so the imported dataset is exactly what uploading the file gives.
import { readFile } from "node:fs/promises";
import { formatFor } from "../formats/index.ts";
import { defineBuiltin, numericColumns } from "./builtin-def.ts";

const IRIS_CSV = new URL("../../../data/iris.csv", import.meta.url);

export const iris = defineBuiltin({
  name: "iris",
  title: "Iris flowers",
  description: "150 flowers, 4 measurements in cm (sepal length and width, petal length and width) and their species, 50 of each of 3. The classic first classifier: an MLP reaches about 0.95 accuracy.",
  type: "dataset",
  source: "R. A. Fisher (1936), via the UCI Machine Learning Repository; shipped as data/iris.csv",
  licence: "CC BY 4.0",
  task: "classification",
  kind: "tabular",
  params: {},
  shape: () => ({ rows: 150, inputShape: [4], targetShape: [1], classes: ["setosa", "versicolor", "virginica"] }),
  async build(name) {
    const parsed = await formatFor("text/csv")!.parse(await readFile(IRIS_CSV, "utf8"), { name, label: "species", task: "classification" });
    return {
      ...parsed,
      inputs: parsed.inputs.map((input) => ({ ...input, kind: input.kind ?? "tabular", columns: input.columns ?? numericColumns(parsed.featureNames) })),
    };
  },
});
