/**
 * Saliency maps in Deno: SmoothGrad (lib/web/saliency.js, the code the page
 * runs too) on this process's tfjs.
 */
import * as tf from "@tensorflow/tfjs";
import { saliencyMaps as shared } from "../web/saliency.js";

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
