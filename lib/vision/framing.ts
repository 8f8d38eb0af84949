/**
 * How FER2013 frames its faces, measured: BlazeFace's eye centres on
 * FER2013 images (each set in a border of its own edge pixels as wide as
 * the image, so that the face fills a third of the picture, as in photos;
 * the landmarks shift a little with the face's scale), as fractions of the
 * image side. The face pipeline frames its crops the same (FACE_SETTINGS.framing
 * in lib/core/face_pipeline.js holds the rounded medians).
 */
import type { FaceSet } from "../data/dataset.ts";
import { facePixels, IMAGE_SIZE } from "../data/dataset.ts";
import type { GrayImage, RgbaImage } from "../data/images.ts";
import { detectFaces, type DetectorChoice } from "./faces.ts";

/** The medians (and quartiles) of eye distance and eye midpoint over a set's faces, as fractions of the side. */
export interface Framing {
  faces: number;
  found: number;
  eyeDistance: [number, number, number];
  eyeX: [number, number, number];
  eyeY: [number, number, number];
}

/** A gray image in a border of its own edge pixels `border` wide, as RGBA. */
function withBorder(image: GrayImage, border: number): RgbaImage {
  const width = image.width + 2 * border, height = image.height + 2 * border;
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(image.height - 1, Math.max(0, y - border));
    for (let x = 0; x < width; x++) {
      const v = image.data[sy * image.width + Math.min(image.width - 1, Math.max(0, x - border))];
      data.set([v, v, v, 255], 4 * (y * width + x));
    }
  }
  return { width, height, data };
}

/** The lower quartile, median and upper quartile of `values`. */
function quartiles(values: number[]): [number, number, number] {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => Math.round(sorted[Math.floor(q * (sorted.length - 1))] * 1000) / 1000;
  return [at(0.25), at(0.5), at(0.75)];
}

/**
 * Where the eyes of the first `n` faces of `set` sit, by the `far` BlazeFace
 * (the surer of the two on these small faces) or `detector`; faces it
 * misses are counted, not measured.
 */
export async function measureFraming(set: FaceSet, n = 300, detector: DetectorChoice = "far"): Promise<Framing> {
  const border = IMAGE_SIZE, distance: number[] = [], mx: number[] = [], my: number[] = [];
  const count = Math.min(n, set.n);
  for (let row = 0; row < count; row++) {
    const image = withBorder({ width: IMAGE_SIZE, height: IMAGE_SIZE, data: facePixels(set, row) }, border);
    const [face] = await detectFaces(image, { minFace: 1, detector });
    if (!face?.eyes) continue;
    const [[ax, ay], [bx, by]] = face.eyes;
    distance.push(Math.hypot(bx - ax, by - ay) / IMAGE_SIZE);
    mx.push(((ax + bx) / 2 - border) / IMAGE_SIZE);
    my.push(((ay + by) / 2 - border) / IMAGE_SIZE);
  }
  if (distance.length === 0) throw new Error("measureFraming: the detector found no face in the set");
  return {
    faces: count,
    found: distance.length,
    eyeDistance: quartiles(distance),
    eyeX: quartiles(mx),
    eyeY: quartiles(my),
  };
}
