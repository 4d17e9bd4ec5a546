// Weight pruning for model insight: which kernel weights can go, by two criteria, and the model
// with them set to zero.
//
// - Magnitude (the baseline of Han et al. 2015, "Learning both weights and connections"): the
//   saliency of weight w_k is |w_k|; the smallest go first.
// - Optimal brain damage (LeCun, Denker & Solla 1990, "Optimal Brain Damage", NIPS 2): expand the
//   loss to second order around a trained minimum (gradient ≈ 0) and drop the off-diagonal terms;
//   deleting w_k (setting it to 0) then raises the loss by s_k = ½·h_kk·w_k², h_kk = ∂²L/∂w_k².
//   The smallest s_k go first.
//
// The diagonal h_kk is estimated with Hutchinson's estimator (Hutchinson 1990; Bekas, Kokiopoulou
// & Saad 2007 for the diagonal): for Rademacher vectors v (entries ±1), E[v ⊙ (H v)] = diag(H),
// since E[v_i v_j] = δ_ij. H v comes from two first-order gradients by a central difference,
//   H v ≈ (∇L(w + δv) − ∇L(w − δv)) / (2δ),
// whose error is O(δ²) (exact for a quadratic loss). tfjs has no reliable second-order gradients
// (a gradient of a gradient) for all kernels of its backends, the wasm one among them, which is why
// the finite difference rather than a Hessian-vector product by double backprop. v is nonzero on the
// prunable weights only: E[v_i (Hv)_i] = H_ii still holds there (the other coordinates' v_j are 0),
// and the estimate's variance has fewer terms.
//
// The loss is the trainer's (trainer.ts): forwardForLoss, cross-entropy from the logits, per output
// times its objective weight, averaged over the sample; in inference mode, so that dropout does not
// draw different masks on the two sides of a difference, and without label smoothing, class weights
// or regularizer penalties: OBD asks what deleting a weight costs on the data.
//
// Only kernels are pruned (Dense and convolution kernels: trainable weights whose name ends in
// `kernel`), never biases, normalization parameters or embedding tables: those are few, or each
// value is a whole row of the model's vocabulary.
//
// Fine-tuning with the pruned weights held at zero: the optimizer moves them again (Adam's moments,
// momentum), so put the masks back after every step. With the repo's loop:
//   const keeper = maskKeeper(model, masks);
//   try { await train(model, data, cfg, objective, { onBatchEnd: () => keeper.reapply() }); }
//   finally { keeper.dispose(); }
// onBatchEnd runs after each batch's optimizer step, so every step (and every evaluation, which runs
// after the epoch's last batch) sees the pruned weights at exactly zero.
import * as tf from "@tensorflow/tfjs";
import { mulberry32 } from "../../random/seeded-random.ts";
import { forwardForLoss, logitLayers } from "../train/losses.ts";
import { objectivesOf } from "../train/metrics.ts";
import type { Objective } from "../train/train-types.ts";

export type Criterion = "obd" | "magnitude";

export interface SaliencyOptions {
  /** Rademacher vectors of Hutchinson's estimator (each costs two gradients over the sample), e.g. 8. */
  samples: number;
  /** Seeds the Rademacher vectors: the same seed, the same saliencies. */
  seed: number;
  /** Rows per forward pass; the gradient is the mean over all rows of xs either way. Default 256. */
  batchSize?: number;
  /** δ of the central difference, relative to the RMS of the prunable weights (at least 1e-3). Default 1e-3. */
  relativeStep?: number;
}

type Weight = tf.LayersModel["trainableWeights"][number];

/** Names of tfjs kernels: `kernel`, `depthwise_kernel`, `recurrent_kernel`; `_1`… when a name was taken. */
const KERNEL = /kernel(_\d+)?$/;

/** The weights pruning touches, in model order. Frozen layers' kernels are left alone (no gradient for OBD). */
export function prunableWeights(model: tf.LayersModel): Weight[] {
  return model.trainableWeights.filter((w) => KERNEL.test(w.name) && w.dtype === "float32");
}

const variableOf = (w: Weight) => w.read() as tf.Variable;

/** |w| per value of each prunable weight. */
export function magnitudeSaliency(model: tf.LayersModel): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const w of prunableWeights(model)) out.set(w.name, tf.tidy(() => tf.abs(variableOf(w)).dataSync() as Float32Array));
  return out;
}

/**
 * OBD saliency ½·h_kk·w_k² per value of each prunable weight, h_kk by Hutchinson's estimator over
 * `samples` Rademacher vectors. `xs` and `ys` as the trainer holds them (ys one-hot for softmax
 * outputs: targetTensor), in the model's input and output order. The weights are restored exactly.
 */
export function obdSaliency(model: tf.LayersModel, xs: tf.Tensor[], ys: tf.Tensor[], objective: Objective, o: SaliencyOptions): Map<string, Float32Array> {
  if (!Number.isInteger(o.samples) || o.samples < 1) throw new RangeError(`samples must be a positive integer, got ${o.samples}`);
  const weights = prunableWeights(model);
  if (weights.length === 0) return new Map();
  const rows = xs[0].shape[0];
  if (!rows) throw new RangeError("obdSaliency needs at least one row");
  const batchSize = o.batchSize ?? 256;
  const objectives = objectivesOf(model, objective);
  const logits = logitLayers(model, objectives);
  const vars = weights.map(variableOf);

  const gradient = (): tf.Tensor[] => {
    let sum: tf.Tensor[] | undefined;
    for (let start = 0; start < rows; start += batchSize) {
      const size = Math.min(batchSize, rows - start);
      const next = tf.tidy(() => {
        const xb = xs.map((x) => tf.slice(x, start, size));
        const yb = ys.map((y) => tf.slice(y, start, size));
        const { grads } = tf.variableGrads(() => {
          const { terms } = forwardForLoss(model, xb, yb, objectives, logits, false);
          const weighted = terms.map((t, k) => (objectives[k].weight === 1 ? t : tf.mul(objectives[k].weight, t)));
          // Each batch's mean loss weighted by its share of rows: the sum is the mean over all rows.
          return tf.mul(weighted.length === 1 ? weighted[0] : tf.addN(weighted), size / rows) as tf.Scalar;
        }, vars);
        // A kernel the loss does not reach has no gradient: its curvature is 0.
        const g: tf.Tensor[] = vars.map((v) => grads[v.name] ?? tf.zerosLike(v));
        return sum ? g.map((t, i) => tf.add(sum![i], t)) : g;
      });
      if (sum) tf.dispose(sum);
      sum = next;
    }
    return sum!;
  };

  // Copies to put back bit for bit; a Variable's assign only repoints it, so these stay intact.
  const saved = vars.map((v) => tf.clone(v));
  const random = mulberry32(o.seed >>> 0);
  let diag: tf.Tensor[] = vars.map((v) => tf.zerosLike(v));
  try {
    const delta = tf.tidy(() => {
      const squares = tf.addN(saved.map((w) => tf.sum(tf.square(w))));
      const count = saved.reduce((a, w) => a + w.size, 0);
      const rms = Math.sqrt(squares.dataSync()[0] / count);
      return (o.relativeStep ?? 1e-3) * Math.max(rms, 1e-3);
    });
    for (let s = 0; s < o.samples; s++) {
      const v = vars.map((w) => {
        const signs = new Float32Array(w.size);
        for (let i = 0; i < signs.length; i++) signs[i] = random() < 0.5 ? -1 : 1;
        return tf.tensor(signs, w.shape);
      });
      try {
        vars.forEach((w, i) => tf.tidy(() => w.assign(tf.add(saved[i], tf.mul(v[i], delta)))));
        const plus = gradient();
        vars.forEach((w, i) => tf.tidy(() => w.assign(tf.sub(saved[i], tf.mul(v[i], delta)))));
        const minus = gradient();
        const next = tf.tidy(() => diag.map((d, i) => tf.add(d, tf.mul(v[i], tf.div(tf.sub(plus[i], minus[i]), 2 * delta)))));
        tf.dispose([...plus, ...minus, ...diag]);
        diag = next;
      } finally {
        tf.dispose(v);
      }
    }
    const out = new Map<string, Float32Array>();
    weights.forEach((w, i) =>
      // OBD's expansion is about a minimum, where the diagonal is nonnegative; a negative estimate
      // (noise, or a saddle direction) is clamped at 0 rather than promising a gain from deleting.
      out.set(w.name, tf.tidy(() => tf.mul(tf.mul(0.5, tf.relu(tf.div(diag[i], o.samples))), tf.square(saved[i])).dataSync() as Float32Array)),
    );
    return out;
  } finally {
    vars.forEach((w, i) => w.assign(saved[i]));
    tf.dispose([...saved, ...diag]);
  }
}

/** Saliency by either criterion (`o` is needed for OBD only). */
export function saliencyOf(criterion: Criterion, model: tf.LayersModel, xs: tf.Tensor[], ys: tf.Tensor[], objective: Objective, o: SaliencyOptions): Map<string, Float32Array> {
  return criterion === "obd" ? obdSaliency(model, xs, ys, objective, o) : magnitudeSaliency(model);
}

/**
 * Masks (1 keep, 0 prune) that prune round(sparsity·n) values: the least salient over all weights
 * at once ("global": one threshold, so layers with small saliencies lose more), or the same share of
 * each weight ("perLayer"). Ties go in a fixed order, earlier weight (map order) and earlier value
 * first, so the same saliencies always give the same masks.
 */
export function pruneMasks(saliency: Map<string, Float32Array>, sparsity: number, scope: "global" | "perLayer"): Map<string, Float32Array> {
  if (!Number.isFinite(sparsity) || sparsity < 0 || sparsity > 1) throw new RangeError(`sparsity must be in [0, 1], got ${sparsity}`);
  for (const [name, s] of saliency) {
    if (s.some(Number.isNaN)) throw new RangeError(`saliency of ${name} has NaN values (did the loss diverge?)`);
  }
  const masks = new Map<string, Float32Array>();
  for (const [name, s] of saliency) masks.set(name, new Float32Array(s.length).fill(1));
  if (scope === "perLayer") {
    for (const [name, s] of saliency) prune([s], [masks.get(name)!], Math.round(sparsity * s.length));
  } else {
    const total = [...saliency.values()].reduce((a, s) => a + s.length, 0);
    prune([...saliency.values()], [...masks.values()], Math.round(sparsity * total));
  }
  return masks;
}

/** Zeroes in `masks` the `count` least salient values over `parts`, ties in (part, index) order. */
function prune(parts: Float32Array[], masks: Float32Array[], count: number): void {
  if (count === 0) return;
  const offsets: number[] = [];
  let total = 0;
  for (const p of parts) {
    offsets.push(total);
    total += p.length;
  }
  const flat = new Float32Array(total);
  parts.forEach((p, i) => flat.set(p, offsets[i]));
  const order = new Uint32Array(total);
  for (let i = 0; i < total; i++) order[i] = i;
  // A flat index orders by part, then by index within it: the tie-break.
  order.sort((a, b) => flat[a] - flat[b] || a - b);
  let part = 0;
  const sorted = order.subarray(0, count).sort();
  for (const i of sorted) {
    while (part + 1 < parts.length && i >= offsets[part + 1]) part++;
    masks[part][i - offsets[part]] = 0;
  }
}

/** Multiplies the model's prunable weights by their masks, in place; the achieved sparsity (share of prunable values exactly 0). */
export function applyMasks(model: tf.LayersModel, masks: Map<string, Float32Array>): number {
  const keeper = maskKeeper(model, masks);
  try {
    keeper.reapply();
  } finally {
    keeper.dispose();
  }
  return sparsityOf(model);
}

/** Share of the prunable values that are exactly 0 now (0 for a model with none). */
export function sparsityOf(model: tf.LayersModel): number {
  let zeros = 0;
  let total = 0;
  for (const w of prunableWeights(model)) {
    zeros += tf.tidy(() => tf.sum(tf.cast(tf.equal(variableOf(w), 0), "int32")).dataSync()[0]);
    total += variableOf(w).size;
  }
  return total ? zeros / total : 0;
}

/** Masks held on the backend, to put back after every optimizer step while fine-tuning. */
export interface MaskKeeper {
  /** Zeroes the pruned values again: a multiply per weight on the backend, nothing read back. */
  reapply(): void;
  /** Frees the mask tensors. */
  dispose(): void;
}

/** Uploads `masks` once for repeated reapply() (see the header for fine-tuning with train()). */
export function maskKeeper(model: tf.LayersModel, masks: Map<string, Float32Array>): MaskKeeper {
  const byName = new Map(prunableWeights(model).map((w) => [w.name, w]));
  for (const name of masks.keys()) if (!byName.has(name)) throw new RangeError(`mask for ${name}, which is not a prunable weight of the model`);
  const held = [...masks].map(([name, m]) => {
    const v = variableOf(byName.get(name)!);
    if (m.length !== v.size) throw new RangeError(`mask for ${name} has ${m.length} values, the weight ${v.size}`);
    return { v, mask: tf.tensor(m, v.shape) };
  });
  return {
    reapply: () => {
      for (const { v, mask } of held) tf.tidy(() => v.assign(tf.mul(v, mask)));
    },
    dispose: () => tf.dispose(held.map((h) => h.mask)),
  };
}
