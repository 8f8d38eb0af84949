/**
 * Saliency maps in Deno: SmoothGrad (lib/core/saliency.js, the code the page
 * runs too) on this process's tfjs, blended over faces, and notebook 05's
 * grid of right and wrong answers per class.
 */
import * as tf from "@tensorflow/tfjs";
import { heatColour, saliencyMaps as shared } from "../core/saliency.js";
import { encodeGrayPng, encodeRgbaPng, type RgbaImage } from "../data/images.ts";
import { batchTensor, facePixels, type FaceSet, IMAGE_SIZE, PIXELS } from "../data/dataset.ts";
import { encodeBase64 } from "../util/base64.ts";
import { imageGridSvg } from "../util/charts.ts";

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

/**
 * For each class, the first face of `set` the model gets right and the first
 * it gets wrong (by `predicted`), each beside its saliency map for the class
 * the model predicted, as an SVG grid (a class with no such face shows
 * "(none)"). Notebook 05 shows it.
 */
export async function saliencyGridSvg(
  model: tf.LayersModel,
  set: FaceSet,
  predicted: ArrayLike<number>,
  labels: readonly string[],
  options: SaliencyOptions = {},
): Promise<string> {
  const firstRow = (c: number, right: boolean) =>
    set.labels.findIndex((label, i) => label === c && (predicted[i] === c) === right);
  const picks = labels.map((_, c) => [firstRow(c, true), firstRow(c, false)]);
  const rows = picks.flat().filter((row) => row >= 0);
  const images = batchTensor(set, rows);
  const maps = await saliencyMaps(model, images, rows.map((row) => predicted[row]), options);
  images.dispose();
  const url = (png: Uint8Array) => `data:image/png;base64,${encodeBase64(png)}`;
  const face = (row: number) => ({ width: IMAGE_SIZE, height: IMAGE_SIZE, data: facePixels(set, row) });
  const cells = async (row: number) => {
    if (row < 0) return [{ url: "" }, { url: "", caption: "(none)" }];
    const map = maps.subarray(rows.indexOf(row) * PIXELS, (rows.indexOf(row) + 1) * PIXELS);
    return [
      { url: url(await encodeGrayPng(face(row))) },
      {
        url: url(await encodeRgbaPng(saliencyOverlay(face(row).data, map, IMAGE_SIZE))),
        caption: `said ${labels[predicted[row]]}`,
      },
    ];
  };
  const grid = [];
  for (const [c, [right, wrong]] of picks.entries()) {
    grid.push({ title: labels[c], images: [...await cells(right), ...await cells(wrong)] });
  }
  return imageGridSvg(grid, ["right", "saliency", "wrong", "saliency"], 64);
}
