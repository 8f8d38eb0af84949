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
 * On the wasm backend both directions are native kernels of two passes
 * each (lib/backend/kernels.c); elsewhere tfjs ops compute the same.
 * The layer saves as a standard `BatchNormalization`, so model files load
 * in any tfjs (the browser included). `FastDropout` likewise saves as a
 * standard `Dropout`.
 */
import * as tf from "@tensorflow/tfjs";
import { nativeApplies } from "../backend/native.ts";

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
  return nativeApplies(x) ? nativeBatchNorm(x, gamma, beta, epsilon) : opsBatchNorm(x, gamma, beta, epsilon);
}

/** Batch norm on the native kernels (lib/backend/kernels.c): two passes forward, two back. */
function nativeBatchNorm(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number) {
  let mean!: tf.Tensor1D, variance!: tf.Tensor1D;
  const f = tf.customGrad((input, g, b, save) => {
    const inputs = { x: input, gamma: g, beta: b } as tf.NamedTensorMap;
    const [y, mu, v, invstd] = tf.engine().runKernel("FerBatchNormForward", inputs, {
      epsilon,
    } as unknown as tf.NamedAttrMap) as tf.Tensor[];
    mean = tf.keep(mu as tf.Tensor1D);
    variance = tf.keep(v as tf.Tensor1D);
    (save as tf.GradSaveFunc)([input as tf.Tensor, mu, invstd, g as tf.Tensor]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, m, inv, gm] = saved;
        return tf.engine().runKernel("FerBatchNormBackward", {
          dy,
          x: xs,
          mean: m,
          invstd: inv,
          gamma: gm,
        }) as tf.Tensor[];
      },
    };
  });
  const y = f(x, gamma, beta);
  return { y, mean, variance };
}

/** Batch norm from tfjs ops (any backend), with the closed-form gradient. */
function opsBatchNorm(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number) {
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
/** Register a layer class for (de)serialization under its `className` (the standard class's name). */
function registerLayerClass(cls: LayerClass): void {
  tf.serialization.registerClass(
    cls as unknown as tf.serialization.SerializableConstructor<tf.serialization.Serializable>,
  );
}

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
registerLayerClass(FastBatchNormalization);

/** A BatchNormalization layer (fast training gradient; saves as the standard class). */
export function batchNormalization(args: { momentum?: number; epsilon?: number; name?: string }): tf.layers.Layer {
  return new FastBatchNormalization(args) as unknown as tf.layers.Layer;
}

/** Inverted dropout on the native kernel: one pass makes the seeded mask and applies it; the gradient is dy * mask. */
export function nativeDropout(x: tf.Tensor, rate: number, seed: number): tf.Tensor {
  const f = tf.customGrad((input, save) => {
    const attrs = { rate, seed } as unknown as tf.NamedAttrMap;
    const [y, mask] = tf.engine().runKernel("FerDropout", { x: input as tf.Tensor }, attrs) as tf.Tensor[];
    (save as tf.GradSaveFunc)([mask]);
    return { value: y, gradFunc: (dy: tf.Tensor, [m]: tf.Tensor[]) => dy.mul(m) };
  });
  return f(x);
}

const DropoutBase = Object.getPrototypeOf(tf.layers.dropout({ rate: 0.5 })).constructor as LayerClass;

/** Where `FastDropout` draws each mask's seed: `Math.random` unless `withDropoutRandom` gives a seeded source. */
let dropoutRandom: () => number = Math.random;

/**
 * Run `fn` (a training forward pass) with every native dropout mask seeded
 * from `random`, so a seeded step draws the same masks again (a resumed or
 * repeated run reproduces its training).
 */
export function withDropoutRandom<T>(random: () => number, fn: () => T): T {
  const before = dropoutRandom;
  dropoutRandom = random;
  try {
    return fn();
  } finally {
    dropoutRandom = before;
  }
}

/**
 * tfjs-layers Dropout whose training-mode mask comes from the native kernel on
 * the wasm backend, and from `tf.dropout` elsewhere (WebGPU, cpu); seeded by
 * `withDropoutRandom` on either.
 */
export class FastDropout extends DropoutBase {
  static className = "Dropout";

  // deno-lint-ignore no-explicit-any
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: any): tf.Tensor {
    const input = Array.isArray(inputs) ? inputs[0] : inputs;
    if (!kwargs?.training || !(this.rate > 0) || this.noiseShape) return super.call(inputs, kwargs);
    const seed = Math.floor(dropoutRandom() * 2 ** 32);
    return tf.tidy(() =>
      nativeApplies(input) ? nativeDropout(input, this.rate, seed) : tf.dropout(input, this.rate, undefined, seed)
    );
  }
}
registerLayerClass(FastDropout);

/** A Dropout layer (native training mask; saves as the standard class). */
export function dropout(args: { rate: number; name?: string }): tf.layers.Layer {
  return new FastDropout(args) as unknown as tf.layers.Layer;
}

const Conv2DBase = Object.getPrototypeOf(tf.layers.conv2d({ filters: 1, kernelSize: 1 })).constructor as LayerClass;

/**
 * tfjs-layers Conv2D that trains through `tf.conv2d` instead of the fused
 * op: the fused op's gradient computes the input gradient eagerly, also
 * for the first layer, whose input (the images) needs none; the plain op's
 * gradient is skipped there (about 3% of a training step).
 */
export class FastConv2D extends Conv2DBase {
  static className = "Conv2D";

  // deno-lint-ignore no-explicit-any
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: any): tf.Tensor {
    const plain = this.rank === 2 && this.bias == null && this.activation?.getClassName() === "linear" &&
      this.dataFormat === "channelsLast";
    if (!kwargs?.training || !plain) return super.call(inputs, kwargs);
    const input = Array.isArray(inputs) ? inputs[0] : inputs;
    return tf.conv2d(input as tf.Tensor4D, this.kernel.read(), this.strides, this.padding, "NHWC", this.dilationRate);
  }
}
registerLayerClass(FastConv2D);

/** A Conv2D layer (plain op in training; saves as the standard class). */
export function conv2d(args: Parameters<typeof tf.layers.conv2d>[0]): tf.layers.Layer {
  return new FastConv2D(args) as unknown as tf.layers.Layer;
}
