// The face pipeline shared by Deno (lib/vision/faces.ts) and the browser page
// (app.js, served as /face_pipeline.js): detector settings, mapping detections
// back to the photo, the square crop with its margin, gray conversion,
// resizing and normalization. Plain JavaScript without imports, so both load
// this same file and a photo gets the same crops and answers in both.

/** Detector and crop settings. */
export const FACE_SETTINGS = Object.freeze({
  /** Photos are scaled down to at most this many pixels on the longer side for detection. */
  maxDetectSide: 1024,
  /** The tiny face detector's input size and score threshold. */
  detectorInputSize: 416,
  minScore: 0.4,
  /** Faces smaller than this many pixels on their shorter side (in the photo) are ignored. */
  minFace: 24,
  /** Border added around each detected box, as a fraction of its size. */
  margin: 0.15,
});

/**
 * The scale of the detection input: 1, or less for photos over maxDetectSide.
 * @param {number} width
 * @param {number} height
 * @returns {number}
 */
export function detectionScale(width, height) {
  return Math.min(1, FACE_SETTINGS.maxDetectSide / Math.max(width, height));
}

/**
 * The detector's input tensor: the RGB of RGBA pixels, scaled by `scale`
 * with tfjs's bilinear resize and rounded (call inside `tf.tidy`).
 * @param {any} tf the tfjs module (Deno's or the browser's)
 * @param {Uint8Array | Uint8ClampedArray} rgba
 * @param {number} width
 * @param {number} height
 * @param {number} scale
 * @returns {any} a [height, width, 3] int32 tensor
 */
export function detectorInput(tf, rgba, width, height, scale) {
  const rgb = tf.tensor3d(Int32Array.from(rgba), [height, width, 4], "int32").slice([0, 0, 0], [height, width, 3]);
  if (scale >= 1) return rgb;
  return tf.image.resizeBilinear(rgb, [Math.round(height * scale), Math.round(width * scale)]).round().toInt();
}

/**
 * Detections on the scaled input as photo boxes [x, y, width, height] (whole
 * pixels, inside the photo), smaller than minFace dropped, biggest first.
 * @param {{ box: { x: number; y: number; width: number; height: number }; score: number }[]} detections
 * @param {number} scale
 * @param {{ width: number; height: number }} photo
 * @param {number} [minFace]
 * @returns {{ box: [number, number, number, number]; score: number }[]}
 */
export function photoBoxes(detections, scale, photo, minFace = FACE_SETTINGS.minFace) {
  return detections
    .map((d) => {
      const x = d.box.x / scale, y = d.box.y / scale, w = d.box.width / scale, h = d.box.height / scale;
      const x0 = Math.max(0, Math.round(x)), y0 = Math.max(0, Math.round(y));
      const x1 = Math.min(photo.width, Math.round(x + w)), y1 = Math.min(photo.height, Math.round(y + h));
      /** @type {[number, number, number, number]} */
      const box = [x0, y0, Math.max(0, x1 - x0), Math.max(0, y1 - y0)];
      return { box, score: d.score };
    })
    .filter((d) => Math.min(d.box[2], d.box[3]) >= minFace)
    .sort((a, b) => b.box[2] * b.box[3] - a.box[2] * a.box[3]);
}

/**
 * RGBA to gray with the ITU-R BT.601 luma weights (as PIL's "L" mode).
 * @param {{ width: number; height: number; data: Uint8Array | Uint8ClampedArray }} image
 * @returns {{ width: number; height: number; data: Uint8Array }}
 */
export function toGray(image) {
  const { width, height, data } = image;
  const out = new Uint8Array(width * height);
  for (let i = 0, j = 0; i < out.length; i++, j += 4) {
    out[i] = Math.round(0.299 * data[j] + 0.587 * data[j + 1] + 0.114 * data[j + 2]);
  }
  return { width, height, data: out };
}

/**
 * Average 2x2 blocks (an odd last row or column is dropped).
 * @param {{ width: number; height: number; data: Uint8Array }} image
 * @returns {{ width: number; height: number; data: Uint8Array }}
 */
function halve(image) {
  const width = image.width >> 1, height = image.height >> 1;
  const out = new Uint8Array(width * height);
  const d = image.data, w = image.width;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = 2 * y * w + 2 * x;
      out[y * width + x] = (d[i] + d[i + 1] + d[i + w] + d[i + w + 1] + 2) >> 2;
    }
  }
  return { width, height, data: out };
}

/**
 * Resize a gray image with bilinear interpolation (pixel centres aligned,
 * like OpenCV's INTER_LINEAR); shrinking by more than 2x first box-averages
 * so small outputs don't alias.
 * @param {{ width: number; height: number; data: Uint8Array }} image
 * @param {number} outWidth
 * @param {number} outHeight
 * @returns {{ width: number; height: number; data: Uint8Array }}
 */
export function resizeGray(image, outWidth, outHeight) {
  let src = image;
  while (src.width >= 2 * outWidth && src.height >= 2 * outHeight) src = halve(src);
  if (src.width === outWidth && src.height === outHeight) return src;
  const out = new Uint8Array(outWidth * outHeight);
  const sx = src.width / outWidth, sy = src.height / outHeight;
  for (let y = 0; y < outHeight; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), src.height - 1);
    const y0 = Math.floor(fy), y1 = Math.min(y0 + 1, src.height - 1), wy = fy - y0;
    for (let x = 0; x < outWidth; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), src.width - 1);
      const x0 = Math.floor(fx), x1 = Math.min(x0 + 1, src.width - 1), wx = fx - x0;
      const top = src.data[y0 * src.width + x0] * (1 - wx) + src.data[y0 * src.width + x1] * wx;
      const bottom = src.data[y1 * src.width + x0] * (1 - wx) + src.data[y1 * src.width + x1] * wx;
      out[y * outWidth + x] = Math.round(top * (1 - wy) + bottom * wy);
    }
  }
  return { width: outWidth, height: outHeight, data: out };
}

/**
 * The square a face is cropped from: `box` grown by `margin` on each side,
 * centred on it, as [left, top, side] in photo pixels (may leave the photo).
 * @param {[number, number, number, number]} box
 * @param {number} [margin]
 * @returns {[number, number, number]}
 */
export function cropSquare(box, margin = FACE_SETTINGS.margin) {
  const [x, y, w, h] = box;
  const n = Math.max(1, Math.round(Math.max(w, h) * (1 + 2 * margin)));
  return [Math.round(x + w / 2 - n / 2), Math.round(y + h / 2 - n / 2), n];
}

/**
 * A square crop around `box`, grown by `margin`, resized to `size` x `size`;
 * where the square leaves the photo its edge pixels repeat.
 * @param {{ width: number; height: number; data: Uint8Array }} gray
 * @param {[number, number, number, number]} box
 * @param {number} size
 * @param {number} [margin]
 * @returns {{ width: number; height: number; data: Uint8Array }}
 */
export function cropFace(gray, box, size, margin = FACE_SETTINGS.margin) {
  const [x0, y0, n] = cropSquare(box, margin);
  const data = new Uint8Array(n * n);
  for (let j = 0; j < n; j++) {
    const sy = Math.min(gray.height - 1, Math.max(0, y0 + j));
    for (let i = 0; i < n; i++) {
      const sx = Math.min(gray.width - 1, Math.max(0, x0 + i));
      data[j * n + i] = gray.data[sy * gray.width + sx];
    }
  }
  return resizeGray({ width: n, height: n, data }, size, size);
}

/**
 * Gray crops as the model's input: one Float32Array [n * size * size] scaled
 * as the model's metadata says.
 * @param {{ data: Uint8Array }[]} crops
 * @param {{ scale: number; offset: number }} normalization
 * @returns {Float32Array}
 */
export function modelInput(crops, normalization) {
  const size = crops.length ? crops[0].data.length : 0;
  const out = new Float32Array(crops.length * size);
  crops.forEach((crop, i) => {
    for (let p = 0; p < size; p++) out[i * size + p] = crop.data[p] * normalization.scale + normalization.offset;
  });
  return out;
}

/**
 * Class probabilities with temperature scaling applied: softmax(log p / T),
 * the calibration fitted on PublicTest (metadata.temperature); T = 1 leaves
 * them as they are.
 * @param {ArrayLike<number>} probabilities one row
 * @param {number} [temperature]
 * @returns {number[]}
 */
export function calibrate(probabilities, temperature = 1) {
  const row = Array.from(probabilities);
  if (temperature === 1) return row;
  const logits = row.map((p) => Math.log(Math.max(p, 1e-12)) / temperature);
  const top = Math.max(...logits);
  const exps = logits.map((l) => Math.exp(l - top));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}
