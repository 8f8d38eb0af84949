// The face pipeline shared by Deno (lib/vision/faces.ts) and the browser page
// (app.js, served as /face_pipeline.js): detector settings and detection,
// mapping detections back to the photo, the square crop with its margin, gray
// conversion, resizing and normalization, the model folder's checks, the
// answer per face (argmax, probabilities by class) and how it is drawn.
// Plain JavaScript without imports, so both load this same file and a photo
// gets the same crops and answers in both.

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
 * Face boxes in photo pixels and detector scores, biggest first: face-api's
 * tiny face detector on the photo scaled to maxDetectSide.
 * @param {any} faceapi face-api (its Deno build, or the page's bundle)
 * @param {any} tf the tfjs module that face-api runs on
 * @param {{ width: number; height: number; data: Uint8Array | Uint8ClampedArray }} photo RGBA
 * @param {number} [minFace]
 * @returns {Promise<{ box: [number, number, number, number]; score: number }[]>}
 */
export async function detectFaces(faceapi, tf, photo, minFace = FACE_SETTINGS.minFace) {
  const scale = detectionScale(photo.width, photo.height);
  const input = tf.tidy(() => detectorInput(tf, photo.data, photo.width, photo.height, scale));
  try {
    const options = new faceapi.TinyFaceDetectorOptions({
      inputSize: FACE_SETTINGS.detectorInputSize,
      scoreThreshold: FACE_SETTINGS.minScore,
    });
    return photoBoxes(await faceapi.detectAllFaces(input, options), scale, photo, minFace);
  } finally {
    input.dispose();
  }
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
  if (!(outWidth >= 1 && outHeight >= 1)) throw new Error(`resizeGray: cannot resize to ${outWidth}x${outHeight}`);
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
 * Each face's class probabilities, temperature-scaled as the model's
 * metadata says: the faces at `boxes` of a gray photo, cropped, normalized
 * and classified in one batch.
 * @param {any} tf the tfjs module the model runs on
 * @param {any} model a tfjs LayersModel
 * @param {{ inputSize: number; normalization: { scale: number; offset: number }; temperature?: number }} metadata
 * @param {{ width: number; height: number; data: Uint8Array }} gray
 * @param {[number, number, number, number][]} boxes
 * @returns {Promise<number[][]>}
 */
export async function classifyFaces(tf, model, metadata, gray, boxes) {
  const size = metadata.inputSize;
  const batch = modelInput(boxes.map((box) => cropFace(gray, box, size)), metadata.normalization);
  const input = tf.tensor4d(batch, [boxes.length, size, size, 1]);
  const output = model.predict(input);
  input.dispose();
  const rows = await output.array();
  output.dispose();
  return rows.map((row) => calibrate(row, metadata.temperature ?? 1));
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

/**
 * The index of the largest value of a row (the first of equals).
 * @param {ArrayLike<number>} row
 * @returns {number}
 */
export function argmax(row) {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/**
 * A row of class probabilities as { label: probability }, rounded to `digits` decimals.
 * @param {readonly string[]} labels
 * @param {ArrayLike<number>} row
 * @param {number} [digits]
 * @returns {Record<string, number>}
 */
export function probabilityMap(labels, row, digits = 4) {
  const unit = 10 ** digits;
  return Object.fromEntries(labels.map((label, c) => [label, Math.round(row[c] * unit) / unit]));
}

/**
 * How a face's box and label are drawn on an image of the given size: line
 * width, font size, the label's text and where its baseline starts.
 * @param {[number, number, number, number]} box in the drawing's pixels
 * @param {string} emotion
 * @param {number} probability
 * @param {{ width: number; height: number }} drawing
 * @returns {{ stroke: number; font: number; text: string; x: number; y: number }}
 */
export function faceMark(box, emotion, probability, drawing) {
  const side = Math.max(drawing.width, drawing.height);
  const stroke = Math.max(2, Math.round(side / 300)), font = Math.max(12, Math.round(side / 40));
  const [x, y, , h] = box;
  return {
    stroke,
    font,
    text: `${emotion} ${(100 * probability).toFixed(0)}%`,
    x,
    y: y > font + 4 ? y - 4 : y + h + font,
  };
}

/**
 * What is wrong with a model folder's metadata.json for this pipeline, as
 * "field: problem", or null when nothing is: checked on its own and against
 * the model (its input shape, its number of output classes).
 * @param {any} metadata
 * @param {{ inputShape: (number | null)[]; classes: number }} model
 * @returns {string | null}
 */
export function metadataProblem(metadata, model) {
  if (!metadata || typeof metadata !== "object" || Array.isArray(metadata)) return "(whole file): not a JSON object";
  const { inputSize: size, channels, labels, normalization, temperature } = metadata;
  const [, height, width, depth] = model.inputShape;
  if (!Number.isInteger(size) || size < 8 || size > 1024) {
    return `inputSize: ${JSON.stringify(size)} is not a whole number of pixels from 8 to 1024`;
  }
  if (height !== size || width !== size) return `inputSize: ${size}, but the model takes ${height}x${width} images`;
  if (channels !== 1 || depth !== 1) {
    return `channels: ${JSON.stringify(channels)}; the pipeline and model take 1 (gray)`;
  }
  if (!Array.isArray(labels) || labels.some((l) => typeof l !== "string" || l === "")) {
    return "labels: not a list of class names";
  }
  if (new Set(labels).size !== labels.length) return "labels: a class name appears twice";
  if (labels.length !== model.classes) {
    return `labels: ${labels.length} names, but the model has ${model.classes} output classes`;
  }
  if (!Number.isFinite(normalization?.scale) || normalization.scale === 0 || !Number.isFinite(normalization?.offset)) {
    return "normalization: needs a finite, non-zero scale and a finite offset";
  }
  if (temperature !== undefined && !(Number.isFinite(temperature) && temperature > 0)) {
    return `temperature: ${JSON.stringify(temperature)} is not a positive number`;
  }
  return null;
}
