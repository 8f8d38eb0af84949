/**
 * Saliency maps in Deno: SmoothGrad (lib/web/saliency.js, the code the page
 * runs too) on this process's tfjs.
 */
import * as tf from "@tensorflow/tfjs";
import { heatColour, saliencyMaps as shared } from "../web/saliency.js";
import type { RgbaImage } from "../data/images.ts";

/** SmoothGrad settings: noisy copies per image, their noise (input units) and seed. */
export interface SaliencyOptions {
  samples?: number;
  noise?: number;
  seed?: number;
}

/**
 * Saliency maps [n, height, width] of `images` ([n, height, width, 1],
 * normalized as the model expects) for class `classes[i]` of image i (default:
 * its predicted class), each scaled to 0..1 by its own maximum.
 */
export function saliencyMaps(
  model: tf.LayersModel,
  images: tf.Tensor4D,
  classes?: number[],
  options: SaliencyOptions = {},
): Promise<Float32Array> {
  return shared(tf, model, images, classes, options);
}

/** A gray face (size x size) with its saliency map blended over it in the page's colours (heatColour). */
export function saliencyOverlay(face: Uint8Array, map: ArrayLike<number>, size: number): RgbaImage {
  const data = new Uint8Array(size * size * 4);
  for (let p = 0; p < size * size; p++) {
    const [r, g, b, a] = heatColour(map[p]);
    const alpha = a / 255;
    data.set([r, g, b].map((c) => Math.round(alpha * c + (1 - alpha) * face[p])), 4 * p);
    data[4 * p + 3] = 255;
  }
  return { width: size, height: size, data };
}
