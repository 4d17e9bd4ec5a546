// Optimizers from their JSON config, and compiling a model for training.
import * as tf from "@tensorflow/tfjs";
import type { LossName, Objective, OptimizerConfig } from "./train-types.ts";

export function createOptimizer(cfg: OptimizerConfig): tf.Optimizer {
  switch (cfg.type) {
    case "adam":
      return tf.train.adam(cfg.learningRate, cfg.beta1 ?? 0.9, cfg.beta2 ?? 0.999, cfg.epsilon ?? 1e-7);
    case "rmsprop":
      return tf.train.rmsprop(cfg.learningRate, cfg.rho ?? 0.9, cfg.momentum ?? 0, cfg.epsilon ?? 1e-7);
    case "adagrad":
      return tf.train.adagrad(cfg.learningRate);
    case "sgd":
      return cfg.momentum ? tf.train.momentum(cfg.learningRate, cfg.momentum, cfg.nesterov ?? false) : tf.train.sgd(cfg.learningRate);
  }
}

/**
 * Sets the rate the optimizer steps with. sgd and momentum keep it in a cached scalar that only
 * setLearningRate renews (assigning `learningRate` would be ignored); adam, rmsprop and adagrad
 * read the field on every step.
 */
export function setLearningRate(optimizer: tf.Optimizer, rate: number): void {
  const o = optimizer as unknown as { learningRate: number; setLearningRate?: (r: number) => void };
  if (o.learningRate === rate) return;
  if (typeof o.setLearningRate === "function") o.setLearningRate(rate);
  else o.learningRate = rate;
}

/**
 * Compiles the model with the optimizer and loss so that saving with includeOptimizer carries
 * both (the trainingConfig a resumed job is rebuilt from).
 */
export function compileForTraining(model: tf.LayersModel, cfg: OptimizerConfig, objective: Objective): void {
  // tfjs has no sparse loss identifier that serializes (the targets are one-hot either way) and
  // no contrastive one; the stored name only has to load, since train() computes the loss itself.
  const name = (l: LossName) => (l === "sparseCategoricalCrossentropy" ? "categoricalCrossentropy" : l === "contrastive" ? "meanSquaredError" : l);
  const loss = typeof objective === "string" ? name(objective) : objective.map((o) => name(o.loss));
  model.compile({ optimizer: createOptimizer(cfg), loss: Array.isArray(loss) && loss.length === 1 ? loss[0] : loss });
}

/**
 * What tfjs's optimizer weights (getWeights, saved with includeOptimizer) leave out. Adam keeps
 * β₁ᵗ and β₂ᵗ as float32 variables multiplied by β after every step; on load, setWeights rebuilds
 * them as pow(β, t + 1), which differs from the repeated product in the last bits, and a resumed
 * run drifts away from the uninterrupted one. (sgd, momentum, rmsprop and adagrad keep nothing
 * beyond their slots and the iteration count, which tfjs does save.)
 * A type, not an interface: a checkpoint's JSON column takes it (it needs an index signature).
 */
export type OptimizerState = {
  /** The optimizer's class name ("Adam"): the state applies only to the same class. */
  className: string;
  /** Steps taken when saved; the state applies only to the optimizer weights of the same step. */
  iterations: number;
  /** Scalar variables by field name, as exact float32 values (a float32 survives JSON exactly). */
  scalars: Record<string, number>;
};

/** The scalar variables tfjs's optimizers keep outside their saved weights. */
const HIDDEN_SCALARS = ["accBeta1", "accBeta2"];

function hiddenScalar(optimizer: tf.Optimizer, field: string): tf.Variable | undefined {
  const v = (optimizer as unknown as Record<string, unknown>)[field];
  return v instanceof tf.Variable && v.rank === 0 && v.dtype === "float32" ? v : undefined;
}

/** The optimizer's state beyond its saved weights, or undefined when it has none. */
export function optimizerState(optimizer: tf.Optimizer): OptimizerState | undefined {
  const scalars: Record<string, number> = {};
  for (const field of HIDDEN_SCALARS) {
    const v = hiddenScalar(optimizer, field);
    if (v) scalars[field] = v.dataSync()[0];
  }
  if (Object.keys(scalars).length === 0) return undefined;
  return { className: optimizer.getClassName(), iterations: optimizer.iterations, scalars };
}

/**
 * Puts back what optimizerState saved, after tfjs has loaded the optimizer's weights. Returns
 * false (and changes nothing) when the state belongs to another optimizer or step.
 */
export function restoreOptimizerState(optimizer: tf.Optimizer, state: OptimizerState): boolean {
  if (state.className !== optimizer.getClassName() || state.iterations !== optimizer.iterations) return false;
  const targets = Object.entries(state.scalars).map(([field, value]) => [hiddenScalar(optimizer, field), value] as const);
  if (targets.some(([v, value]) => !v || typeof value !== "number")) return false;
  for (const [v, value] of targets) tf.tidy(() => v!.assign(tf.scalar(value, "float32")));
  return true;
}
