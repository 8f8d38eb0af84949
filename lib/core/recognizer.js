// EmotionRecognizer for the browser: the package's API (load, detect,
// classify, tracker, dispose) on what a page has (ImageData, <img>, <canvas>,
// OffscreenCanvas, <video>, ImageBitmap, VideoFrame, a Blob, a Tensor3D),
// with the model and detector files fetched from URLs: by default the folders
// `model/` and `detector/` beside the module (`deno task build:browser` puts
// them there), or any URL given. tfjs is not bundled: the page passes its own
// `tf` (4.22, WASM or WebGPU backend). Detection, crops, answers and tracking
// are face_pipeline.js's and tracker.js's, the files Deno runs, so a photo gets
// the same faces in both; `deno task serve`'s page runs this build.

import {
  argmax,
  calibrate,
  detectFaces,
  DETECTOR_CHOICES,
  DETECTORS,
  FACE_SETTINGS,
  faceCrop,
  metadataProblem,
  modelInput,
  probabilityMap,
  reportedEyes,
  tensorRgba,
  toGray,
} from "./face_pipeline.js";
import { foldBatchNorm } from "./fold.js";
import { FaceTracker, trackFaces } from "./tracker.js";

/** An error naming the input or option and what is wrong with it. */
export class EmotionError extends Error {
  name = "EmotionError";
}

/**
 * A browser image source as RGBA pixels { width, height, data }.
 * @param {any} tf
 * @param {any} input
 */
async function pixelsOf(tf, input) {
  if (input instanceof tf.Tensor) {
    const image = await tensorRgba(input);
    if (!image) throw new EmotionError(`image: a Tensor3D [height, width, 3 or 4] was expected, got [${input.shape}]`);
    return image;
  }
  if (typeof ImageData !== "undefined" && input instanceof ImageData) return input;
  // Decoded pixels already: { width, height, data } with 4 bytes (RGBA) a pixel.
  if (input?.data?.length && input.data.length === input.width * input.height * 4) return input;
  if (typeof Blob !== "undefined" && input instanceof Blob) {
    try {
      input = await createImageBitmap(input, { imageOrientation: "from-image" });
    } catch {
      throw new EmotionError("image: the Blob is not an image the browser can decode");
    }
  }
  const width = input.videoWidth || input.naturalWidth || input.displayWidth || input.width;
  const height = input.videoHeight || input.naturalHeight || input.displayHeight || input.height;
  if (!(width > 0 && height > 0)) throw new EmotionError("image: it has no pixels yet (not loaded?)");
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(input, 0, 0, width, height);
  return ctx.getImageData(0, 0, width, height);
}

/** Finds faces and reads their emotions in the browser with one loaded model. */
export class EmotionRecognizer {
  /**
   * @param {any} tf
   * @param {any} model the folded tfjs model
   * @param {any} metadata the model's metadata.json
   * @param {{ model: any; size: number }[]} detectors
   * @param {{ calibrated?: boolean; minFace?: number }} options
   */
  constructor(tf, model, metadata, detectors, options) {
    this.tf = tf;
    this.model = model;
    this.metadata = metadata;
    this.detectors = detectors;
    this.options = options;
  }

  /**
   * Load the model (the folder `model/` beside this module unless `model`
   * gives a folder URL) and the face detector (`auto`, `near` or `far`;
   * its files from `detectorUrl`, by default `detector/` beside this module).
   * @param {{ tf: any; model?: string | URL; detector?: string; detectorUrl?: string | URL; calibrated?: boolean; minFace?: number }} options
   */
  static async load(options) {
    const tf = options?.tf;
    if (!tf?.loadLayersModel) throw new EmotionError("tf: pass your @tensorflow/tfjs module ({ tf })");
    const choice = options.detector ?? FACE_SETTINGS.detector;
    if (!(choice in DETECTOR_CHOICES)) throw new EmotionError(`detector: "${choice}" is not one of auto, near, far`);
    const base = new URL(options.model ?? new URL("./model/", import.meta.url), location.href);
    const folder = base.href.endsWith("/") ? base : new URL(`${base.href}/`);
    const response = await fetch(new URL("metadata.json", folder));
    if (!response.ok) throw new EmotionError(`model: ${new URL("metadata.json", folder)}: HTTP ${response.status}`);
    const metadata = await response.json();
    const saved = await tf.loadLayersModel(new URL("model.json", folder).href);
    const problem = metadataProblem(metadata, {
      inputShape: saved.inputs[0].shape,
      classes: saved.outputs[0].shape[1],
    });
    if (problem) throw new EmotionError(`model: metadata.json is damaged: ${problem}`);
    const model = foldBatchNorm(tf, saved); // BatchNorm folded into the convolutions, as in Deno
    saved.dispose();
    const detectorUrl = new URL(options.detectorUrl ?? new URL("./detector/", import.meta.url), location.href);
    const detectors = await Promise.all(DETECTOR_CHOICES[choice].map(async (kind) => ({
      model: await tf.loadGraphModel(new URL(DETECTORS[kind].file, detectorUrl).href),
      size: DETECTORS[kind].size,
    })));
    return new EmotionRecognizer(tf, model, metadata, detectors, options);
  }

  /** The model's classes, in the order of its outputs. */
  get labels() {
    return this.metadata.labels;
  }

  /**
   * The faces in an image, best first: { box, score, eyes, emotion, probabilities }, box [x, y, width, height] in
   * the image's pixels.
   * @param {any} input
   */
  async detect(input) {
    const photo = await pixelsOf(this.tf, input);
    const faces = await detectFaces(this.tf, this.detectors, photo, this.options.minFace);
    if (faces.length === 0) return [];
    const gray = toGray(photo);
    const rows = await this.probabilities(faces.map((f) => faceCrop(gray, f, this.metadata.inputSize)));
    return faces.map((face, i) => ({
      box: face.box,
      score: Math.round(face.score * 1e4) / 1e4,
      eyes: reportedEyes(face.eyes),
      emotion: this.labels[argmax(rows[i])],
      probabilities: probabilityMap(this.labels, rows[i]),
    }));
  }

  /**
   * Emotions of gray crops (inputSize x inputSize bytes each) from a detector of the page's own.
   * @param {Uint8Array[]} crops
   */
  async classify(crops) {
    const size = this.metadata.inputSize;
    const grays = crops.map((crop, i) => {
      if (crop?.length !== size * size) throw new EmotionError(`crops[${i}]: expected ${size}x${size} gray bytes`);
      return { width: size, height: size, data: crop };
    });
    const rows = await this.probabilities(grays);
    return rows.map((row) => ({ emotion: this.labels[argmax(row)], probabilities: probabilityMap(this.labels, row) }));
  }

  /**
   * Calibrated class probabilities of gray crops, a row each.
   * @param {{ width: number; height: number; data: Uint8Array }[]} crops
   */
  async probabilities(crops) {
    const size = this.metadata.inputSize;
    const input = this.tf.tensor4d(modelInput(crops, this.metadata.normalization), [crops.length, size, size, 1]);
    const output = this.model.predict(input);
    const rows = await output.array();
    this.tf.dispose([input, output]);
    const temperature = this.options.calibrated === false ? 1 : this.metadata.temperature ?? 1;
    return rows.map((row) => calibrate(row, temperature));
  }

  /**
   * A tracker for one video: each frame's faces (from `detect`) at a time in seconds in, with a stable `track` id
   * and `smoothed` probabilities out.
   * @param {{ timeConstant?: number; maxMissingSeconds?: number }} [settings]
   */
  tracker(settings = {}) {
    const tracker = new FaceTracker(settings);
    /** @param {number} time @param {any[]} faces */
    return { update: (time, faces) => trackFaces(tracker, time, faces, this.labels) };
  }

  /** Free the model and the detectors. */
  dispose() {
    this.model.dispose();
    for (const { model } of this.detectors) model.dispose();
  }
}

// What the page's own scripts (app.js, live.js, explorer.js) take from the build besides the recognizer, so that
// the page loads one file of lib/core/: the pipeline's steps, the tracker, the saliency maps and the figure helpers.
export {
  argmax,
  classifyFaces,
  detectFaces,
  DETECTOR_CHOICES,
  FACE_SETTINGS,
  faceCrop,
  faceMark,
  modelInput,
  probabilityMap,
  toGray,
} from "./face_pipeline.js";
export { FaceTracker, TRACK_SETTINGS } from "./tracker.js";
export { heatColour, saliencyMaps } from "./saliency.js";
export { registerFilterGradient } from "./filter_gradient.js";
export { CLASS_COLOURS, explorerFigure } from "./explorer_figure.js";
