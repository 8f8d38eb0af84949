/** The training loss. */
import * as tf from "@tensorflow/tfjs";

/** Categorical cross-entropy on probabilities, with optional label smoothing. */
export function smoothedCrossEntropy(smoothing: number) {
  return (yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor =>
    tf.tidy(() => {
      const k = yTrue.shape[yTrue.rank - 1] as number;
      const target = smoothing > 0 ? yTrue.mul(1 - smoothing).add(smoothing / k) : yTrue;
      return target.mul(yPred.clipByValue(1e-7, 1).log()).sum(-1).neg().mean();
    });
}
