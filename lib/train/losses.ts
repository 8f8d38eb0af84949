/** The training loss and its targets. */
import * as tf from "@tensorflow/tfjs";
import { type FaceSet, viewRow } from "../data/dataset.ts";

/** Where the teacher's part of each target comes from, besides the set's probabilities on each image as it is. */
export interface TeacherReading {
  /** Row i was shown in its view `views[i]`: the set's probabilities on that view (--teacher-views). */
  views?: readonly number[];
  /** The teachers' probabilities on the rows as this step shows them, rows x classes (--teacher-each-step). */
  live?: Float32Array;
}

/**
 * The targets of `rows` of `set`, flat rows x classes: each label one-hot,
 * or the set's soft labels (FER+ votes; with `sampleTargets`, a label drawn
 * from them by `random`), blended with the teacher's probabilities,
 * `distill` of the teacher to 1 - `distill` of the label, when there is a
 * teacher: the set's (on each image, or with `from.views` on the view each
 * row was shown in) or `from.live`, read on this step's images.
 */
export function trainingTargets(
  set: FaceSet,
  rows: number[],
  classes: number,
  distill: number,
  random: () => number = Math.random,
  from: TeacherReading = {},
): Float32Array {
  const targets = new Float32Array(rows.length * classes);
  const weight = set.teacher || from.live ? distill : 0;
  rows.forEach((row, i) => {
    const at = i * classes;
    if (weight > 0) {
      const [probabilities, start] = from.live
        ? [from.live, i * classes]
        : [set.teacher!, viewRow(set, row, from.views?.[i] ?? 0) * classes];
      for (let k = 0; k < classes; k++) targets[at + k] = weight * probabilities[start + k];
    }
    const soft = set.targets?.subarray(row * classes, (row + 1) * classes);
    if (soft && !set.sampleTargets) {
      for (let k = 0; k < classes; k++) targets[at + k] += (1 - weight) * soft[k];
    } else targets[at + (soft ? drawClass(soft, random()) : set.labels[row])] += 1 - weight;
  });
  return targets;
}

/** The class a uniform draw `u` (0..1) falls in under the distribution `p`. */
function drawClass(p: ArrayLike<number>, u: number): number {
  let sum = 0;
  for (let k = 0; k < p.length; k++) if (u < (sum += p[k])) return k;
  return p.length - 1;
}

/**
 * Categorical cross-entropy on probabilities, with optional label smoothing.
 * With `prior` (each class's share of the training images) and `tau` > 0,
 * the loss is logit-adjusted (Menon et al. 2021): it scores the model's
 * probabilities times prior^tau, renormalized, so the model itself learns to
 * score classes as if they were equally common (at tau 1).
 */
export function smoothedCrossEntropy(smoothing: number, prior?: readonly number[], tau = 0) {
  const weights = prior && tau > 0 ? prior.map((p) => Math.pow(p, tau)) : undefined;
  return (yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor =>
    tf.tidy(() => {
      const k = yTrue.shape[yTrue.rank - 1] as number;
      const target = smoothing > 0 ? yTrue.mul(1 - smoothing).add(smoothing / k) : yTrue;
      const scored = weights ? adjusted(yPred, weights) : yPred;
      return target.mul(scored.clipByValue(1e-7, 1).log()).sum(-1).neg().mean();
    });
}

/** Probabilities times `weights`, each row renormalized: a shift of the logits by log(weights). */
function adjusted(probabilities: tf.Tensor, weights: number[]): tf.Tensor {
  const scaled = probabilities.mul(tf.tensor1d(weights));
  return scaled.div(scaled.sum(-1, true));
}
