/** Synthetic photos for the tests and the prediction benchmark: a known face at a known place. */
import type { GrayImage, RgbaImage } from "../data/images.ts";
import { resizeGray } from "../core/face_pipeline.js";

/**
 * A 640x480 test photo: a gray face scaled to `side` px with its top-left
 * corner at (x, y), on a striped blue-grey background; with the face's box.
 */
export function sceneWithFace(
  face: GrayImage,
  side = 200,
  [x0, y0] = [220, 140],
): { image: RgbaImage; box: [number, number, number, number] } {
  const big = resizeGray(face, side, side);
  const [width, height] = [640, 480];
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inFace = x >= x0 && x < x0 + side && y >= y0 && y < y0 + side;
      const v = inFace ? big.data[(y - y0) * side + (x - x0)] : 90 + (x % 50);
      data.set([v, v, inFace ? v : 140, 255], 4 * (y * width + x));
    }
  }
  return { image: { width, height, data }, box: [x0, y0, side, side] };
}
