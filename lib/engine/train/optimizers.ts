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
