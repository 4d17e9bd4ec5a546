// The training loop. Written out rather than model.fit() because a job needs what fit hides:
// seeded shuffles and dropout per epoch (exact resume), a cancel check between batches, loss
// checks that fail fast on NaN, and a hook after every epoch that stores metrics and a checkpoint.
import * as tf from "@tensorflow/tfjs";
import { deriveSeed, mulberry32, permutation, withSeededRandom } from "../seeded-random.ts";
import { Augmenter } from "./augment.ts";
import { Diagnoser, SAMPLE_ROWS, warningsOf, type EpochDiagnostics } from "./diagnostics.ts";
import { EarlyStopping } from "./early-stopping.ts";
import { correctCount, forwardForLoss, logitLayers, stepGradients, targetTensor, type LossShaping } from "./losses.ts";
import { LearningRateSchedule } from "./lr-schedule.ts";
import { RowBatches, type RowValues } from "./batches.ts";
import { DataParallel, type ShareResult } from "./data-parallel.ts";
import { skipInputGradients } from "./input-gradients.ts";
import { evaluateBatches, metricsOf, objectivesOf, outputShapesOf, type Tally } from "./metrics.ts";
import { applyGradients } from "./fused-adam.ts";
import { setLearningRate } from "./optimizers.ts";
import { perceptronParts, perceptronStep } from "./perceptron.ts";
import { Tbptt } from "./tbptt.ts";
import { TrainingDivergedError, TrainingSetupError, type EpochMetrics, type Objective, type EpochHealth, type TrainConfig, type TrainData, type TrainHooks, type TrainResult, type WithinEpoch } from "./train-types.ts";

export * from "./train-types.ts";
export { compileForTraining, createOptimizer } from "./optimizers.ts";
export { evaluate } from "./metrics.ts";

/** Splits rows into train and validation sets by a seeded permutation (data files are often sorted by class). */
export function splitIndices(rows: number, validationSplit: number, seed: number): { train: Int32Array; validation: Int32Array } {
  const order = permutation(rows, mulberry32(deriveSeed(seed, 0x5eed)));
  const nVal = Math.floor(rows * validationSplit);
  return { train: order.slice(0, rows - nVal), validation: order.slice(rows - nVal) };
}

/**
 * Trains a compiled model from `startEpoch` (0 for a fresh job, the checkpoint's epoch to resume)
 * to cfg.epochs; `within` resumes inside epoch startEpoch + 1 (a mid-epoch checkpoint). Math.random
 * is seeded per batch, from (seed, epoch, batch): a run resumed at any batch draws what the
 * uninterrupted one would have.
 */
export async function train(model: tf.LayersModel, data: TrainData, cfg: TrainConfig, objective: Objective, hooks: TrainHooks = {}, startEpoch = 0, within?: WithinEpoch): Promise<TrainResult> {
  const optimizer = model.optimizer;
  if (!optimizer) throw new TrainingSetupError("train() needs a compiled model (compileForTraining)");
  const objectives = objectivesOf(model, objective);
  const outputShapes = outputShapesOf(model);
  const logits = logitLayers(model, objectives);
  const { train: trainIdx, validation: valIdx } = cfg.split ?? splitIndices(data.rows, cfg.validationSplit, cfg.seed);
  if (trainIdx.length === 0) throw new TrainingSetupError(`validationSplit ${cfg.validationSplit} leaves no training rows out of ${data.rows}`);

  // Each batch's rows are copied from the dataset's arrays as it is needed (batches.ts): no copy of the whole set per batch, nor in backend memory.
  const losses = objectives.map((o) => o.loss);
  const trainSet = new RowBatches(data, trainIdx, losses, outputShapes);
  const valSet = valIdx.length ? new RowBatches(data, valIdx, losses, outputShapes) : undefined;
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const decayed = cfg.optimizer.weightDecay ? vars.filter((v) => !/(bias|gamma|beta|moving_\w+)(_\d+)?$/.test(v.name)) : [];
  const perceptron = cfg.mode === "perceptron" ? perceptronParts(model) : undefined;
  const augmenter = Augmenter.create(cfg.augmentation, cfg.seed, data);
  // The rate over time, and early stopping, replayed over the epochs already trained (a resume).
  const batchesPerEpoch = Math.ceil(trainIdx.length / cfg.batchSize);
  const schedule = cfg.lrSchedule ? new LearningRateSchedule(cfg.lrSchedule, cfg.optimizer.learningRate, batchesPerEpoch) : undefined;
  const stopper = cfg.earlyStopping ? new EarlyStopping(cfg.earlyStopping) : undefined;
  // Diagnostics on fixed sample rows: the first training rows, and validation rows to probe activations.
  const diagnoser = cfg.diagnostics !== false && !perceptron ? new Diagnoser(model, objectives, logits) : undefined;
  const sampleRows = Math.min(SAMPLE_ROWS, trainIdx.length);
  const sample = diagnoser && (() => {
    const train = trainSet.take(0, sampleRows);
    const probe = valSet ? valSet.take(0, Math.min(4 * SAMPLE_ROWS, valIdx.length)) : trainSet.take(0, sampleRows);
    tf.dispose(probe.ys);
    return { train, probe: probe.xs };
  })();
  // Label smoothing and class weights shape the training loss only; validation and test losses are plain.
  const shaping: LossShaping[] = objectives.map((_, k) => ({ labelSmoothing: cfg.labelSmoothing, classWeights: cfg.classWeights?.[k] }));
  // Truncated BPTT: the batch step cut into windows along time, the recurrent state carried across them (tbptt.ts).
  const tbptt = cfg.tbptt ? new Tbptt(model, cfg.tbptt.window, { objectives, logits, shaping, vars, decayed, weightDecay: cfg.optimizer.weightDecay, clip: cfg.gradientClipping ? (g) => clipGradients(g, cfg.gradientClipping!) : undefined }) : undefined;
  const adversary = cfg.adversarial ? fgsmRows(model, cfg.adversarial, objectives, logits, shaping) : undefined;
  let rate = cfg.optimizer.learningRate;
  /** The optimizer's step with a batch's gradients: clipped as asked, then weight decay. */
  const update = (grads: tf.NamedTensorMap) => {
    applyGradients(optimizer, cfg.gradientClipping ? clipGradients(grads, cfg.gradientClipping) : grads);
    for (const v of decayed) v.assign(tf.mul(v, 1 - rate * cfg.optimizer.weightDecay!));
  };
  // Data-parallel steps over threads (data-parallel.ts), for the plain gradient step: the
  // perceptron's rule, truncated BPTT and adversarial batches run on this thread alone.
  const parallel = (cfg.threads ?? 1) > 1 && !perceptron && !tbptt && !adversary
    ? await DataParallel.start(model, cfg.threads!, cfg.batchSize, { rows: trainSet, objectives, shaping })
    : undefined;
  /** A batch's step with its rows shared among the threads: the gradients averaged by share, one update here. */
  const parallelStep = async (par: DataParallel, values: RowValues, n: number, seed: number): Promise<[number, number[], number[]]> => {
    const shares = par.shares(n);
    par.post(values, shares, seed, vars);
    const own = shares[0];
    const mine = tf.tidy(() => {
      const batch = trainSet.tensorsOf({ xs: values.xs.map((v) => v.subarray(0, (v.length / n) * own)), ys: values.ys.map((v) => v.subarray(0, (v.length / n) * own)) }, own);
      const r = stepGradients(model, batch.xs, batch.ys, objectives, logits, shaping, vars);
      const correct = objectives.map((o, k) => (o.loss === "meanSquaredError" ? 0 : correctCount(o.loss, batch.ys[k], r.preds[k], o.margin).dataSync()[0]));
      // Read before disposing: with one output and no regularizer, `value` is terms[0] itself.
      const figures = { value: r.value.dataSync()[0], terms: r.terms.map((t) => t.dataSync()[0]), correct };
      tf.dispose([...r.preds, ...r.terms]);
      return { grads: r.grads, ...figures };
    });
    try {
      const theirs = await par.results();
      tf.tidy(() => {
        update(Object.fromEntries(vars.map((v, i) => {
          let g = tf.mul(mine.grads[v.name], own / n);
          for (const t of theirs) g = tf.add(g, tf.mul(tf.tensor(t.grads[i], v.shape), t.rows / n));
          return [v.name, g];
        })));
      });
      const weighted = (mineValue: number, pick: (t: ShareResult) => number) => (mineValue * own + theirs.reduce((a, t) => a + pick(t) * t.rows, 0)) / n;
      return [
        weighted(mine.value, (t) => t.loss),
        mine.terms.map((v, k) => weighted(v, (t) => t.terms[k])),
        mine.correct.map((c, k) => c + theirs.reduce((a, t) => a + t.correct[k], 0)),
      ];
    } finally {
      tf.dispose(mine.grads);
    }
  };
  const series: EpochDiagnostics[] = [];
  const raised = new Set<string>();
  for (const past of cfg.diagnosticsHistory?.filter((d) => d.epoch <= startEpoch) ?? []) {
    series.push(past);
    for (const w of warningsOf(series, raised, diagnoser?.outputLayers)) raised.add(w.key);
  }
  for (let e = 1; e <= startEpoch; e++) {
    const past = cfg.history?.[e - 1];
    if (!past) break;
    schedule?.onEpochEnd(e, past);
    stopper?.onEpochEnd(e, past);
  }

  let metrics: EpochMetrics = {};
  let lastEpoch = startEpoch;
  // Convolutions on the inputs skip the images' gradient while training (input-gradients.ts).
  const restoreConvolutions = skipInputGradients(model);
  try {
    for (let epoch = startEpoch + 1; epoch <= cfg.epochs; epoch++) {
      const random = mulberry32(deriveSeed(cfg.seed, epoch));
      const order = permutation(trainIdx.length, random);
      const resumed = epoch === startEpoch + 1 ? within : undefined;
      const tally: Tally = resumed
        ? { loss: resumed.tally.loss, outputLoss: [...resumed.tally.outputLoss], correct: [...resumed.tally.correct] }
        : { loss: 0, outputLoss: objectives.map(() => 0), correct: objectives.map(() => 0) };
      let stopped = false;
      let suspended: WithinEpoch | undefined;
      const epochSeed = deriveSeed(cfg.seed, epoch + 0x10000);
      await withSeededRandom(epochSeed, async () => {
        for (let start = (resumed?.batch ?? 0) * cfg.batchSize; start < order.length; start += cfg.batchSize) {
          const control = hooks.shouldStop ? await hooks.shouldStop() : false;
          if (control === true || control === "cancel") {
            stopped = true;
            return;
          }
          if (control === "checkpoint" || control === "suspend") {
            const at: WithinEpoch = { batch: start / cfg.batchSize, tally: { loss: tally.loss, outputLoss: [...tally.outputLoss], correct: [...tally.correct] } };
            await hooks.onCheckpoint?.(epoch, at);
            if (control === "suspend") {
              suspended = at;
              return;
            }
          }
          Math.random = mulberry32(deriveSeed(epochSeed, start / cfg.batchSize));
          const batchIdx = order.subarray(start, Math.min(start + cfg.batchSize, order.length));
          if (schedule) {
            rate = schedule.rateAt(epoch, Math.floor(start / cfg.batchSize));
            setLearningRate(optimizer, rate);
          }
          const ids = Int32Array.from(batchIdx, (b) => trainIdx[b]);
          // Augmented parts come from the rows as uploaded, transformed per example; the rest are the rows as they are.
          const aug = augmenter?.batch(epoch, start, ids);
          const [batchLoss, outputLosses, batchCorrect] = parallel && batchIdx.length >= parallel.threads
            ? await parallelStep(parallel, withAugmented(trainSet.valuesAt(ids), aug), batchIdx.length, deriveSeed(epochSeed, start / cfg.batchSize))
            : tf.tidy((): [number, number[], number[]] => {
                const plain = trainSet.rowsAt(ids);
                const xb = plain.xs.map((x, k) => {
                  const rows = aug?.inputs[k];
                  return rows ? tf.tensor(rows, [batchIdx.length, ...data.inputs[k].shape]) : x;
                });
                const ybs = plain.ys.map((y, k) => {
                  const rows = aug?.targets[k];
                  return rows ? targetTensor({ ...data.targets[k], data: rows }, batchIdx.length, objectives[k].loss, outputShapes[k]) : y;
                });
                if (adversary && !perceptron && !tbptt) xb[0] = adversary(xb[0], ybs);
                if (perceptron) {
                  const [l, c] = perceptronStep(perceptron, xb[0], ybs[0], rate);
                  return [l, [l], [c]];
                }
                if (tbptt) return tbptt.step(xb, ybs, rate);
                const { value, grads, preds, terms } = stepGradients(model, xb, ybs, objectives, logits, shaping, vars);
                update(grads);
                const correct = objectives.map((o, k) => (o.loss === "meanSquaredError" ? 0 : correctCount(o.loss, ybs[k], preds[k], o.margin).dataSync()[0]));
                // Read before disposing: with one output and no regularizer, `value` is terms[0] itself.
                const losses = terms.map((t) => t.dataSync()[0]);
                const total = value.dataSync()[0];
                tf.dispose([...preds, ...terms]);
                return [total, losses, correct];
              });
          if (!Number.isFinite(batchLoss)) {
            throw new TrainingDivergedError(
              `loss became ${batchLoss} at epoch ${epoch}, batch ${Math.floor(start / cfg.batchSize) + 1}: the gradients exploded; lower the learning rate or normalize the inputs`,
            );
          }
          tally.loss += batchLoss * batchIdx.length;
          outputLosses.forEach((l, k) => (tally.outputLoss[k] += l * batchIdx.length));
          batchCorrect.forEach((c, k) => (tally.correct[k] += c));
          await hooks.onBatchEnd?.(epoch, Math.floor(start / cfg.batchSize) + 1, Math.ceil(order.length / cfg.batchSize), batchIdx.length);
        }
      });
      if (stopped) return { stopped: true, lastEpoch, metrics };
      if (suspended) return { stopped: false, lastEpoch, metrics, suspended: { epoch, within: suspended } };

      metrics = metricsOf(objectives, outputShapes, tally, order.length);
      // Validation: loss, accuracy and per-class scores named by class; the confusion matrices go with the epoch's diagnostics.
      const validation = valSet ? evaluateBatches(model, valSet, objectives, cfg.batchSize, "val_", { classNames: data.targets.map((t) => t.classes) }) : undefined;
      if (validation) Object.assign(metrics, validation.metrics);
      // With a schedule, the rate the epoch ended with, so that curves show it.
      if (schedule) metrics.lr = rate;
      lastEpoch = epoch;
      schedule?.onEpochEnd(epoch, metrics);
      const decision = stopper?.onEpochEnd(epoch, metrics);
      const verdict = decision && { ...decision, bestEpoch: stopper!.best?.epoch };
      let health: EpochHealth | undefined;
      if (diagnoser && sample) {
        // Measuring must never cost a job: an epoch it cannot measure is trained without diagnostics.
        let diagnostics: EpochDiagnostics | undefined;
        try {
          diagnostics = diagnoser.measure(epoch, rate, sample.train, sample.probe);
        } catch {
          diagnostics = undefined;
        }
        if (diagnostics) {
          series.push(diagnostics);
          const warnings = warningsOf(series, raised, diagnoser.outputLayers);
          for (const w of warnings) raised.add(w.key);
          health = { diagnostics, warnings: warnings.map(({ key: _key, ...w }) => w), ...(validation ? { confusion: validation.confusion } : {}) };
        }
      }
      const asked = await hooks.onEpochEnd?.(epoch, metrics, verdict, health);
      if (verdict?.stop && epoch < cfg.epochs) {
        return { stopped: false, lastEpoch, metrics, earlyStop: { epoch, bestEpoch: stopper!.best?.epoch, reason: verdict.reason ?? "early stopping" } };
      }
      if (asked && epoch < cfg.epochs) return { stopped: false, lastEpoch, metrics, earlyStop: { epoch, bestEpoch: stopper?.best?.epoch, reason: asked.stop } };
    }
    return { stopped: false, lastEpoch, metrics };
  } finally {
    await parallel?.close();
    restoreConvolutions();
    tf.dispose(sample ? [...sample.train.xs, ...sample.train.ys, ...sample.probe] : []);
  }
}

/** A batch's values with its augmented inputs and targets in place of the plain ones. */
function withAugmented(values: RowValues, aug: { inputs: (Float32Array | undefined)[]; targets: (Float32Array | undefined)[] } | undefined): RowValues {
  if (!aug) return values;
  return { xs: values.xs.map((v, k) => aug.inputs[k] ?? v), ys: values.ys.map((v, k) => aug.targets[k] ?? v) };
}

/**
 * Adversarial training's batch: the first `fraction` of its rows (the batch is in shuffled order)
 * replaced by x + ε·sign(∇ₓ loss), with the weights as they are and dropout off, clipped to the
 * data's range. Deterministic, so a resumed run makes the same examples.
 */
function fgsmRows(model: tf.LayersModel, adv: NonNullable<TrainConfig["adversarial"]>, objectives: ReturnType<typeof objectivesOf>, logits: ReturnType<typeof logitLayers>, shaping: LossShaping[]) {
  return (x: tf.Tensor, ys: tf.Tensor[]): tf.Tensor => {
    const rows = x.shape[0];
    const m = Math.round(adv.fraction * rows);
    if (m === 0) return x;
    const row = x.shape.slice(1);
    const attacked = tf.slice(x, 0, m);
    const targets = ys.map((y) => tf.slice(y, 0, m));
    const g = tf.grad((v: tf.Tensor) => {
      const terms = forwardForLoss(model, [v], targets, objectives, logits, false, shaping).terms;
      return (terms.length === 1 ? terms[0] : tf.addN(terms)) as tf.Scalar;
    })(attacked);
    let stepped = tf.add(attacked, tf.mul(tf.sign(g), tf.tensor(adv.epsilon, [1, ...row])));
    if (adv.low) stepped = tf.maximum(stepped, tf.tensor(adv.low, [1, ...row]));
    if (adv.high) stepped = tf.minimum(stepped, tf.tensor(adv.high, [1, ...row]));
    return m === rows ? stepped : tf.concat([stepped, tf.slice(x, m)], 0);
  };
}

/**
 * Gradients clipped as asked: each value into [−value, value], then all of them scaled together so
 * that their global L2 norm is at most `norm` (the direction kept, as tf.clip_by_global_norm does).
 */
export function clipGradients(grads: tf.NamedTensorMap, clip: { norm?: number; value?: number }): tf.NamedTensorMap {
  let out = grads;
  if (clip.value !== undefined) out = Object.fromEntries(Object.entries(out).map(([name, g]) => [name, tf.clipByValue(g, -clip.value!, clip.value!)]));
  if (clip.norm !== undefined && Object.keys(out).length) {
    // On the backend, without reading anything back: scale = min(1, norm / ‖g‖).
    const global = tf.sqrt(tf.addN(Object.values(out).map((g) => tf.sum(tf.square(g)))));
    const scale = tf.minimum(1, tf.div(clip.norm, tf.maximum(global, 1e-12)));
    out = Object.fromEntries(Object.entries(out).map(([name, g]) => [name, tf.mul(g, scale)]));
  }
  return out;
}
