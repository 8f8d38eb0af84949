/**
 * Batch augmentation: each image gets a random shift, small rotation and
 * zoom, and a horizontal flip half the time, as one projective transform
 * (`tf.image.transform`, a single WASM kernel call per batch).
 */
import * as tf from "@tensorflow/tfjs";

export interface AugmentOptions {
  /** Largest shift, as a fraction of the image side. */
  shift: number;
  /** Largest rotation, in degrees. */
  rotateDegrees: number;
  /** Largest zoom in or out, as a fraction (0.1 = 0.9x..1.1x). */
  zoom: number;
  /** Probability of a horizontal flip. */
  flip: number;
}

export const DEFAULT_AUGMENT: AugmentOptions = { shift: 0.1, rotateDegrees: 10, zoom: 0.1, flip: 0.5 };

/**
 * The 8 transform parameters (tfjs order a0 a1 a2 b0 b1 b2 c0 c1) mapping an
 * output pixel to the input pixel it samples, for a `size` x `size` image.
 */
export function augmentMatrix(
  size: number,
  { flip, degrees, scale, shiftX, shiftY }: {
    flip: boolean;
    degrees: number;
    scale: number;
    shiftX: number;
    shiftY: number;
  },
): number[] {
  const c = (size - 1) / 2;
  const theta = (degrees * Math.PI) / 180;
  const f = flip ? -1 : 1;
  const a0 = scale * Math.cos(theta) * f, a1 = -scale * Math.sin(theta);
  const b0 = scale * Math.sin(theta) * f, b1 = scale * Math.cos(theta);
  return [a0, a1, c + shiftX - a0 * c - a1 * c, b0, b1, c + shiftY - b0 * c - b1 * c, 0, 0];
}

/** Random transform parameters for a batch of `n` images. */
export function randomMatrices(n: number, size: number, options: AugmentOptions, random: () => number): Float32Array {
  const out = new Float32Array(n * 8);
  const uniform = (limit: number) => (2 * random() - 1) * limit;
  for (let i = 0; i < n; i++) {
    out.set(
      augmentMatrix(size, {
        flip: random() < options.flip,
        degrees: uniform(options.rotateDegrees),
        scale: 1 + uniform(options.zoom),
        shiftX: uniform(options.shift * size),
        shiftY: uniform(options.shift * size),
      }),
      i * 8,
    );
  }
  return out;
}

/** Augment a [n, h, w, 1] batch; edges are filled by repeating the nearest pixel. */
export function augmentBatch(
  images: tf.Tensor4D,
  options: AugmentOptions,
  random: () => number,
): tf.Tensor4D {
  const [n, size] = images.shape;
  return tf.tidy(() => {
    const matrices = tf.tensor2d(randomMatrices(n, size, options, random), [n, 8]);
    return tf.image.transform(images, matrices, "bilinear", "nearest");
  });
}
