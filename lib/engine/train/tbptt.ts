// Truncated backpropagation through time, TBPTT(k, k) of Williams & Peng (1990): each batch of
// sequences [B, T, F] is cut along time into ceil(T/k) windows; the recurrent layers start every
// window from the final hidden (and cell) state of the previous one, as a value: the gradient
// stops at the window boundary, as with Keras's stateful RNNs fed chunk by chunk or PyTorch's
// `h = h.detach()` between chunks. The first window starts from zeros, and so does every batch.
//
// How: the job's own model is applied to each window (no second model, so there is exactly one
// set of trained weights and checkpoints are unchanged). While a window runs, each recurrent
// layer's `call` is wrapped to pass the carried state as tfjs's `initialState` and to read the
// final state back (`returnState`, switched on for that call only). The read state is kept
// (tf.keep) past the window's gradient tape; the next window's tape sees it as a constant, since
// variableGrads differentiates only what was recorded inside its own function, so no gradient
// crosses the boundary. No batch size is fixed (unlike `stateful: true`), so the last, smaller
// batch of an epoch needs nothing special, and the forward pass over the windows computes exactly
// what the model computes on the whole sequence: the reported loss is the sequence's loss.
//
// Losses and updates, per kind of output:
// - sequence-to-sequence (an output with the time axis, [T, ...], trained on per-step labels): each
//   window's loss is that of its own steps, and every window is an optimizer step (TBPTT(k, k)).
// - sequence-to-one (an output without it): its label belongs to the whole sequence and exists only
//   after the last step, so only the last window has a loss and an update; the earlier windows only
//   advance the state (forward, no tape). The gradient of the final loss reaches the last k steps,
//   which is what truncation to k means. Fitting every chunk to the sequence's label instead (what
//   a stateful Keras model fed chunks does by default) would train another task: predicting the
//   label from a prefix.
// A graph with both kinds steps on every window with the per-step losses, and adds the
// sequence-to-one losses at the last window.
import * as tf from "@tensorflow/tfjs";
import { applyGradients } from "./fused-adam.ts";
import { correctCount, forwardForLoss, type LossShaping, type logitLayers } from "./losses.ts";
import { TrainingSetupError, type OutputObjective } from "./train-types.ts";

const RECURRENT = new Set(["SimpleRNN", "LSTM", "GRU"]);

type Call = (inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>) => tf.Tensor | tf.Tensor[];
/** The parts of a tfjs RNN layer the window needs. */
interface RecurrentLayer {
  name: string;
  returnState: boolean;
  goBackwards?: boolean;
  stateful?: boolean;
  call: Call;
  inboundNodes: unknown[];
  getClassName(): string;
}

export interface TbpttParts {
  objectives: OutputObjective[];
  logits: ReturnType<typeof logitLayers>;
  /** The training loss's shaping per output (label smoothing, class weights). */
  shaping?: LossShaping[];
  /** The variables to train (the model's trainable weights). */
  vars: tf.Variable[];
  /** Decoupled weight decay: the variables it applies to and its factor (rate × factor per step). */
  decayed?: tf.Variable[];
  weightDecay?: number;
  /** Gradient clipping, as the plain step does it. */
  clip?: (grads: tf.NamedTensorMap) => tf.NamedTensorMap;
}

/** The windowed step for one model; `step` is what the trainer calls per batch instead of its plain step. */
export class Tbptt {
  private readonly recurrent: RecurrentLayer[];
  /** The sequence length T, the inputs' second axis. */
  readonly length: number;
  /** Per output: whether it has the time axis (trained per window) or not (trained at the last window). */
  readonly perStep: boolean[];
  private readonly regularized: boolean;

  constructor(private readonly model: tf.LayersModel, readonly window: number, private readonly parts: TbpttParts) {
    if (!Number.isInteger(window) || window < 1) throw new TrainingSetupError(`tbptt window must be an integer >= 1, got ${window}`);
    const bidirectional = model.layers.find((l) => l.getClassName() === "Bidirectional");
    if (bidirectional) throw new TrainingSetupError(`tbptt: layer '${bidirectional.name}' is bidirectional; its backward direction starts at the end of the sequence, so there is no state to carry from one window to the next`);
    this.recurrent = model.layers.filter((l) => RECURRENT.has(l.getClassName())) as unknown as RecurrentLayer[];
    if (this.recurrent.length === 0) throw new TrainingSetupError("tbptt needs a recurrent layer (simpleRNN, lstm, gru)");
    for (const l of this.recurrent) {
      if (l.inboundNodes.length > 1) throw new TrainingSetupError(`tbptt: recurrent layer '${l.name}' is called more than once, so it has no single state to carry`);
      if (l.goBackwards || l.stateful) throw new TrainingSetupError(`tbptt: recurrent layer '${l.name}' runs backwards or is already stateful`);
    }
    const lengths = model.inputs.map((i) => i.shape[1]);
    const length = lengths[0];
    if (typeof length !== "number" || lengths.some((t) => t !== length) || model.inputs.some((i) => i.shape.length < 2)) {
      throw new TrainingSetupError(`tbptt needs every input to be a sequence of one known length; the inputs' time axes are ${lengths.join(", ")}`);
    }
    this.length = length;
    this.perStep = model.outputs.map((o) => o.shape.length >= 3 && o.shape[1] === length);
    this.regularized = model.layers.some((l) => l.losses.length > 0);
    if (parts.objectives.length !== model.outputs.length) throw new TrainingSetupError(`the model has ${model.outputs.length} outputs, ${parts.objectives.length} objectives were given`);
  }

  /** Windows of a sequence of `length` steps: [start, steps] each. */
  windows(length = this.length): [number, number][] {
    const out: [number, number][] = [];
    for (let t0 = 0; t0 < length; t0 += this.window) out.push([t0, Math.min(this.window, length - t0)]);
    return out;
  }

  /**
   * One batch of sequences: the windows in order, an optimizer step per window that has a loss.
   * Returns what the plain step returns: the batch's loss, per output its loss and correct count
   * (per-step outputs over all T steps, sequence-to-one outputs at the last window).
   */
  step(xs: tf.Tensor[], ys: tf.Tensor[], rate: number): [number, number[], number[]] {
    const { objectives, logits, shaping, vars } = this.parts;
    const optimizer = this.model.optimizer;
    if (!optimizer) throw new TrainingSetupError("tbptt needs a compiled model (compileForTraining)");
    const T = xs[0].shape[1]!;
    const windows = this.windows(T);
    const outputLoss = objectives.map(() => 0);
    const correct = objectives.map(() => 0);
    let extra = 0;
    let carried: tf.Tensor[][] | undefined;
    try {
      windows.forEach(([t0, steps], w) => {
        const last = w === windows.length - 1;
        const active = objectives.map((_, k) => this.perStep[k] || last);
        let next: tf.Tensor[][] = [];
        tf.tidy(() => {
          const xw = xs.map((x) => sliceTime(x, t0, steps));
          if (!active.some(Boolean)) {
            // Only the state moves on: no loss here, so no tape and no update.
            next = this.carrying(carried, () => this.model.apply(xw.length === 1 ? xw[0] : xw, { training: true })).states;
            return;
          }
          const yw = ys.map((y, k) => (this.perStep[k] ? sliceTime(y, t0, steps) : y));
          let preds: tf.Tensor[] = [];
          let terms: tf.Scalar[] = [];
          let penalty: tf.Scalar | undefined;
          const { grads } = tf.variableGrads(() => {
            const run = this.carrying(carried, () => forwardForLoss(this.model, xw, yw, objectives, logits, true, shaping));
            next = run.states;
            const forward = run.result;
            preds = forward.preds.map((p) => tf.keep(p));
            terms = forward.terms.map((t) => tf.keep(t));
            const weighted = terms.flatMap((t, k) => (active[k] ? [objectives[k].weight === 1 ? t : tf.mul(objectives[k].weight, t)] : []));
            const reg = this.regularized ? (this.model as unknown as { calculateLosses(): tf.Scalar[] }).calculateLosses() : [];
            if (reg.length) penalty = tf.keep(tf.addN(reg) as tf.Scalar);
            const all = [...weighted, ...(penalty ? [penalty] : [])];
            return (all.length === 1 ? all[0] : tf.addN(all)) as tf.Scalar;
          }, vars);
          applyGradients(optimizer, this.parts.clip ? this.parts.clip(grads) : grads);
          for (const v of this.parts.decayed ?? []) v.assign(tf.mul(v, 1 - rate * (this.parts.weightDecay ?? 0)));
          objectives.forEach((o, k) => {
            if (!active[k]) return;
            // A per-step output's loss is a mean over its steps: weighted by the window's share of T.
            const share = this.perStep[k] ? steps / T : 1;
            outputLoss[k] += terms[k].dataSync()[0] * share;
            if (o.loss !== "meanSquaredError") correct[k] += correctCount(o.loss, yw[k], preds[k], o.margin).dataSync()[0];
          });
          if (penalty) extra = penalty.dataSync()[0];
          tf.dispose([...preds, ...terms, ...(penalty ? [penalty] : [])]);
        });
        if (carried) tf.dispose(carried.flat());
        carried = next;
      });
    } finally {
      if (carried) tf.dispose(carried.flat());
    }
    const total = outputLoss.reduce((a, l, k) => a + objectives[k].weight * l, 0) + extra;
    return [total, outputLoss, correct];
  }

  /**
   * Runs `fn` (a forward pass of the model) with every recurrent layer starting from its carried
   * state (zeros without one); returns its result and their final states, kept (the caller disposes them).
   */
  private carrying<T>(carried: tf.Tensor[][] | undefined, fn: () => T): { result: T; states: tf.Tensor[][] } {
    const states: tf.Tensor[][] = [];
    const own = this.recurrent.map((l) => Object.prototype.hasOwnProperty.call(l, "call"));
    const saved = this.recurrent.map((l) => l.call);
    this.recurrent.forEach((l, i) => {
      l.call = (inputs, kwargs) => {
        l.returnState = true;
        try {
          // A fresh kwargs: the graph hands every call the node's own callArgs object.
          const out = saved[i].call(l, inputs, { ...kwargs, initialState: carried?.[i] }) as tf.Tensor[];
          // Kept: the state outlives this window's tape and tidy. It is a plain value to the next window's tape.
          states[i] = out.slice(1).map((s) => tf.keep(s));
          return out[0];
        } finally {
          l.returnState = false;
        }
      };
    });
    let result: T;
    try {
      result = fn();
    } catch (err) {
      tf.dispose(states.flat());
      throw err;
    } finally {
      this.recurrent.forEach((l, i) => {
        if (own[i]) l.call = saved[i];
        else delete (l as Partial<RecurrentLayer>).call;
      });
    }
    if (!this.recurrent.every((_, i) => states[i])) throw new TrainingSetupError("tbptt: a recurrent layer was not run by the model's forward pass");
    return { result, states };
  }
}

/** Steps [t0, t0 + steps) of a [B, T, ...] tensor. */
function sliceTime(x: tf.Tensor, t0: number, steps: number): tf.Tensor {
  const begin = x.shape.map((_, a) => (a === 1 ? t0 : 0));
  const size = x.shape.map((d, a) => (a === 1 ? steps : d!));
  return tf.slice(x, begin, size);
}
