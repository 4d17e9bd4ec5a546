// Noisy sine waves to tell apart by frequency: a sequence classification task for the zoo's
// recurrent classifiers (simple_rnn, lstm, gru take [time, features] and answer a class), rather
// than next-value regression, which none of the zoo's heads is built for.
import { ValidationError } from "../../errors.ts";
import { classificationDataset, defineBuiltin, rowsParam, seedParam } from "./builtin-def.ts";
import { seededRandom } from "../../random/seeded-random.ts";

export const sine = defineBuiltin({
  name: "sine",
  title: "Noisy sine waves by frequency",
  description:
    "Sequences [length, 1] of x_t = A·sin(2π·f·t/length + φ) + noise, labelled by f, the number of whole cycles in the sequence: class \"1\" is one cycle, … class \"k\" is k cycles (row i has i mod k + 1). " +
    "Amplitude A is drawn uniformly in [0.5, 1.5] and phase φ in [0, 2π) per row, so only the frequency tells the classes apart; noise is Gaussian with standard deviation `noise`. " +
    "Train with the zoo's simple_rnn, lstm or gru at inputShape=length,1 and classes=k.",
  type: "generator",
  source: "synthetic: sinusoids of 1 to k cycles per sequence",
  licence: "none needed (generated)",
  task: "classification",
  kind: "sequence",
  params: {
    rows: rowsParam(2, 100_000, 500),
    length: { type: "integer", min: 4, max: 1000, default: 50, description: "Time steps per sequence." },
    classes: { type: "integer", min: 2, max: 10, default: 2, description: "Frequencies to tell apart: 1 to `classes` cycles per sequence." },
    noise: { type: "number", min: 0, max: 2, default: 0.1, description: "Standard deviation of the Gaussian noise added to each step." },
    seed: seedParam,
  },
  shape({ rows, length, classes }) {
    // Sampling theorem: k cycles need more than 2k samples, or the highest class aliases onto a lower one.
    if (length <= 2 * classes) throw ValidationError.at("length", `${classes} classes (up to ${classes} cycles per sequence) need more than ${2 * classes} time steps; length is ${length}`);
    return { rows, inputShape: [length, 1], targetShape: [1], classes: Array.from({ length: classes }, (_, i) => String(i + 1)) };
  },
  build(name, { rows, length, classes, noise, seed }) {
    const random = seededRandom(seed);
    const features = new Float32Array(rows * length);
    const targets = new Float32Array(rows);
    for (let i = 0; i < rows; i++) {
      const c = i % classes;
      const amplitude = random.between(0.5, 1.5);
      const phase = random.between(0, 2 * Math.PI);
      for (let t = 0; t < length; t++) {
        features[i * length + t] = amplitude * Math.sin((2 * Math.PI * (c + 1) * t) / length + phase) + (noise > 0 ? noise * random.gaussian() : 0);
      }
      targets[i] = c;
    }
    const classNames = Array.from({ length: classes }, (_, k) => String(k + 1));
    return classificationDataset({ name, rows, inputShape: [length, 1], kind: "sequence", classes: classNames, features, targets });
  },
});
