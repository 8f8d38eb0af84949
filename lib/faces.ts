/**
 * Emotions in photos: find faces with face-api's tiny face detector (its
 * weights ship inside the npm package, so nothing is downloaded), crop each
 * with a margin, convert to the model's gray input and classify.
 *
 *   const faces = await recognizeEmotions(loaded, await decodeImage(bytes, name));
 */
import * as tf from "@tensorflow/tfjs";
import * as faceapi from "@vladmandic/face-api/dist/face-api.node-wasm.js";
import type { LoadedModel } from "./model_io.ts";
import { type GrayImage, resizeGray, type RgbaImage, toGray } from "./images.ts";

/** One face found in an image. */
export interface FaceResult {
  /** [x, y, width, height] in the image's pixels. */
  box: [number, number, number, number];
  /** Detector confidence (1 when detection is off). */
  score: number;
  emotion: string;
  probabilities: Record<string, number>;
}

export interface FaceOptions {
  /** Treat the whole image as one face crop (no detection). */
  noDetect?: boolean;
  /** Ignore faces smaller than this many pixels on their shorter side. */
  minFace?: number;
  /** Detector score threshold. */
  minScore?: number;
  /** Extra border around each detected box, as a fraction of its size. */
  margin?: number;
  /** Images are scaled down to at most this many pixels on the longer side before detection. */
  maxDetectSide?: number;
}

const DEFAULTS: Required<FaceOptions> = {
  noDetect: false,
  minFace: 24,
  minScore: 0.4,
  margin: 0.15,
  maxDetectSide: 1024,
};

let detectorReady: Promise<void> | undefined;

/** Load the tiny face detector's weights from the face-api package (once). */
export function loadFaceDetector(): Promise<void> {
  detectorReady ??= (async () => {
    const entry = new URL(import.meta.resolve("@vladmandic/face-api/dist/face-api.node-wasm.js")).pathname;
    await faceapi.nets.tinyFaceDetector.loadFromDisk(entry.replace(/dist\/[^/]+$/, "model/"));
  })();
  return detectorReady;
}

/** Face boxes (image pixels) and scores, biggest first. */
export async function detectFaces(
  image: RgbaImage,
  options: FaceOptions = {},
): Promise<{ box: FaceResult["box"]; score: number }[]> {
  const o = { ...DEFAULTS, ...options };
  await loadFaceDetector();
  const scale = Math.min(1, o.maxDetectSide / Math.max(image.width, image.height));
  const input = tf.tidy(() => {
    const rgba = tf.tensor3d(image.data, [image.height, image.width, 4], "int32");
    const rgb = rgba.slice([0, 0, 0], [image.height, image.width, 3]);
    return scale < 1
      ? tf.image.resizeBilinear(rgb, [Math.round(image.height * scale), Math.round(image.width * scale)]).round()
        .toInt()
      : rgb;
  }) as tf.Tensor3D;
  try {
    const found = await faceapi.detectAllFaces(
      input as never,
      new faceapi.TinyFaceDetectorOptions({ inputSize: 416, scoreThreshold: o.minScore }),
    );
    return found
      .map((d: { box: { x: number; y: number; width: number; height: number }; score: number }) => ({
        box: clampBox([d.box.x / scale, d.box.y / scale, d.box.width / scale, d.box.height / scale], image),
        score: d.score,
      }))
      .filter((d: { box: FaceResult["box"] }) => Math.min(d.box[2], d.box[3]) >= o.minFace)
      .sort((a: { box: FaceResult["box"] }, b: { box: FaceResult["box"] }) =>
        b.box[2] * b.box[3] - a.box[2] * a.box[3]
      );
  } finally {
    input.dispose();
  }
}

function clampBox([x, y, w, h]: number[], image: { width: number; height: number }): FaceResult["box"] {
  const x0 = Math.max(0, Math.round(x)), y0 = Math.max(0, Math.round(y));
  const x1 = Math.min(image.width, Math.round(x + w)), y1 = Math.min(image.height, Math.round(y + h));
  return [x0, y0, Math.max(0, x1 - x0), Math.max(0, y1 - y0)];
}

/** A square crop around `box`, grown by `margin`, resized to `size` x `size` (edges repeat). */
export function cropFace(gray: GrayImage, box: FaceResult["box"], margin: number, size: number): GrayImage {
  const [x, y, w, h] = box;
  const side = Math.max(w, h) * (1 + 2 * margin);
  const cx = x + w / 2, cy = y + h / 2;
  const n = Math.max(1, Math.round(side));
  const x0 = Math.round(cx - n / 2), y0 = Math.round(cy - n / 2);
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

/** Class probabilities for gray face crops of the model's input size; row-major [n, classes]. */
export async function classifyCrops(loaded: LoadedModel, crops: GrayImage[]): Promise<Float32Array> {
  const { inputSize, normalization } = loaded.metadata;
  const pixels = new Float32Array(crops.length * inputSize * inputSize);
  crops.forEach((crop, i) => {
    for (let p = 0; p < crop.data.length; p++) {
      pixels[i * crop.data.length + p] = crop.data[p] * normalization.scale + normalization.offset;
    }
  });
  const probabilities = tf.tidy(() =>
    loaded.model.predict(tf.tensor4d(pixels, [crops.length, inputSize, inputSize, 1])) as tf.Tensor
  );
  const out = (await probabilities.data()) as Float32Array;
  probabilities.dispose();
  return out;
}

/** A face found in an image, with its crop at the model's input size. */
export interface FoundFace {
  box: FaceResult["box"];
  score: number;
  crop: GrayImage;
}

/** Detect faces (or take the whole image when `noDetect`) and crop each to `inputSize` gray. */
export async function findFaces(image: RgbaImage, inputSize: number, options: FaceOptions = {}): Promise<FoundFace[]> {
  const o = { ...DEFAULTS, ...options };
  const gray = toGray(image);
  if (o.noDetect) {
    return [{ box: [0, 0, image.width, image.height], score: 1, crop: resizeGray(gray, inputSize, inputSize) }];
  }
  return (await detectFaces(image, o)).map((d) => ({ ...d, crop: cropFace(gray, d.box, o.margin, inputSize) }));
}

/** Results for found faces from their class probabilities (row-major, a row per face). */
export function labelFaces(found: FoundFace[], probabilities: Float32Array, labels: string[]): FaceResult[] {
  return found.map((face, i) => {
    const row = Array.from(probabilities.subarray(i * labels.length, (i + 1) * labels.length));
    const best = row.indexOf(Math.max(...row));
    return {
      box: face.box,
      score: Math.round(face.score * 1e4) / 1e4,
      emotion: labels[best],
      probabilities: Object.fromEntries(labels.map((l, c) => [l, Math.round(row[c] * 1e4) / 1e4])),
    };
  });
}

/** Image in, faces out: detect (unless `noDetect`), crop, classify. */
export async function recognizeEmotions(
  loaded: LoadedModel,
  image: RgbaImage,
  options: FaceOptions = {},
): Promise<FaceResult[]> {
  const found = await findFaces(image, loaded.metadata.inputSize, options);
  if (found.length === 0) return [];
  return labelFaces(found, await classifyCrops(loaded, found.map((f) => f.crop)), loaded.metadata.labels);
}
