// Two interleaved spirals (Lang and Witbrock, 1988): a classic hard case for a small network,
// since the classes wind around each other and no few straight cuts separate them.
import { classificationDataset, defineBuiltin, rowsParam, seedParam } from "./builtin-def.ts";
import { seededRandom } from "../../random/seeded-random.ts";

export const spirals = defineBuiltin({
  name: "spirals",
  title: "Two spirals",
  description:
    "Points (x, y) on two interleaved spirals, classes 0 and 1, alternating row by row. Point j of a spiral is at radius 0.1 + 0.9·t and angle 2π·turns·t (+π for class 1), " +
    "t = j/(n−1) evenly spaced, plus Gaussian noise of standard deviation `noise` on each coordinate. Needs a non-linear model (an MLP of a few dozen units).",
  type: "generator",
  source: "synthetic: the two-spirals task (K. J. Lang and M. J. Witbrock, 1988)",
  licence: "none needed (generated)",
  task: "classification",
  kind: "tabular",
  params: {
    rows: rowsParam(4, 100_000, 400),
    noise: { type: "number", min: 0, max: 1, default: 0.05, description: "Standard deviation of the Gaussian noise on each coordinate (the spirals reach radius 1)." },
    turns: { type: "number", min: 0.25, max: 5, default: 1.5, description: "Turns of each spiral." },
    seed: seedParam,
  },
  shape: ({ rows }) => ({ rows, inputShape: [2], targetShape: [1], classes: ["0", "1"] }),
  build(name, { rows, noise, turns, seed }) {
    const random = seededRandom(seed);
    const features = new Float32Array(rows * 2);
    const targets = new Float32Array(rows);
    const perClass = [Math.ceil(rows / 2), Math.floor(rows / 2)];
    for (let i = 0; i < rows; i++) {
      const c = i % 2;
      const t = perClass[c] > 1 ? Math.floor(i / 2) / (perClass[c] - 1) : 0;
      const r = 0.1 + 0.9 * t;
      const angle = 2 * Math.PI * turns * t + c * Math.PI;
      features[2 * i] = r * Math.cos(angle) + noise * random.gaussian();
      features[2 * i + 1] = r * Math.sin(angle) + noise * random.gaussian();
      targets[i] = c;
    }
    return classificationDataset({ name, rows, inputShape: [2], kind: "tabular", featureNames: ["x", "y"], classes: ["0", "1"], features, targets });
  },
});
