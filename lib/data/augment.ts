/**
 * Batch augmentation: each image gets a random shift, small rotation and
 * zoom, and a horizontal flip half the time, as one projective transform
 * (`tf.image.transform`, a single WASM kernel call per batch); with
 * `contrastBatch`, each image's contrast changed; with `photometricBatch`,
 * also what other cameras do to a face: blur, gamma, contrast and
 * brightness, sensor noise, an occluding patch (a hand, glasses, a
 * microphone), and JPEG re-encoding; with `mixBatch`, each image mixed
 * with another of its batch (mixup, cutmix).
 */
import * as tf from "@tensorflow/tfjs";
import { shuffleInPlace } from "../util/random.ts";

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
  return transformBatch(images, randomMatrices(n, size, options, random));
}

/** Move each image of a [n, h, w, 1] batch by its own 8 transform parameters (`matrices`, n x 8). */
export function transformBatch(images: tf.Tensor4D, matrices: Float32Array): tf.Tensor4D {
  const n = images.shape[0];
  return tf.tidy(() => tf.image.transform(images, tf.tensor2d(matrices, [n, 8]), "bilinear", "nearest"));
}

/** The photometric changes, each drawn per image. */
export interface PhotometricOptions {
  /** Largest blur, as the share (0-1) of a 5x5 Gaussian (sigma 1 px) blended in. */
  blur: number;
  /** Largest |ln gamma| of the gamma curve. */
  gamma: number;
  /** Largest contrast change around the image's mean, as a fraction. */
  contrast: number;
  /** Largest brightness shift, as a fraction of the pixel range. */
  brightness: number;
  /** Largest standard deviation of Gaussian noise, as a fraction of the pixel range. */
  noise: number;
  /** Probability of an occluding patch (a gray rectangle, 15-35% of the side each way). */
  occlude: number;
  /** Probability of JPEG re-encoding, at a quality drawn uniformly from `jpegQuality`. */
  jpeg: number;
  /** The lowest and highest JPEG quality (1-100, as libjpeg's). */
  jpegQuality: [number, number];
}

export const PHOTOMETRIC_AUGMENT: PhotometricOptions = {
  blur: 1,
  gamma: 0.4,
  contrast: 0.3,
  brightness: 0.1,
  noise: 0.04,
  occlude: 0.25,
  jpeg: 0.5,
  jpegQuality: [20, 90],
};

/** A 5x5 Gaussian of sigma 1 px, as a depthwise kernel [5, 5, 1, 1]. */
function gaussianKernel(): tf.Tensor4D {
  const taps = [-2, -1, 0, 1, 2].map((d) => Math.exp(-(d * d) / 2));
  const sum = taps.reduce((a, b) => a + b, 0);
  const weights = taps.flatMap((a) => taps.map((b) => (a * b) / (sum * sum)));
  return tf.tensor4d(weights, [5, 5, 1, 1]);
}

/** Occluding patches of a batch, as a mask [n, size, size, 1] (1 inside a patch) and each patch's gray. */
function occlusionMasks(
  n: number,
  size: number,
  p: number,
  random: () => number,
): { mask: Float32Array; gray: Float32Array } {
  const mask = new Float32Array(n * size * size), gray = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    gray[i] = random();
    if (random() >= p) continue;
    const w = Math.round(size * (0.15 + 0.2 * random())), h = Math.round(size * (0.15 + 0.2 * random()));
    const x0 = Math.floor(random() * (size - w + 1)), y0 = Math.floor(random() * (size - h + 1));
    for (let y = y0; y < y0 + h; y++) {
      mask.fill(1, i * size * size + y * size + x0, i * size * size + y * size + x0 + w);
    }
  }
  return { mask, gray };
}

/** The JPEG standard's luminance quantization table (ITU-T T.81, Annex K), row by row. */
const JPEG_LUMINANCE = [
  [16, 11, 10, 16, 24, 40, 51, 61],
  [12, 12, 14, 19, 26, 58, 60, 55],
  [14, 13, 16, 24, 40, 57, 69, 56],
  [14, 17, 22, 29, 51, 87, 80, 62],
  [18, 22, 37, 56, 68, 109, 103, 77],
  [24, 35, 55, 64, 81, 104, 113, 92],
  [49, 64, 78, 87, 103, 121, 120, 101],
  [72, 92, 95, 98, 112, 100, 103, 99],
].flat();

/** The quantization table of JPEG quality `quality` (1-100), scaled as libjpeg's `jpeg_set_quality`. */
export function jpegTable(quality: number): number[] {
  const q = Math.min(100, Math.max(1, Math.round(quality)));
  const scale = q < 50 ? Math.floor(5000 / q) : 200 - 2 * q;
  return JPEG_LUMINANCE.map((t) => Math.min(255, Math.max(1, Math.floor((t * scale + 50) / 100))));
}

/** The orthonormal 8-point DCT-II, [8, 8] (row k: frequency k), as JPEG's 8x8 block transform. */
function dctMatrix(): tf.Tensor2D {
  const rows = Array.from(
    { length: 8 },
    (_, k) =>
      Array.from(
        { length: 8 },
        (_, x) => (k === 0 ? Math.SQRT1_2 : 1) * 0.5 * Math.cos(((2 * x + 1) * k * Math.PI) / 16),
      ),
  );
  return tf.tensor2d(rows);
}

/**
 * What JPEG compression does to a [n, h, w, 1] batch of pixels in 0..1 (h
 * and w multiples of 8), image i at quality `qualities[i]` (0: left as it
 * is): each 8x8 block's DCT quantized by the quality's table and
 * transformed back, the pixels rounded to 8 bits. That is the lossy part of
 * a grayscale JPEG; its entropy coding loses nothing.
 */
export function jpegBatch(images: tf.Tensor4D, qualities: number[]): tf.Tensor4D {
  const [n, h, w] = images.shape;
  if (h % 8 || w % 8) throw new Error(`jpegBatch: ${h}x${w} images are not whole 8x8 blocks`);
  return tf.tidy(() => {
    const d = dctMatrix();
    // Blocks as [n * blocks, 8, 8]; each transform is a product by d or d's transpose on the blocks' last axis.
    const blocks = images.mul(255).sub(128).reshape([n, h / 8, 8, w / 8, 8]).transpose([0, 1, 3, 2, 4])
      .reshape([-1, 8]);
    const along = (x: tf.Tensor, m: tf.Tensor2D) =>
      x.reshape([-1, 8]).matMul(m).reshape([-1, 8, 8]).transpose([0, 2, 1]);
    const coefficients = along(along(blocks, d.transpose()), d.transpose()); // d X d^T, per block
    // The images left as they are take any table: the originals replace them below.
    const tables = tf.tensor(qualities.flatMap((q) => (q > 0 ? jpegTable(q) : JPEG_LUMINANCE)), [
      n,
      1,
      64,
    ]);
    const quantized = coefficients.reshape([n, -1, 64]).div(tables).round().mul(tables);
    const restored = along(along(quantized, d), d); // d^T C d, per block
    const pixels = restored.reshape([n, h / 8, w / 8, 8, 8]).transpose([0, 1, 3, 2, 4]).reshape([n, h, w, 1])
      .add(128).round().clipByValue(0, 255).div(255);
    const untouched = tf.tensor4d(qualities.map((q) => (q > 0 ? 0 : 1)), [n, 1, 1, 1]);
    return pixels.mul(tf.scalar(1).sub(untouched)).add(images.mul(untouched)) as tf.Tensor4D;
  });
}

/** One value per image of an `n`-image batch, each from `draw`, as [n, 1, 1, 1] to scale or shift each image by. */
function perImage(n: number, draw: () => number): tf.Tensor4D {
  return tf.tensor4d(Float32Array.from({ length: n }, draw), [n, 1, 1, 1]);
}

/**
 * Each image of a [n, h, w, 1] batch of pixels in 0..1 with its contrast
 * scaled about its own mean by a factor drawn from 1 +- `limit` (0.3: 0.7x
 * to 1.3x); not clipped.
 */
export function contrastBatch(images: tf.Tensor4D, limit: number, random: () => number): tf.Tensor4D {
  return tf.tidy(() => {
    const factors = perImage(images.shape[0], () => 1 + (2 * random() - 1) * limit);
    const mean = images.mean([1, 2, 3], true);
    return images.sub(mean).mul(factors).add(mean);
  });
}

/**
 * Photometric augmentation of a [n, h, w, 1] batch of pixels in 0..1:
 * per image a blur, a gamma curve, contrast and brightness, noise and,
 * now and then, an occluding patch, then JPEG re-encoding, each drawn from
 * `options` by `random`; the result is clipped to 0..1.
 */
export function photometricBatch(images: tf.Tensor4D, options: PhotometricOptions, random: () => number): tf.Tensor4D {
  const [n, size] = images.shape;
  const uniform = (limit: number) => (2 * random() - 1) * limit;
  return tf.tidy(() => {
    const blurred = tf.depthwiseConv2d(images, gaussianKernel(), 1, "same");
    let x = images.add(blurred.sub(images).mul(perImage(n, () => random() * options.blur)));
    x = x.clipByValue(1e-4, 1).pow(perImage(n, () => Math.exp(uniform(options.gamma))));
    x = contrastBatch(x as tf.Tensor4D, options.contrast, random);
    x = x.add(perImage(n, () => uniform(options.brightness)));
    const noiseSeed = Math.floor(random() * 2 ** 31);
    x = x.add(
      tf.randomNormal(images.shape, 0, 1, "float32", noiseSeed).mul(perImage(n, () => random() * options.noise)),
    );
    const { mask, gray } = occlusionMasks(n, size, options.occlude, random);
    const m = tf.tensor4d(mask, [n, size, size, 1]);
    x = x.mul(tf.scalar(1).sub(m)).add(m.mul(tf.tensor4d(gray, [n, 1, 1, 1])));
    const [low, high] = options.jpegQuality;
    const qualities = Array.from({ length: n }, () => random()).map((r) =>
      r < options.jpeg ? Math.round(low + random() * (high - low)) : 0
    );
    return jpegBatch(x.clipByValue(0, 1) as tf.Tensor4D, qualities);
  });
}

/** Mixing a batch with itself, shuffled: each method's Beta(alpha, alpha) parameter, 0 for off. */
export interface MixOptions {
  /** mixup (Zhang et al. 2018): whole images blended. */
  mixup: number;
  /** cutmix (Yun et al. 2019): a box of the other image pasted in. */
  cutmix: number;
}

/** A standard normal draw (Box-Muller). */
function normalDraw(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/** A Gamma(shape, 1) draw (Marsaglia and Tsang 2000; below shape 1, boosted by U^(1/shape)). */
function gammaDraw(shape: number, random: () => number): number {
  if (shape < 1) return gammaDraw(shape + 1, random) * Math.pow(1 - random(), 1 / shape);
  const d = shape - 1 / 3, c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const z = normalDraw(random), v = (1 + c * z) ** 3;
    if (v > 0 && Math.log(1 - random()) < z * z / 2 + d - d * v + d * Math.log(v)) return d * v;
  }
}

/** A Beta(alpha, alpha) draw: the share of the first image in a mix. */
export function betaDraw(alpha: number, random: () => number): number {
  const a = gammaDraw(alpha, random), b = gammaDraw(alpha, random);
  return a / (a + b);
}

/**
 * Mix a [n, h, w, 1] batch with a shuffled copy of itself and its targets
 * (flat n x `classes`) in the same shares: mixup blends each image, a share
 * `lambda` ~ Beta(mixup, mixup) of it with 1 - `lambda` of its partner;
 * cutmix pastes one box of the partner (the same box for the whole batch)
 * covering about 1 - `lambda` of the image, the targets mixed by the box's
 * actual area. With both on, each batch takes one at random; with both 0,
 * the batch is returned as it is (and `random` not drawn from).
 */
export function mixBatch(
  images: tf.Tensor4D,
  targets: Float32Array,
  classes: number,
  options: MixOptions,
  random: () => number,
): { images: tf.Tensor4D; targets: Float32Array; lambda: number } {
  if (!(options.mixup > 0) && !(options.cutmix > 0)) return { images, targets, lambda: 1 };
  const [n, height, width] = images.shape;
  const cut = options.cutmix > 0 && (options.mixup <= 0 || random() < 0.5);
  let lambda = betaDraw(cut ? options.cutmix : options.mixup, random);
  const partner = Array.from({ length: n }, (_, i) => i);
  shuffleInPlace(partner, random);
  let mask: Float32Array | undefined;
  if (cut) {
    const side = Math.sqrt(1 - lambda);
    // The box's ends along an axis of `size` pixels, about a centre drawn on it, clipped to the image.
    const span = (size: number, center: number) =>
      [center - side * size / 2, center + side * size / 2].map((v) => Math.min(size, Math.max(0, Math.round(v))));
    const [top, bottom] = span(height, random() * height);
    const [left, right] = span(width, random() * width);
    mask = new Float32Array(height * width);
    for (let y = top; y < bottom; y++) mask.fill(1, y * width + left, y * width + right);
    lambda = 1 - (bottom - top) * (right - left) / (height * width);
  }
  const mixed = tf.tidy(() => {
    const other = tf.gather(images, tf.tensor1d(partner, "int32"));
    const share = mask ? tf.tensor4d(mask, [1, height, width, 1]) : tf.scalar(1 - lambda);
    return images.add(other.sub(images).mul(share)) as tf.Tensor4D;
  });
  const out = new Float32Array(targets.length);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < classes; k++) {
      out[i * classes + k] = lambda * targets[i * classes + k] + (1 - lambda) * targets[partner[i] * classes + k];
    }
  }
  return { images: mixed, targets: out, lambda };
}
