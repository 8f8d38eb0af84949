// The face pipeline shared by Deno (lib/vision/faces.ts) and the browser page
// (app.js, served as /face_pipeline.js): detector settings and detection
// (BlazeFace, decoded back to the photo), the crop framed by the eyes, gray
// conversion, resizing and normalization, the model folder's checks, the
// answer per face (argmax, probabilities by class) and how it is drawn.
// Plain JavaScript without imports, so both load this same file and a photo
// gets the same crops and answers in both.

/**
 * The two BlazeFace detectors (MediaPipe's, as tfjs graph models; served
 * at /detector/<file>), each taking the photo padded to a square and
 * resized to `size`: `near`, the short-range model, for faces near the
 * camera (webcams, portraits, selfies), four times faster; `far`, the
 * full-range model, for group photos and small faces.
 */
export const DETECTORS = Object.freeze({
  near: { file: "blazeface-front.json", size: 128 },
  far: { file: "blazeface.json", size: 256 },
});

/**
 * The detector choices (the page's and the --detector flags'): the
 * detectors each tries in turn (`detectFaces`). `auto` runs near, and far
 * too where near finds no face or a face smaller than
 * FACE_SETTINGS.nearFaceShare of the photo (a group photo, faces away from
 * the camera): it costs near's time on portraits, selfies and webcams, and
 * finds what far finds in group photos (multi_face.jpg's five faces, of
 * which near finds three, loosely framed).
 */
export const DETECTOR_CHOICES = Object.freeze({
  auto: /** @type {const} */ (["near", "far"]),
  near: /** @type {const} */ (["near"]),
  far: /** @type {const} */ (["far"]),
});

/** Detector and crop settings. */
export const FACE_SETTINGS = Object.freeze({
  /** How faces are found unless the page or a flag chooses otherwise (DETECTOR_CHOICES). */
  detector: /** @type {keyof typeof DETECTOR_CHOICES} */ ("auto"),
  /** Least detector score for a face. */
  minScore: 0.5,
  /** Of two detections that overlap more than this (IoU), the lower scored is dropped. */
  maxOverlap: 0.3,
  /** Faces whose crop is smaller than this many pixels (in the photo) are ignored. */
  minFace: 24,
  /**
   * `auto` goes on from near to far when near's smallest face is narrower
   * than this share of the photo's longer side: near, the short-range model,
   * misses and loosely frames faces that small.
   */
  nearFaceShare: 0.2,
  /**
   * Where FER2013's faces sit in their 48x48 images, as fractions of the
   * side: the eye distance, and the midpoint between the eyes (medians of
   * BlazeFace's eyes on PublicTest, lib/vision/framing.ts). Crops are framed
   * the same, upright: levelling the eyes cost 2.4 points on PublicTest
   * faces through the pipeline (RESULTS.md), as the nets learn from FER2013's
   * unlevelled faces.
   */
  framing: { eyeDistance: 0.35, eyeX: 0.5, eyeY: 0.4 },
  /** Border added around a box to crop it when a face has no eye positions, as a fraction of its size. */
  margin: 0.15,
});

/**
 * BlazeFace's anchor centres as fractions of its input's side: 2 per cell
 * of the 16x16 grid, then 6 per cell of the 8x8 grid (the 896 rows of its
 * output), as x, y pairs; the same for both detectors.
 */
const ANCHORS = (() => {
  const out = [];
  for (const [cells, perCell] of [[16, 2], [8, 6]]) {
    for (let y = 0; y < cells; y++) {
      for (let x = 0; x < cells; x++) {
        for (let k = 0; k < perCell; k++) out.push((x + 0.5) / cells, (y + 0.5) / cells);
      }
    }
  }
  return Float32Array.from(out);
})();

/**
 * The detector's input: the RGBA photo centred in a square (black bars),
 * resized bilinearly to size x size, RGB scaled to [-1, 1]; with the
 * square's side and where the photo sits in it.
 * @param {{ width: number; height: number; data: Uint8Array | Uint8ClampedArray }} photo
 * @param {number} size
 * @returns {{ pixels: Float32Array; size: number; side: number; padX: number; padY: number }}
 */
function detectorInput(photo, size) {
  const { width, height, data } = photo;
  const side = Math.max(width, height), padX = (side - width) / 2, padY = (side - height) / 2;
  const pixels = new Float32Array(size * size * 3).fill(-1);
  const step = side / size;
  const at = (x, y, c) => data[4 * (y * width + x) + c];
  for (let v = 0; v < size; v++) {
    const fy = (v + 0.5) * step - 0.5 - padY;
    if (fy < -0.5 || fy > height - 0.5) continue;
    const cy = Math.min(Math.max(fy, 0), height - 1), y0 = Math.floor(cy), y1 = Math.min(y0 + 1, height - 1);
    const wy = cy - y0;
    for (let u = 0; u < size; u++) {
      const fx = (u + 0.5) * step - 0.5 - padX;
      if (fx < -0.5 || fx > width - 0.5) continue;
      const cx = Math.min(Math.max(fx, 0), width - 1), x0 = Math.floor(cx), x1 = Math.min(x0 + 1, width - 1);
      const wx = cx - x0, o = 3 * (v * size + u);
      for (let c = 0; c < 3; c++) {
        const top = at(x0, y0, c) + wx * (at(x1, y0, c) - at(x0, y0, c));
        const bottom = at(x0, y1, c) + wx * (at(x1, y1, c) - at(x0, y1, c));
        pixels[o + c] = (top + wy * (bottom - top)) / 127.5 - 1;
      }
    }
  }
  return { pixels, size, side, padX, padY };
}

/**
 * @typedef {{ box: [number, number, number, number]; score: number; eyes?: [[number, number], [number, number]] }} Face
 * A face: the box it is cropped from, [x, y, width, height] in photo pixels
 * (whole pixels, may reach past the photo's edge), the detector's score, and
 * the centres of its eyes (the left one in the picture first).
 */

/**
 * Faces from BlazeFace's raw output (896 rows of score logit, box centre
 * and size, six landmarks: eyes, nose, mouth, ears; in input pixels from
 * each row's anchor), scored at least minScore, overlaps removed, in photo
 * pixels, framed as FER2013 (`faceFraming`), best score first.
 * @param {Float32Array} raw 896 x 17
 * @param {{ size: number; side: number; padX: number; padY: number }} placement from detectorInput
 * @returns {Face[]}
 */
function decodeFaces(raw, placement) {
  const { size, side, padX, padY } = placement, f = side / size, found = [];
  const point = (i, k) => [
    (raw[i * 17 + k] + ANCHORS[2 * i] * size) * f - padX,
    (raw[i * 17 + k + 1] + ANCHORS[2 * i + 1] * size) * f - padY,
  ];
  for (let i = 0; i < ANCHORS.length / 2; i++) {
    const score = 1 / (1 + Math.exp(-raw[i * 17]));
    if (score < FACE_SETTINGS.minScore) continue;
    const [cx, cy] = point(i, 1), w = raw[i * 17 + 3] * f, h = raw[i * 17 + 4] * f;
    found.push({ score, outline: [cx - w / 2, cy - h / 2, w, h], eyes: [point(i, 5), point(i, 7)] });
  }
  found.sort((a, b) => b.score - a.score);
  const kept = [];
  for (const d of found) if (kept.every((k) => iou(k.outline, d.outline) <= FACE_SETTINGS.maxOverlap)) kept.push(d);
  return kept.map((d) => {
    const eyes = /** @type {[[number, number], [number, number]]} */ (d.eyes[0][0] <= d.eyes[1][0]
      ? d.eyes
      : [d.eyes[1], d.eyes[0]]);
    return { box: faceFraming(eyes), score: d.score, eyes };
  });
}

/**
 * Intersection over union of two boxes [x, y, width, height].
 * @param {number[]} a
 * @param {number[]} b
 * @returns {number}
 */
export function iou(a, b) {
  const w = Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / (a[2] * a[3] + b[2] * b[3] - inter);
}

/**
 * A face's box: the upright square it fills as FER2013's faces fill their
 * images (FACE_SETTINGS.framing), placed by its eyes, in whole photo pixels.
 * @param {[[number, number], [number, number]]} eyes
 * @returns {[number, number, number, number]}
 */
export function faceFraming(eyes) {
  const { eyeDistance, eyeX, eyeY } = FACE_SETTINGS.framing;
  const [[ax, ay], [bx, by]] = eyes;
  const side = Math.max(1, Math.round(Math.hypot(bx - ax, by - ay) / eyeDistance));
  return [Math.round((ax + bx) / 2 - eyeX * side), Math.round((ay + by) / 2 - eyeY * side), side, side];
}

/**
 * A face's eye centres as reported (JSON lines, the page's results): to a
 * tenth of a pixel.
 * @param {[[number, number], [number, number]]} eyes
 * @returns {[[number, number], [number, number]]}
 */
export function reportedEyes(eyes) {
  const round = (/** @type {number} */ v) => Math.round(v * 10) / 10;
  return [[round(eyes[0][0]), round(eyes[0][1])], [round(eyes[1][0]), round(eyes[1][1])]];
}

/**
 * Faces in a photo, best first: the BlazeFace models of `detectors` (tfjs
 * graph models run by the tfjs module `tf`, with their input sides; see
 * DETECTOR_CHOICES) in turn on the photo padded square, crops smaller than
 * minFace dropped. The next model runs only where the faces so far are none
 * or include one smaller than FACE_SETTINGS.nearFaceShare of the photo; its
 * faces then come first, with the earlier model's that it did not find.
 * @param {any} tf
 * @param {{ model: any; size: number }[]} detectors
 * @param {{ width: number; height: number; data: Uint8Array | Uint8ClampedArray }} photo RGBA
 * @param {number} [minFace]
 * @returns {Promise<Face[]>}
 */
export async function detectFaces(tf, detectors, photo, minFace = FACE_SETTINGS.minFace) {
  /** @type {Face[]} */
  let faces = [];
  const small = FACE_SETTINGS.nearFaceShare * Math.max(photo.width, photo.height);
  for (const { model, size } of detectors) {
    const found = (await runDetector(tf, model, size, photo)).filter((face) => face.box[2] >= minFace);
    faces = [...found, ...faces.filter((face) => !found.some((f) => sameFace(f.box, face.box)))];
    if (faces.length && faces.every((face) => face.box[2] >= small)) break;
  }
  return faces;
}

/**
 * One BlazeFace model's faces in a photo (`decodeFaces`).
 * @param {any} tf
 * @param {any} model
 * @param {number} size
 * @param {{ width: number; height: number; data: Uint8Array | Uint8ClampedArray }} photo
 * @returns {Promise<Face[]>}
 */
async function runDetector(tf, model, size, photo) {
  const input = detectorInput(photo, size);
  const output = tf.tidy(() => {
    const outputs = model.execute(tf.tensor4d(input.pixels, [1, size, size, 3]));
    // Four outputs (scores and regressions of the 8x8 and 16x16 grids), told apart by size.
    const [scores8, scores16, boxes8, boxes16] = [...outputs].sort((a, b) => a.size - b.size);
    return tf.concat([tf.concat([scores16, boxes16], 2), tf.concat([scores8, boxes8], 2)], 1);
  });
  const raw = await output.data();
  output.dispose();
  return decodeFaces(raw, input);
}

/**
 * Whether two detectors' boxes are one face: they overlap more than
 * FACE_SETTINGS.maxOverlap, or one's centre lies in the other.
 * @param {number[]} a
 * @param {number[]} b
 * @returns {boolean}
 */
function sameFace(a, b) {
  const inside = (/** @type {number[]} */ p, /** @type {number[]} */ q) =>
    p[0] + p[2] / 2 > q[0] && p[0] + p[2] / 2 < q[0] + q[2] && p[1] + p[3] / 2 > q[1] && p[1] + p[3] / 2 < q[1] + q[3];
  return iou(a, b) > FACE_SETTINGS.maxOverlap || inside(a, b) || inside(b, a);
}

/**
 * A tensor's pixels, [height, width, 3 or 4] values 0-255 (a tfjs Tensor3D,
 * read asynchronously), as RGBA; undefined for any other shape.
 * @param {{ shape: number[]; rank: number; data(): Promise<ArrayLike<number>> }} tensor
 * @returns {Promise<{ width: number; height: number; data: Uint8Array } | undefined>}
 */
export async function tensorRgba(tensor) {
  const [height, width, channels] = tensor.shape;
  if (tensor.rank !== 3 || (channels !== 3 && channels !== 4)) return undefined;
  const values = await tensor.data();
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    for (let c = 0; c < 3; c++) data[4 * i + c] = values[channels * i + c];
    data[4 * i + 3] = channels === 4 ? values[4 * i + 3] : 255;
  }
  return { width, height, data };
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
 * A face's crop for the model, `size` x `size` (`cropFace`): its box as it
 * is when the detector framed it by the eyes (`faceFraming`), else the box
 * grown by FACE_SETTINGS.margin.
 * @param {{ width: number; height: number; data: Uint8Array }} gray
 * @param {{ box: [number, number, number, number]; eyes?: [[number, number], [number, number]] }} face
 * @param {number} size
 * @returns {{ width: number; height: number; data: Uint8Array }}
 */
export function faceCrop(gray, face, size) {
  return cropFace(gray, face.box, size, face.eyes ? 0 : FACE_SETTINGS.margin);
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
 * metadata says: the faces of a gray photo, cropped (`faceCrop`),
 * normalized and classified in one batch.
 * @param {any} tf the tfjs module the model runs on
 * @param {any} model a tfjs LayersModel
 * @param {{ inputSize: number; normalization: { scale: number; offset: number }; temperature?: number }} metadata
 * @param {{ width: number; height: number; data: Uint8Array }} gray
 * @param {{ box: [number, number, number, number]; eyes?: [[number, number], [number, number]] }[]} faces
 * @returns {Promise<number[][]>}
 */
export async function classifyFaces(tf, model, metadata, gray, faces) {
  const size = metadata.inputSize;
  const batch = modelInput(faces.map((face) => faceCrop(gray, face, size)), metadata.normalization);
  const input = tf.tensor4d(batch, [faces.length, size, size, 1]);
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
