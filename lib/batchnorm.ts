/**
 * Batch normalization whose training step has a hand-written gradient.
 *
 * tfjs-layers differentiates BatchNormalization op by op (moments, then
 * normalize), which on the WASM backend costs a `Tile` of every activation
 * and a dozen element-wise passes. The closed form needs four:
 *
 *   xhat = (x - mean) * invstd
 *   dbeta = sum(dy),  dgamma = sum(dy * xhat)
 *   dx = gamma * invstd * (dy - dbeta / m - xhat * dgamma / m)
 *
 * The layer saves as a standard `BatchNormalization`, so model files load
 * in any tfjs (the browser included).
 */
import * as tf from "@tensorflow/tfjs";

/**
 * Training-mode batch norm over all axes but the last, with its gradient.
 * Returns the output and the batch mean and (biased) variance; the caller
 * disposes `mean` and `variance` (they outlive the gradient's scope).
 */
export function batchNormTraining(
  x: tf.Tensor,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
): { y: tf.Tensor; mean: tf.Tensor1D; variance: tf.Tensor1D } {
  let mean!: tf.Tensor1D, variance!: tf.Tensor1D;
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const m = x.size / x.shape[x.rank - 1];
  const f = tf.customGrad((input, g, b, save) => {
    const [xIn, gammaIn, betaIn] = [input as tf.Tensor, g as tf.Tensor1D, b as tf.Tensor1D];
    const moments = tf.moments(xIn, axes);
    mean = tf.keep(moments.mean as tf.Tensor1D);
    variance = tf.keep(moments.variance as tf.Tensor1D);
    const invstd = tf.rsqrt(variance.add(epsilon));
    (save as tf.GradSaveFunc)([xIn, mean, invstd, gammaIn]);
    return {
      value: tf.batchNorm(xIn, mean, variance, betaIn, gammaIn, epsilon),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, mu, inv, gm] = saved;
        const xhat = xs.sub(mu).mul(inv);
        const dbeta = dy.sum(axes);
        const dgamma = dy.mul(xhat).sum(axes);
        const scale = gm.mul(inv);
        const dx = dy.mul(scale).add(xhat.mul(scale.mul(dgamma).div(-m))).add(scale.mul(dbeta).div(-m));
        return [dx, dgamma, dbeta];
      },
    };
  });
  const y = f(x, gamma, beta);
  return { y, mean, variance };
}

// deno-lint-ignore no-explicit-any
type LayerClass = new (args: any) => any;
const BatchNormalizationBase = Object.getPrototypeOf(tf.layers.batchNormalization({})).constructor as LayerClass;

/** tfjs-layers BatchNormalization (last axis) with the fast training gradient above. */
export class FastBatchNormalization extends BatchNormalizationBase {
  static className = "BatchNormalization";

  // deno-lint-ignore no-explicit-any
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: any): tf.Tensor {
    const input = Array.isArray(inputs) ? inputs[0] : inputs;
    const lastAxis = this.axis === -1 || this.axis === input.rank - 1;
    if (!kwargs?.training || !lastAxis || !this.center || !this.scale) return super.call(inputs, kwargs);
    return tf.tidy(() => {
      const { y, mean, variance } = batchNormTraining(input, this.gamma.read(), this.beta.read(), this.epsilon);
      for (const [moving, value] of [[this.movingMean, mean], [this.movingVariance, variance]]) {
        const old = moving.read();
        moving.write(old.sub(old.sub(value).mul(1 - this.momentum)));
      }
      tf.dispose([mean, variance]);
      return y;
    });
  }
}
tf.serialization.registerClass(
  FastBatchNormalization as unknown as tf.serialization.SerializableConstructor<tf.serialization.Serializable>,
);

/** A BatchNormalization layer (fast training gradient; saves as the standard class). */
export function batchNormalization(args: { momentum?: number; epsilon?: number; name?: string }): tf.layers.Layer {
  return new FastBatchNormalization(args) as unknown as tf.layers.Layer;
}
