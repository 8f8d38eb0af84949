/** Classification metrics: confusion matrix, accuracy, per-class and macro F1. */

/** One class's scores. */
export interface ClassMetrics {
  /** Of the images answered with this class, the share that are of it. */
  precision: number;
  /** Of the class's images, the share answered with it. */
  recall: number;
  /** The harmonic mean of precision and recall. */
  f1: number;
  /** The class's images. */
  support: number;
}

/** The evaluation report written as `report.json`. */
export interface Report {
  /** What was evaluated: a split's name, or a face folder's. */
  split: string;
  /** The images, answered or not. */
  n: number;
  /** The share of images answered with their class. */
  accuracy: number;
  /** The mean F1 of the classes that have images. */
  macro_f1: number;
  /** Each class's precision, recall, F1 and support. */
  per_class: Record<string, ClassMetrics>;
  /** counts, rows = true label, columns = predicted label (the images answered) */
  confusion_matrix: number[][];
  /** The classes, in the matrix's order. */
  labels: string[];
  /** Images given no answer (no face found), per class: counted in `n`, the supports, and as wrong. */
  unanswered?: number[];
}

/** K x K counts; rows are true labels, columns predictions. */
export function confusionMatrix(
  truth: ArrayLike<number>,
  predicted: ArrayLike<number>,
  k: number,
): number[][] {
  if (truth.length !== predicted.length) {
    throw new Error(`confusionMatrix: ${truth.length} labels but ${predicted.length} predictions`);
  }
  const m = Array.from({ length: k }, () => new Array(k).fill(0));
  for (let i = 0; i < truth.length; i++) m[truth[i]][predicted[i]]++;
  return m;
}

/**
 * Precision, recall, F1 and support of each class (0 where undefined);
 * `unanswered[c]` images of class c that got no answer count in its
 * support, as misses.
 */
export function perClassMetrics(matrix: number[][], unanswered: readonly number[] = []): ClassMetrics[] {
  return matrix.map((row, c) => {
    const tp = row[c];
    const support = row.reduce((a, b) => a + b, 0) + (unanswered[c] ?? 0);
    const predicted = matrix.reduce((a, r) => a + r[c], 0);
    const precision = predicted ? tp / predicted : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    return { precision, recall, f1, support };
  });
}

/**
 * The full report for predictions on one split; `unanswered` counts, per
 * class, images given no answer (a face not found), which count as wrong.
 * Macro-F1 averages over the classes that have images (a class absent from
 * the split, such as CK+48's neutral, has no F1 to average).
 */
export function buildReport(
  split: string,
  truth: ArrayLike<number>,
  predicted: ArrayLike<number>,
  labels: readonly string[],
  unanswered?: readonly number[],
): Report {
  const matrix = confusionMatrix(truth, predicted, labels.length);
  const perClass = perClassMetrics(matrix, unanswered);
  const correct = matrix.reduce((a, row, c) => a + row[c], 0);
  const n = truth.length + (unanswered ?? []).reduce((a, b) => a + b, 0);
  const present = perClass.filter((m) => m.support > 0);
  return {
    split,
    n,
    accuracy: n ? correct / n : 0,
    macro_f1: present.length ? present.reduce((a, m) => a + m.f1, 0) / present.length : 0,
    per_class: Object.fromEntries(labels.map((l, c) => [l, perClass[c]])),
    confusion_matrix: matrix,
    labels: [...labels],
    ...(unanswered?.some((u) => u > 0) ? { unanswered: [...unanswered] } : {}),
  };
}

/** Index of the largest value in each row of a row-major [n, k] array. */
export function argmaxRows(values: ArrayLike<number>, k: number): Uint8Array {
  const n = values.length / k;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (values[i * k + c] > values[i * k + best]) best = c;
    out[i] = best;
  }
  return out;
}

/** The share of predictions equal to the truth (0 for none). */
export function accuracy(truth: ArrayLike<number>, predicted: ArrayLike<number>): number {
  let correct = 0;
  for (let i = 0; i < truth.length; i++) if (truth[i] === predicted[i]) correct++;
  return truth.length ? correct / truth.length : 0;
}

/** The per-class table as aligned text, with accuracy and macro-F1 below. */
export function formatReport(report: Report): string {
  const pct = (v: number) => (100 * v).toFixed(1).padStart(9);
  const lines = [
    `${report.split}: ${report.n} images`,
    `${"class".padEnd(10)}${"precision".padStart(10)}${"recall".padStart(10)}${"f1".padStart(10)}${
      "support".padStart(9)
    }`,
  ];
  for (const label of report.labels) {
    const m = report.per_class[label];
    lines.push(`${label.padEnd(10)} ${pct(m.precision)} ${pct(m.recall)} ${pct(m.f1)}${String(m.support).padStart(9)}`);
  }
  const missed = (report.unanswered ?? []).reduce((a, b) => a + b, 0);
  if (missed) lines.push(`no answer (no face found): ${missed} images, counted as wrong`);
  lines.push(`accuracy ${(100 * report.accuracy).toFixed(2)}%   macro-F1 ${(100 * report.macro_f1).toFixed(2)}%`);
  return lines.join("\n");
}

/** Rows whose prediction is wrong, at most `limit`, most confident mistakes first when probabilities are given. */
export function misclassifiedRows(
  truth: ArrayLike<number>,
  predicted: ArrayLike<number>,
  limit: number,
  confidence?: ArrayLike<number>,
): number[] {
  const rows: number[] = [];
  for (let i = 0; i < truth.length; i++) if (truth[i] !== predicted[i]) rows.push(i);
  if (confidence) rows.sort((a, b) => confidence[b] - confidence[a]);
  return rows.slice(0, limit);
}

/**
 * A warning when a report's accuracy is no better than always answering its
 * most common class (random or untrained weights, say); undefined otherwise.
 */
export function chanceWarning(report: Report): string | undefined {
  const largest = Math.max(...report.confusion_matrix.map((row) => row.reduce((a, b) => a + b, 0)));
  const chance = largest / Math.max(1, report.n);
  if (report.accuracy > chance + 0.01) return undefined;
  return `warning: accuracy ${(100 * report.accuracy).toFixed(2)}% is at chance (always answering the most common ` +
    `class scores ${(100 * chance).toFixed(2)}%): the weights may be untrained or damaged`;
}
