// XOR: the problem a single-layer perceptron cannot solve (Minsky and Papert, 1969). With 4 rows
// and no noise it is the truth table itself; more rows repeat the corners, and noise turns each
// corner into a Gaussian cloud.
import { classificationDataset, defineBuiltin, rowsParam, seedParam } from "./builtin-def.ts";
import { seededRandom } from "../../random/seeded-random.ts";

const CORNERS = [[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0]] as const;

export const xor = defineBuiltin({
  name: "xor",
  title: "XOR",
  description:
    "Two inputs x1, x2 and their exclusive or (classes 0 and 1). Row i is corner i mod 4 of (0,0), (0,1), (1,0), (1,1), plus Gaussian noise of standard deviation `noise` on each input. " +
    "The defaults (4 rows, no noise) are the truth table; e.g. 400 rows and noise 0.15 give four noisy clouds. Not linearly separable: the perceptron fails, an MLP with a hidden layer learns it.",
  type: "generator",
  source: "synthetic: the XOR truth table (Minsky and Papert, Perceptrons, 1969)",
  licence: "none needed (generated)",
  task: "classification",
  kind: "tabular",
  params: {
    rows: rowsParam(4, 100_000, 4),
    noise: { type: "number", min: 0, max: 1, default: 0, description: "Standard deviation of the Gaussian noise added to each input." },
    seed: seedParam,
  },
  shape: ({ rows }) => ({ rows, inputShape: [2], targetShape: [1], classes: ["0", "1"] }),
  build(name, { rows, noise, seed }) {
    const random = seededRandom(seed);
    const features = new Float32Array(rows * 2);
    const targets = new Float32Array(rows);
    for (let i = 0; i < rows; i++) {
      const [a, b, label] = CORNERS[i % 4];
      features[2 * i] = a + (noise > 0 ? noise * random.gaussian() : 0);
      features[2 * i + 1] = b + (noise > 0 ? noise * random.gaussian() : 0);
      targets[i] = label;
    }
    return classificationDataset({ name, rows, inputShape: [2], kind: "tabular", featureNames: ["x1", "x2"], classes: ["0", "1"], features, targets });
  },
});
