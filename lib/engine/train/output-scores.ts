// Scores of one output over a whole set, from what was counted batch by batch: precision, recall
// and F1 from a confusion matrix (classification), MSE, MAE and R² from sums (regression). Plain
// numbers and no tfjs, so that the conventions below can be checked by hand; metrics.ts does the
// counting with tf ops and names the results.
//
// Conventions (scikit-learn's, so that numbers can be compared with a notebook):
// - precision, recall or F1 whose denominator is 0 is 0 (`zero_division=0`);
// - the macro average runs over the classes that occur in the set's true or predicted labels
//   (sklearn's default label set); a class absent from both has no score to average, is left out,
//   and reports 0 on its own;
// - binary outputs are scored as two classes (class 0: p ≤ 0.5, class 1: p > 0.5) and averaged
//   like any other (macro), not sklearn's positive-class-only `average="binary"`; the positive
//   class's own F1 is the per-class one;
// - R² is 1 − SS_res/SS_tot with SS_tot about each target column's own mean, summed over the
//   columns (sklearn's `multioutput="variance_weighted"`; plain R² for one target); a set whose
//   targets are all equal (SS_tot = 0) scores 1 if predicted exactly and 0 otherwise (sklearn's
//   `force_finite`), never NaN, so every epoch stores the same metric names.

/** Per-class precision, recall and F1 become metrics for outputs with at most this many classes; the confusion matrix exists for every classification output. */
export const PER_CLASS_LIMIT = 20;

/** One classification output's confusion matrix over a set: `matrix[t][p]` counts positions of true class t predicted as class p. */
export interface ConfusionMatrix {
  /** The output's name. */
  output: string;
  /** Class names in row and column order (the class ids "0", "1", … when none were given). */
  classes: string[];
  matrix: number[][];
}

export interface ClassScores {
  precision: number[];
  recall: number[];
  f1: number[];
  /** Positions whose true class is each class (the row sums). */
  support: number[];
  macro: { precision: number; recall: number; f1: number };
}

const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b);

/** Per-class and macro precision, recall and F1 of a confusion matrix (rows true, columns predicted). */
export function classScores(matrix: readonly (readonly number[])[]): ClassScores {
  const k = matrix.length;
  const support = matrix.map((row) => row.reduce((a, b) => a + b, 0));
  const predicted = Array.from({ length: k }, (_, j) => matrix.reduce((a, row) => a + row[j], 0));
  const tp = matrix.map((row, i) => row[i]);
  const precision = tp.map((t, i) => ratio(t, predicted[i]));
  const recall = tp.map((t, i) => ratio(t, support[i]));
  // 2tp / (2tp + fp + fn): the harmonic mean of the two, and 0 rather than 0/0 when tp = 0.
  const f1 = tp.map((t, i) => ratio(2 * t, support[i] + predicted[i]));
  const seen = tp.map((_, i) => support[i] > 0 || predicted[i] > 0);
  const count = seen.filter(Boolean).length;
  const mean = (v: number[]) => ratio(v.reduce((a, x, i) => a + (seen[i] ? x : 0), 0), count);
  return { precision, recall, f1, support, macro: { precision: mean(precision), recall: mean(recall), f1: mean(f1) } };
}

/** A confusion matrix accumulated from flat per-batch counts (index true·k + predicted). */
export class ConfusionCounts {
  private readonly counts: Float64Array;

  constructor(readonly classes: number) {
    this.counts = new Float64Array(classes * classes);
  }

  add(flat: ArrayLike<number>): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i] += flat[i];
  }

  matrix(): number[][] {
    return Array.from({ length: this.classes }, (_, t) => Array.from(this.counts.subarray(t * this.classes, (t + 1) * this.classes)));
  }
}

/** One batch of a regression output, summed (float32 sums are fine at batch size; the set's totals are kept in float64). */
export interface RegressionBatch {
  /** Rows in the batch. */
  rows: number;
  /** Σ (y − ŷ)² and Σ |y − ŷ| over every target value of the batch. */
  squaredError: number;
  absoluteError: number;
  /**
   * Per target column, Σ (y − s) and Σ (y − s)² for a shift s fixed for the whole set (its first
   * row, say). Shifting by a typical value keeps SS_tot = Σd² − (Σd)²/n from cancelling away, and
   * makes it exactly 0 for a constant column.
   */
  shiftedSum: ArrayLike<number>;
  shiftedSquares: ArrayLike<number>;
}

export interface RegressionScores {
  mse: number;
  mae: number;
  r2: number;
}

/** MSE, MAE and R² of a regression output, accumulated batch by batch in memory proportional to its target columns. */
export class RegressionSums {
  private rows = 0;
  private squaredError = 0;
  private absoluteError = 0;
  private readonly sum: Float64Array;
  private readonly squares: Float64Array;

  constructor(readonly columns: number) {
    this.sum = new Float64Array(columns);
    this.squares = new Float64Array(columns);
  }

  add(b: RegressionBatch): void {
    this.rows += b.rows;
    this.squaredError += b.squaredError;
    this.absoluteError += b.absoluteError;
    for (let j = 0; j < this.columns; j++) {
      this.sum[j] += b.shiftedSum[j];
      this.squares[j] += b.shiftedSquares[j];
    }
  }

  scores(): RegressionScores {
    const values = this.rows * this.columns;
    let total = 0;
    for (let j = 0; j < this.columns; j++) total += Math.max(0, this.squares[j] - ratio(this.sum[j] * this.sum[j], this.rows));
    const r2 = total > 0 ? 1 - this.squaredError / total : this.squaredError === 0 ? 1 : 0;
    return { mse: ratio(this.squaredError, values), mae: ratio(this.absoluteError, values), r2 };
  }
}
